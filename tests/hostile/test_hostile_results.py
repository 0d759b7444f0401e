"""Hostile inputs: results that must not mislead. A one-class checkpoint must not win a tie,
a killed sweep's trial must not stay RUNNING, a finished TF-IDF trial must not be pruned,
and `--seeds N` must not train N identical TF-IDF members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

import fitclass
from fitclass.errors import RecipeError
from fitclass.sweep import sweep
from fitclass.training.selection import Selector

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEARCH = {"model.C": {"loguniform": [0.01, 100.0]}}


def tfidf_sweep(recipe_for: Any, train_csv: Path, **section: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = recipe_for("tfidf", train_csv)
    recipe["sweep"] = {"params": SEARCH, **section}
    return recipe


# --- checkpoint selection ----------------------------------------------------------------


def test_a_one_class_first_checkpoint_loses_a_tie_to_a_lower_loss() -> None:
    """A balanced binary validation set of 10 rows: the first checkpoint predicts one class
    (accuracy 0.5, loss 0.69); a later one is right on 5 rows too, but confidently so on
    them (loss 0.55). Accuracy ties; the earliest checkpoint used to win."""
    selector = Selector("accuracy", "max")
    assert selector.update(0.5, 10, 0.69) is True
    assert selector.update(0.5, 20, 0.55) is True
    assert selector.update(0.5, 30, 0.61) is False
    assert (selector.best_step, selector.best_loss) == (20, 0.55)


# --- sweeps ------------------------------------------------------------------------------

#: A sweep whose trial training hangs (so it can be killed mid-trial) after it tells the
#: test so by writing a marker file. `fitclass.api` is stubbed before the sweep imports it.
HANGING_SWEEP = """
import sys, time, types
from pathlib import Path

recipe_path, out, marker = sys.argv[1:4]

def hang(*args, **kwargs):
    Path(marker).write_text("training")
    time.sleep(600)

stub = types.ModuleType("fitclass.api")
stub.train = hang
sys.modules["fitclass.api"] = stub

import yaml
from fitclass.sweep import sweep
sweep(yaml.safe_load(Path(recipe_path).read_text()), out, trials=1)
"""


def test_a_killed_sweep_rerun_at_once_fails_and_retries_its_trial(
        tmp_path: Path, recipe_for: Any, train_csv: Path) -> None:
    """Kill -9 a sweep mid-trial and rerun the same command straight away (well within the
    heartbeat grace period): the dead trial is marked failed and its parameters are trained
    again, instead of a trial left RUNNING forever beside a fresh one."""
    recipe = tfidf_sweep(recipe_for, train_csv, pruner="none")
    recipe_path, out, marker = tmp_path / "sweep.yaml", tmp_path / "sweep", tmp_path / "started"
    recipe_path.write_text(yaml.safe_dump(recipe))
    source = str(Path(fitclass.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [source, *filter(None, [os.environ.get("PYTHONPATH")])])}
    worker = subprocess.Popen([sys.executable, "-c", HANGING_SWEEP, str(recipe_path), str(out),
                               str(marker)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the sweep never started its trial"
            time.sleep(0.2)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate()

    summary = sweep(recipe, out, trials=1)

    board = pd.read_csv(out / "leaderboard.csv").set_index("trial")
    assert board.loc[0, "status"] == "fail"
    assert "retried as trial 1" in board.loc[0, "error"]
    assert board.loc[1, "status"] == "complete" and board.loc[1, "retry_of"] == 0
    assert board.loc[1, "param:model.C"] == board.loc[0, "param:model.C"]
    assert "running" not in set(board["status"])
    assert (summary["complete"], summary["failed"]) == (1, 1)


class AlwaysPrune(optuna.pruners.BasePruner):
    """The most aggressive pruner: every trial, at every step."""

    def prune(self, study: Any, trial: Any) -> bool:
        return True


def test_a_finished_tfidf_trial_is_never_pruned(tmp_path: Path, recipe_for: Any,
                                                train_csv: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A TF-IDF trial has one evaluation, after its work is done: pruning it saves nothing
    and throws the finished result away."""
    monkeypatch.setattr("fitclass.sweep.make_pruner", lambda config: AlwaysPrune())
    out = tmp_path / "sweep"
    summary = sweep(tfidf_sweep(recipe_for, train_csv, pruner="median"), out, trials=3)
    assert (summary["complete"], summary["pruned"]) == (3, 0)
    board = pd.read_csv(out / "leaderboard.csv")
    for run_dir in board["run_dir"]:
        status = json.loads((Path(run_dir) / "status.json").read_text())
        assert status["status"] == "finished"


# --- seeds -------------------------------------------------------------------------------


def test_seeds_of_a_deterministic_backbone_are_refused(tmp_path: Path, recipe_for: Any,
                                                       train_csv: Path) -> None:
    """TF-IDF learns the same model whatever train.seed is: N seeds would be N identical
    members. Refused before anything trains, with what to do instead."""
    out = tmp_path / "seeds"
    with pytest.raises(RecipeError, match="identical members") as info:
        fitclass.train_seeds(recipe_for("tfidf", train_csv), 2, out)
    assert "'tfidf'" in str(info.value) and "drop --seeds" in str(info.value)
    assert not out.exists()


def test_the_capability_is_the_kinds_not_its_name() -> None:
    from fitclass.models.base import Backbone
    from fitclass.models.classical import TfidfBackbone
    from fitclass.models.text import TransformerBackbone

    assert Backbone.capabilities.seed_sensitive and TransformerBackbone.capabilities.seed_sensitive
    assert not TfidfBackbone.capabilities.seed_sensitive
