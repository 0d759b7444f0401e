"""`fitclass auto` as separate processes: the deadline of a whole command (interpreter start
included), the refusal of a budget too small, and two workers on one OUT sharing a study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fitclass
from conftest import make_rows, write_table

#: A new interpreter's start, outside auto's own clock (Python, torch, scikit-learn and
#: transformers imports): measured 4-7 s on the shared 2-core test machine; allowed 10 s.
START_S = 10.0
CLI = "import sys; from fitclass.cli import main; sys.argv[0] = 'fitclass'; main()"


@pytest.fixture(scope="module")
def long_tail_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = make_rows({"sports": 90, "tech": 40, "food": 9}, seed=3)
    return write_table(rows, tmp_path_factory.mktemp("workers") / "tail.csv")


def fitclass_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_20s_budget_ends_within_budget_plus_10_percent_and_a_process_start(
        tmp_path: Path, long_tail_csv: Path) -> None:
    budget = 20.0
    started = time.perf_counter()
    worker = fitclass_cli("auto", str(long_tail_csv), "--label", "label", "--time",
                          f"{budget:.0f}s", "--preset", "fast", "--out", str(tmp_path / "a"))
    stdout, stderr = worker.communicate(timeout=120)
    elapsed = time.perf_counter() - started
    assert worker.returncode == 0, stderr
    assert elapsed <= budget * 1.1 + START_S, elapsed
    record = json.loads((tmp_path / "a" / "auto.json").read_text())
    assert record["spent_seconds"] <= budget * 1.1
    assert stdout.strip() == str(tmp_path / "a")
    assert fitclass.load_run(tmp_path / "a").predict(["a new laptop"]).shape[0] == 1


def test_a_budget_that_cannot_fit_the_cheapest_member_is_refused_at_once(
        tmp_path: Path, long_tail_csv: Path) -> None:
    started = time.perf_counter()
    worker = fitclass_cli("auto", str(long_tail_csv), "--label", "label", "--time", "3s",
                          "--out", str(tmp_path / "a"))
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert time.perf_counter() - started <= 3.0 + START_S
    said = " ".join(stderr.split())
    assert "too small to fit even one run of the cheapest member (tfidf" in said
    assert "give --time 1m or more" in said


def test_two_workers_on_one_out_share_the_trials_and_one_finishes(
        tmp_path: Path, long_tail_csv: Path) -> None:
    out = tmp_path / "auto"
    budget = 45.0
    command = ("auto", str(long_tail_csv), "--label", "label", "--time", f"{budget:.0f}s",
               "--preset", "fast", "--out", str(out))
    started = time.perf_counter()
    workers = [fitclass_cli(*command), fitclass_cli(*command)]
    results = [w.communicate(timeout=240) for w in workers]
    elapsed = time.perf_counter() - started
    for worker, (_, stderr) in zip(workers, results, strict=True):
        assert worker.returncode == 0, stderr
    assert elapsed <= budget * 1.1 + START_S + 5.0  # the second waits for the finish
    said = " ".join(results[0][1].split() + results[1][1].split())
    assert "this worker contributes trials to its study" in said  # one of them joined
    import optuna

    record = json.loads((out / "auto.json").read_text())
    assert len(record["calls"]) == 1  # only the finisher writes auto.json
    study = optuna.load_study(study_name=record["space"]["base"]["name"],
                              storage=f"sqlite:///{out / 'auto.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len({t.user_attrs["worker"] for t in done}) == 2, "both workers ran trials"
    # every trial ran once, in its own folder, and no two trials tried the same values
    folders = [t.user_attrs["run_dir"] for t in study.trials if "run_dir" in t.user_attrs]
    assert len(folders) == len(set(folders))
    assert all(f.endswith(f"trial-{t.number:04d}") for t, f in zip(
        [t for t in study.trials if "run_dir" in t.user_attrs], folders, strict=True))
    values = [json.dumps(t.params, sort_keys=True) for t in done]
    assert len(values) == len(set(values))
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(
        Path(f).name for f in folders)
    assert len(record["workers"]) == 2
    assert "Finished trials per worker" in (out / "auto.md").read_text()
    assert fitclass.load_run(out).predict(["the football match"]).shape[0] == 1
