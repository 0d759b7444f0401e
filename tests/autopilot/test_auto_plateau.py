"""The search sets aside a backbone whose leaderboard stopped climbing, while another one
still can: budget goes where it may still buy score."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from fitclass.autopilot.search import PLATEAU_TRIALS, next_backbone, plateaued
from fitclass.autopilot.space import SearchSpace

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
    assert plateaued(study, "tfidf") and not plateaued(study, "minilm")
    assert next_backbone(study, space(), BACKBONES, COSTS) == "minilm"


def test_a_late_gain_keeps_the_backbone_in_play() -> None:
    climbing = [0.70] + [0.70] * (PLATEAU_TRIALS - 1) + [0.75]
    study = study_with({"tfidf": [*climbing, 0.70]})
    assert not plateaued(study, "tfidf")
    assert next_backbone(study, space(), BACKBONES, COSTS) is None


@pytest.mark.parametrize("minilm", [[0.6] * (PLATEAU_TRIALS + 2), []])
def test_when_every_backbone_is_flat_or_unaffordable_the_sampler_chooses(
        minilm: list[float]) -> None:
    study = study_with({"tfidf": [0.8] * (PLATEAU_TRIALS + 2), "minilm": minilm})
    if minilm:  # both flat: nothing better to pin, the sampler picks as before
        assert next_backbone(study, space(), BACKBONES, COSTS) is None
    else:  # minilm no longer fits the time left: the affordable one, flat or not
        assert next_backbone(study, space(), ["tfidf"], COSTS) == "tfidf"


def test_too_few_trials_are_not_a_plateau() -> None:
    study = study_with({"tfidf": [0.8] * PLATEAU_TRIALS})
    assert not plateaued(study, "tfidf")
