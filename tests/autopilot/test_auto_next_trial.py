"""What the search queues next: each affordable backbone's default recipe twin first, then
trials away from a backbone whose leaderboard stopped climbing while another one still can
(budget goes where it may still buy score); and which backbones are affordable at all."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from fitclass.autopilot.search import PLATEAU_TRIALS, next_backbone, plateaued, queue_next
from fitclass.autopilot.space import Choice, SearchSpace
from fitclass.autopilot.workflow import affordable

BACKBONES = ["tfidf", "minilm"]


def study_with(scores: dict[str, list[float]]) -> Any:
    """A study holding complete trials of each backbone with these scores, in order."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    choice = optuna.distributions.CategoricalDistribution(BACKBONES)
    for backbone, values in scores.items():
        for value in values:
            study.add_trial(optuna.trial.create_trial(
                params={"model.backbone": backbone},
                distributions={"model.backbone": choice}, value=value))
    return study


def space() -> SearchSpace:
    return SearchSpace(base={}, backbones=list(BACKBONES))


COSTS = {"tfidf": 5.0, "minilm": 120.0}


def test_a_flat_leaderboard_is_set_aside_for_one_still_climbing() -> None:
    flat = [0.70, 0.80] + [0.80] * PLATEAU_TRIALS
    study = study_with({"tfidf": flat, "minilm": [0.6]})
    assert plateaued(study.trials, "tfidf") and not plateaued(study.trials, "minilm")
    assert next_backbone(study.trials, space(), BACKBONES, COSTS) == "minilm"


def test_a_late_gain_keeps_the_backbone_in_play() -> None:
    climbing = [0.70] + [0.70] * (PLATEAU_TRIALS - 1) + [0.75]
    study = study_with({"tfidf": [*climbing, 0.70]})
    assert not plateaued(study.trials, "tfidf")
    assert next_backbone(study.trials, space(), BACKBONES, COSTS) is None


@pytest.mark.parametrize("minilm", [[0.6] * (PLATEAU_TRIALS + 2), []])
def test_when_every_backbone_is_flat_or_unaffordable_the_sampler_chooses(
        minilm: list[float]) -> None:
    study = study_with({"tfidf": [0.8] * (PLATEAU_TRIALS + 2), "minilm": minilm})
    if minilm:  # both flat: nothing better to pin, the sampler picks as before
        assert next_backbone(study.trials, space(), BACKBONES, COSTS) is None
    else:  # minilm no longer fits the time left: the affordable one, flat or not
        assert next_backbone(study.trials, space(), ["tfidf"], COSTS) == "tfidf"


def test_too_few_trials_are_not_a_plateau() -> None:
    study = study_with({"tfidf": [0.8] * PLATEAU_TRIALS})
    assert not plateaued(study.trials, "tfidf")


def queued(study: Any) -> list[dict[str, Any]]:
    return [t.system_attrs["fixed_params"] for t in study.trials if t.state.name == "WAITING"]


def test_each_backbone_first_runs_its_default_recipe_twin() -> None:
    lr = Choice("train.lr", {"loguniform": [2e-5, 3e-4]}, ["minilm"], None, "lr",
                default=5e-5)
    weights = Choice("imbalance.class_weights", {"categorical": ["none", "inverse"]},
                     list(BACKBONES), "imbalance", "tail")
    searched = SearchSpace(base={}, backbones=list(BACKBONES), choices=[lr, weights])
    study = study_with({"tfidf": [0.7]})
    queue_next(study, study.trials, searched, BACKBONES, COSTS)
    assert queued(study) == [{"model.backbone": "minilm", "train.lr": 5e-5,
                              "imbalance.class_weights": "none"}]
    # queued counts as tried: no second twin
    queue_next(study, study.trials, searched, BACKBONES, COSTS)
    assert len(queued(study)) == 1
    unaffordable = study_with({"tfidf": [0.7]})
    queue_next(unaffordable, unaffordable.trials, searched, ["tfidf"], COSTS)
    assert queued(unaffordable) == [{"model.backbone": "tfidf"}]


def test_one_trial_of_an_encoder_in_half_the_budget_is_enough_to_search_it() -> None:
    """5,536 SST-2 rows, 3 epochs: one MiniLM trial is estimated at about 340 s, so a
    15-minute budget searches it (it scored 0.875 against TF-IDF's 0.797 there)."""
    assert affordable(["tfidf", "minilm"], 5536, 900.0, "good") == ["tfidf", "minilm"]
    assert affordable(["tfidf", "minilm"], 5536, 600.0, "good") == ["tfidf"]
