"""Which trial leads auto's finish: a default recipe twin within noise of the best trial
leads it (the best trial's lead is partly the luck of being chosen among many); a clear
lead keeps the best trial first. And the cost a remedy declares: a co-teaching trial is
priced as two plain ones, and is not sampled when two plain trials do not fit."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

import fitclass
from conftest import make_rows, write_table
from fitclass.autopilot.budget import measured_seconds
from fitclass.autopilot.finish import members, ranked
from fitclass.autopilot.preference import default_twins, prefer_twin
from fitclass.autopilot.search import fitting_params
from fitclass.autopilot.space import COTEACHING_COST, Choice, SearchSpace
from fitclass.runs.noise_marks import noise_marks

C = Choice("model.C", {"loguniform": [0.05, 16.0]}, ["tfidf"], None, "C", default=4.0)
COTEACHING = Choice("noise.coteaching", {"categorical": [None, {"forget_rate": 0.2}]},
                    ["minilm"], "label_noise", "two networks", cost=COTEACHING_COST)
LR = Choice("train.lr", {"loguniform": [2e-5, 3e-4]}, ["minilm"], None, "lr", default=5e-5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory,
         recipe_for: Callable[..., dict[str, Any]]) -> dict[str, Path]:
    """TF-IDF runs scored on one validation file: two good ones trained on the keyword
    rows (word and character analyzers) and a bad one trained on shuffled labels."""
    root = tmp_path_factory.mktemp("preference")
    rows = make_rows({"sports": 40, "tech": 40, "food": 40}, seed=3)
    valid = write_table(make_rows({"sports": 30, "tech": 30, "food": 30}, seed=4),
                        root / "valid.csv")
    shuffled = [dict(row) for row in rows]
    labels = [row["label"] for row in shuffled]
    random.Random(0).shuffle(labels)
    for row, label in zip(shuffled, labels, strict=True):
        row["label"] = label
    tables = {"good": write_table(rows, root / "train.csv"),
              "bad": write_table(shuffled, root / "shuffled.csv")}
    found = {}
    for name, table, analyzer in (("twin", tables["good"], "char_wb"),
                                  ("tuned", tables["good"], "word"),
                                  ("bad", tables["bad"], "char_wb")):
        recipe = recipe_for("tfidf", table, data={"valid": str(valid)},
                            model={"backbone": "tfidf", "analyzer": analyzer})
        found[name] = fitclass.train(recipe, out=root / name).path
    return found


def study_of(trials: list[tuple[dict[str, Any], float, Path | None]]) -> Any:
    """A study holding these complete trials (params, score, run folder), in order."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    distributions = {"model.C": optuna.distributions.FloatDistribution(0.05, 16.0, log=True)}
    for params, value, run_dir in trials:
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params}, value=value,
            user_attrs={"run_dir": str(run_dir)} if run_dir else {}))
    return study


def tfidf_space() -> SearchSpace:
    return SearchSpace(base={}, backbones=["tfidf"], choices=[C])


def test_a_twin_within_noise_of_the_best_leads_the_finish(runs: dict[str, Path]) -> None:
    study = study_of([({"model.C": 4.0}, 0.95, runs["twin"]),
                      ({"model.C": 2.5}, 0.97, runs["tuned"])])
    board = ranked(study.trials)
    assert list(board["trial"]) == [1, 0]  # the leaderboard stays in score order
    assert default_twins(study.trials, tfidf_space()) == {0}
    preferred = prefer_twin(board, {0}, "macro_f1")
    assert preferred is not None and (preferred.trial, preferred.best) == (0, 1)
    assert preferred.p_value is not None and preferred.p_value >= 0.05
    assert "trial-0000" in preferred.why("macro_f1")
    assert members(board, 1, first=preferred.trial) == [runs["twin"]]
    assert members(board, 2, first=preferred.trial) == [runs["twin"], runs["tuned"]]
    assert members(board, 1) == [runs["tuned"]]


def test_a_clear_lead_keeps_the_best_trial_first(runs: dict[str, Path]) -> None:
    study = study_of([({"model.C": 4.0}, 0.30, runs["bad"]),
                      ({"model.C": 2.5}, 0.97, runs["tuned"])])
    mark = noise_marks([str(runs["tuned"]), str(runs["bad"])], "macro_f1")[1]
    assert mark["noise_rule"] == "paired test" and mark["within_noise"] is False
    twins = default_twins(study.trials, tfidf_space())
    assert prefer_twin(ranked(study.trials), twins, "macro_f1") is None


def test_a_best_trial_that_is_a_twin_needs_no_preference(runs: dict[str, Path]) -> None:
    study = study_of([({"model.C": 4.0}, 0.97, runs["twin"]),
                      ({"model.C": 2.5}, 0.95, runs["tuned"])])
    twins = default_twins(study.trials, tfidf_space())
    assert prefer_twin(ranked(study.trials), twins, "macro_f1") is None


def test_coteaching_costs_two_plain_trials_and_is_left_out_when_they_do_not_fit() -> None:
    space = SearchSpace(base={}, backbones=["tfidf", "minilm"], choices=[C, LR, COTEACHING])
    plain = {"model.backbone": "minilm", "train.lr": 1e-4, "noise.coteaching": None}
    costly = {**plain, "noise.coteaching": '{"forget_rate": 0.2}'}  # as optuna stores it
    assert space.cost_factor(plain) == 1.0
    assert space.cost_factor(costly) == COTEACHING_COST
    assert space.cost_factor({**plain, "noise.coteaching": {"forget_rate": 0.2}}) == 2.0
    params, left_out = fitting_params(space, "minilm", plain_s=300.0, room_s=500.0)
    assert left_out == ["noise.coteaching"] and set(params) == {"train.lr"}
    params, left_out = fitting_params(space, "minilm", plain_s=300.0, room_s=650.0)
    assert not left_out and set(params) == {"train.lr", "noise.coteaching"}


def test_a_costly_trial_measures_the_plain_cost_it_implies() -> None:
    space = SearchSpace(base={}, backbones=["minilm"], choices=[LR, COTEACHING])
    study = optuna.create_study(direction="maximize")
    start = datetime.datetime(2026, 12, 3, 12, 0, 0)
    trial = optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.COMPLETE, value=0.8,
        datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=600),
        params={"noise.coteaching": '{"forget_rate": 0.2}'},
        distributions={"noise.coteaching": optuna.distributions.CategoricalDistribution(
            [None, '{"forget_rate": 0.2}'])}, user_attrs={}, system_attrs={},
        intermediate_values={}, trial_id=0)
    study.add_trial(trial)
    assert measured_seconds(study.trials, "minilm", True) == pytest.approx(600.0)
    assert measured_seconds(study.trials, "minilm", True,
                            cost_factor=space.cost_factor) == pytest.approx(300.0)
