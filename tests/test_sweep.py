"""`fitclass sweep` on SQLite: outputs, resume, pruning, failed trials, recipe errors, and
`fitclass ensemble SWEEP_DIR`. TF-IDF trials (under a second each) except for pruning, which
needs several evaluations per trial and so uses the tiny BERT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

import fitclass
from fitclass.errors import RecipeError
from fitclass.sweep import sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)

NGRAMS = [[1, 2], [2, 4]]
SEARCH = {"model.C": {"loguniform": [0.01, 100.0]},
          "model.ngram_range": {"categorical": NGRAMS}}


def tfidf_sweep(recipe_for: Any, train_csv: Path, **sweep_section: Any) -> dict[str, Any]:
    recipe = recipe_for("tfidf", train_csv)
    recipe["sweep"] = {"params": SEARCH, **sweep_section}
    return recipe


def trial_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "trials").iterdir() if p.is_dir())


def status(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "status.json").read_text())


def test_tfidf_sweep_writes_leaderboard_best_recipe_and_trials(
        tmp_path: Path, recipe_for: Any, train_csv: Path) -> None:
    out = tmp_path / "sweep"
    summary = sweep(tfidf_sweep(recipe_for, train_csv), out, trials=4)

    board = pd.read_csv(out / "leaderboard.csv")
    assert {"trial", "status", "metric", "wall_seconds", "run_dir", "param:model.C",
            "param:model.ngram_range"} <= set(board.columns)
    assert sorted(board["trial"]) == [0, 1, 2, 3]
    assert set(board["status"]) <= {"complete", "pruned"}
    complete = board[board["status"] == "complete"]
    assert len(complete) >= 1
    # complete trials first, best first (macro_f1 is maximised)
    assert list(board["status"][:len(complete)]) == ["complete"] * len(complete)
    assert complete["metric"].is_monotonic_decreasing
    # each complete trial marked against the best by the paired test on the shared rows
    assert complete["noise_rule"].tolist() == ["best"] + ["paired test"] * (len(complete) - 1)
    assert complete["within_noise"].iloc[0] and complete["p_vs_best"].iloc[1:].between(0,
                                                                                      1).all()
    assert board["param:model.C"].between(0.01, 100.0).all()
    assert {json.dumps(n) for n in NGRAMS} >= set(board["param:model.ngram_range"])

    # one run directory per trial, each the trial's own
    dirs = trial_dirs(out)
    assert [d.name for d in dirs] == [f"trial-{n:04d}" for n in range(4)]
    assert sorted(Path(p).name for p in board["run_dir"]) == [d.name for d in dirs]
    for row in board.itertuples():
        assert status(Path(row.run_dir))["status"] == {"complete": "finished",
                                                         "pruned": "pruned"}[row.status]

    saved = json.loads((out / "sweep.json").read_text())
    assert saved["trials"] == summary["trials"] == 4
    assert saved["best_trial"] == int(complete["trial"].iloc[0])
    assert saved["best_value"] == pytest.approx(complete["metric"].iloc[0])
    assert saved["metric"] == "macro_f1" and saved["mode"] == "max"
    importance = pd.read_csv(out / "importance.csv")
    assert list(importance.columns) == ["param", "importance"]
    if len(complete) >= 2:
        assert set(importance["param"]) == {"model.C", "model.ngram_range"}
    html = (out / "report.html").read_text()
    assert (f"4 trials: {summary['complete']} complete, {summary['pruned']} pruned, 0 failed"
            in html)
    assert "(best trial)" in html

    # the best recipe is a plain recipe: the sampled values in place, list choices decoded
    best = fitclass.load_recipe(out / "best_recipe.yaml")
    assert best.sweep is None
    assert pytest.approx(saved["best_params"]["model.C"]) == best.model.C
    assert list(best.model.ngram_range) == json.loads(saved["best_params"]["model.ngram_range"])
    run = fitclass.train(best, out=tmp_path / "best-run")
    assert run.metrics["macro_f1"] == pytest.approx(saved["best_value"])


def test_sweep_resumes_without_redoing_trials(tmp_path: Path, recipe_for: Any,
                                              train_csv: Path) -> None:
    out = tmp_path / "sweep"
    recipe = tfidf_sweep(recipe_for, train_csv)
    sweep(recipe, out, trials=4)
    before = {d.name: ((d / "status.json").stat().st_mtime_ns, (d / "status.json").read_text())
              for d in trial_dirs(out)}
    assert len(before) == 4

    summary = sweep(recipe, out, trials=6)  # the same study (SQLite in OUT), 2 more trials
    assert summary["trials"] == 6
    after = {d.name: ((d / "status.json").stat().st_mtime_ns, (d / "status.json").read_text())
             for d in trial_dirs(out)}
    assert sorted(set(after) - set(before)) == ["trial-0004", "trial-0005"]
    assert {name: after[name] for name in before} == before  # untouched
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["trial"]) == list(range(6))

    again = sweep(recipe, out, trials=6)  # nothing left to do
    assert again["trials"] == 6
    assert len(trial_dirs(out)) == 6


def test_median_pruner_stops_a_bad_trial(tmp_path: Path, recipe_for: Any,
                                         train_csv: Path) -> None:
    """Trial 0 learns (lr 3e-3), trials 1-2 cannot (lr 1e-7); eight evaluations per trial.

    The trial order is fixed by enqueueing the parameters in the study before the sweep joins
    it (the sampler's own draws would make the order depend on Optuna's RNG), and every trial
    trains with train.seed 0, so the run is deterministic. With startup_trials 1 the median
    pruner compares each later trial with trial 0 at the same step: a bad trial's macro_f1
    stays at the majority-class value while trial 0's rises, so it is pruned early.
    """
    out = tmp_path / "sweep"
    recipe = recipe_for("tiny_bert", train_csv,
                        train={"epochs": 4, "eval_every": "6 steps"},
                        sweep={"params": {"train.lr": {"categorical": [3e-3, 1e-7]}},
                               "pruner": "median", "startup_trials": 1, "sampler": "random"})
    storage = f"sqlite:///{out / 'sweep.db'}"
    out.mkdir()
    study = optuna.create_study(storage=storage, study_name="pruning", direction="maximize")
    for lr in (3e-3, 1e-7, 1e-7):
        study.enqueue_trial({"train.lr": lr})

    summary = sweep(recipe, out, storage=storage, study_name="pruning", trials=3)

    board = pd.read_csv(out / "leaderboard.csv").set_index("trial")
    assert board.loc[0, "status"] == "complete"
    assert board.loc[0, "last_step"] == 48  # 12 steps per epoch x 4 epochs
    good = pd.read_csv(out / "trials" / "trial-0000" / "history.csv")
    assert len(good) == 8 and good["macro_f1"].iloc[-1] > 0.4  # majority class: 0.22
    assert summary["pruned"] >= 1
    for number in (1, 2):
        assert board.loc[number, "status"] == "pruned"
        assert board.loc[number, "last_step"] < 48
        assert board.loc[number, "metric"] < 0.3
        assert board.loc[number, "param:train.lr"] == pytest.approx(1e-7)
        state = status(out / "trials" / f"trial-{number:04d}")
        assert state["status"] == "pruned"
        assert "pruned at step" in state["reason"]
    assert summary["best_trial"] == 0


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path: Path, recipe_for: Any,
                                                          train_csv: Path) -> None:
    """A grid of 4: a missing text column fails in training (DataError, after the run
    directory exists), a negative C fails recipe validation (before it); one trial is fine."""
    out = tmp_path / "sweep"
    recipe = recipe_for("tfidf", train_csv)
    recipe["sweep"] = {"params": {"data.text": {"categorical": ["text", "no_such_column"]},
                                  "model.C": {"categorical": [1.0, -1.0]}},
                       "sampler": "grid", "pruner": "none"}
    summary = sweep(recipe, out, trials=4)

    assert (summary["trials"], summary["complete"], summary["failed"]) == (4, 1, 3)
    board = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert board["status"].iloc[0] == "complete"  # complete trials head the leaderboard
    failed = board[board["status"] == "fail"]
    assert len(failed) == 3
    assert (failed["metric"] == "").all()
    for _, row in failed.iterrows():
        if float(row["param:model.C"]) > 0:
            # failed while training: the run directory says so too
            assert row["param:data.text"] == "no_such_column"
            assert row["error"].startswith("DataError") and "no_such_column" in row["error"]
            state = status(Path(row["run_dir"]))
            assert state["status"] == "failed" and "no_such_column" in state["error"]
        else:  # failed recipe validation: no run directory was made
            assert row["error"].startswith("RecipeError") and "model.C" in row["error"]
            assert row["run_dir"] == ""
    best = board.iloc[0]
    assert status(Path(best["run_dir"]))["status"] == "finished"
    assert summary["best_trial"] == int(best["trial"])


@pytest.mark.parametrize(("sweep_section", "message"), [
    (None, "needs a `sweep.params` section"),
    ({"trials": 3}, "needs a `sweep.params` section"),
    ({"params": {"model.C": {"loguniform": [0.1, 10.0], "uniform": [0.1, 10.0]}}},
     "give exactly one of"),
    ({"params": {"model.C": {}}}, "give exactly one of"),
    ({"params": {"model.C": {"loguniform": [10.0, 0.1]}}}, "low < high"),
    ({"params": {"model.C": {"uniform": [1.0, 1.0]}}}, "low < high"),
    ({"params": {"train.epochs": {"int": [3]}}}, "low < high"),
    ({"params": {"model.C": {"categorical": [1.0], "steps": 2}}}, "unknown keys"),
])
def test_sweep_recipe_errors(tmp_path: Path, recipe_for: Any, train_csv: Path,
                             sweep_section: dict[str, Any] | None, message: str) -> None:
    recipe = recipe_for("tfidf", train_csv)
    if sweep_section is not None:
        recipe["sweep"] = sweep_section
    with pytest.raises(RecipeError, match=message):
        sweep(recipe, tmp_path / "sweep", trials=1)
    assert not (tmp_path / "sweep" / "trials").exists()


def fitclass_script() -> str:
    script = Path(sys.executable).parent / "fitclass"
    assert script.is_file(), f"the fitclass console script is not installed at {script}"
    return str(script)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    return subprocess.run([fitclass_script(), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow  # two console-script processes: ~30 s on 2 busy cores
def test_cli_sweep_top_then_ensemble_of_the_sweep(tmp_path: Path, recipe_for: Any,
                                                  train_csv: Path) -> None:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(tfidf_sweep(recipe_for, train_csv, pruner="none")))
    out, ensemble_dir = tmp_path / "sweep", tmp_path / "ensemble"

    done = cli("sweep", recipe_path, "--out", out, "--trials", 3, "--top", 2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "trials: 3 (3 complete, 0 pruned, 0 failed)" in done.stderr
    top = json.loads((out / "sweep.json").read_text())["top_runs"]
    assert len(top) == 2

    made = cli("ensemble", out, "--out", ensemble_dir)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1] == str(ensemble_dir)
    run = fitclass.load_run(ensemble_dir)
    members = [Path(m["path"]).name for m in run.metrics["ensemble"]["members"]]
    assert sorted(members) == sorted(Path(p).name for p in top)
    assert run.metrics["accuracy"] > 0.8


def test_workers_racing_to_create_the_schema_connect_again(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """A worker that loses the race to create optuna's tables on an empty database (a unique
    violation on alembic_version) waits and connects again instead of failing."""
    from sqlalchemy.exc import IntegrityError

    from fitclass import sweep as sweep_module

    real, calls = optuna.storages.RDBStorage, []

    def racing(url: str, **kwargs: Any) -> Any:
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("duplicate key"))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    storage = sweep_module.rdb_storage(f"sqlite:///{tmp_path / 'race.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []

    def always_losing(url: str, **kwargs: Any) -> Any:
        calls.append(url)
        raise IntegrityError("INSERT INTO alembic_version", {}, Exception("duplicate key"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", always_losing)
    with pytest.raises(IntegrityError):  # a real integrity problem still surfaces, bounded
        sweep_module.rdb_storage("sqlite:///unused.db", attempts=3)
    assert len(calls) == 2 + 3


def test_a_trial_whose_heartbeat_stopped_is_failed_and_retried(tmp_path: Path,
                                                               recipe_for: Any,
                                                               train_csv: Path) -> None:
    """A worker on another machine died mid-trial: its trial's heartbeat is older than the
    grace period. The next sweep marks it failed and reruns its parameters first."""
    import sqlite3

    from fitclass.sweep_storage import rdb_storage

    out = tmp_path / "sweep"
    out.mkdir()
    url = f"sqlite:///{out / 'sweep.db'}"
    storage = rdb_storage(url)
    study = optuna.create_study(storage=storage, study_name="stale", direction="maximize")
    trial = study.ask()
    trial.suggest_float("model.C", 0.01, 100.0, log=True)
    trial.suggest_categorical("model.ngram_range", [json.dumps(n) for n in NGRAMS])
    trial.set_user_attr("worker", "elsewhere:1")
    storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(out / "sweep.db") as db:  # the worker fell silent an hour ago
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")

    summary = sweep(tfidf_sweep(recipe_for, train_csv, pruner="none"), out, storage=url,
                    study_name="stale", trials=2)

    board = pd.read_csv(out / "leaderboard.csv").set_index("trial")
    assert board.loc[0, "status"] == "fail"
    assert "retried as trial 1" in board.loc[0, "error"]
    assert board.loc[1, "status"] == "complete" and board.loc[1, "retry_of"] == 0
    for key in ("param:model.C", "param:model.ngram_range"):
        assert board.loc[1, key] == board.loc[0, key]
    assert (summary["complete"], summary["failed"]) == (2, 1)
    assert not (board["status"] == "running").any()

    # a rerun with nothing left to train still fails a dead trial, instead of leaving it
    # RUNNING forever; its retry waits for a sweep that asks for more trials
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(out / "sweep.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    sweep(tfidf_sweep(recipe_for, train_csv, pruner="none"), out, storage=url,
          study_name="stale", trials=2)
    board = pd.read_csv(out / "leaderboard.csv").set_index("trial")
    assert board.loc[trial.number, "status"] == "fail"
    assert board["status"].value_counts().to_dict() == {"complete": 2, "fail": 2,
                                                        "waiting": 1}
    assert "retry of trial 3" in board.loc[4, "error"]
