"""`fitclass auto` end to end on tiny TF-IDF tables: on time, a normal run, resumable,
clear refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import fitclass
from conftest import make_rows, write_table
from fitclass.cli import app
from fitclass.errors import FitclassError, RunError

#: In-process: no interpreter start to allow for, only scheduling noise on a shared CPU.
SLACK_S = 3.0


@pytest.fixture(scope="module")
def long_tail_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A long tail: 90/40/9 rows (ratio 10)."""
    rows = make_rows({"sports": 90, "tech": 40, "food": 9}, seed=3)
    return write_table(rows, tmp_path_factory.mktemp("auto") / "tail.csv")


def test_a_tiny_budget_finishes_on_time_with_a_run_predict_works_on(
        tmp_path: Path, long_tail_csv: Path) -> None:
    budget = 40.0
    started = time.perf_counter()
    run = fitclass.auto(long_tail_csv, label="label", time=f"{budget:.0f}s", preset="fast",
                        out=tmp_path / "auto")
    elapsed = time.perf_counter() - started
    assert elapsed <= budget * 1.1 + SLACK_S, elapsed
    assert run.path == (tmp_path / "auto").resolve()
    predicted = fitclass.load_run(run.path).predict(["the football match and the goal",
                                                     "pizza with cheese in the kitchen"])
    assert list(predicted["label"]) == ["sports", "food"]
    texts = write_table([{"text": "a new laptop and software"}], tmp_path / "new.csv")
    cli = CliRunner().invoke(app, ["predict", str(run.path), str(texts)])
    assert cli.exit_code == 0, cli.output
    assert "tech" in cli.output
    record = json.loads((run.path / "auto.json").read_text())
    assert record["spent_seconds"] <= budget * 1.1
    space = record["space"]
    searched = {c["key"]: c["finding"] for c in space["choices"]}
    assert searched["imbalance.class_weights"] == "imbalance"  # the long tail's remedy
    assert searched["decision.optimize"] == "imbalance"
    notes = (run.path / "auto.md").read_text()
    for part in ("## What doctor found", "imbalance", "## What it tried", "95% interval",
                 "## What it chose", "```yaml", "class_weights"):
        assert part in notes
    trial = run.path / "trials" / "trial-0000"
    first = fitclass.load_run(trial).recipe
    assert first.model.backbone == "tfidf" and first.imbalance.class_weights == "none"


def test_killed_and_rerun_it_continues_without_redoing_finished_trials(
        tmp_path: Path, long_tail_csv: Path) -> None:
    out = tmp_path / "auto"
    fitclass.auto(long_tail_csv, label="label", time="90s", preset="fast", out=out, trials=1)
    first = out / "trials" / "trial-0000" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    spent = json.loads((out / "auto.json").read_text())["spent_seconds"]
    run = fitclass.auto(long_tail_csv, label="label", time="90s", preset="fast", out=out,
                        trials=2)
    assert first.stat().st_mtime_ns == stamp  # trial 0 was not trained again
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0000", "trial-0001"]
    record = json.loads((out / "auto.json").read_text())
    assert len(record["calls"]) == 2
    assert record["spent_seconds"] > spent  # the first call's time still counts
    assert "trial-0001" in (out / "auto.md").read_text()
    assert run.metrics["macro_f1"] > 0
    with pytest.raises(FitclassError, match=r"different command.*preset"):
        fitclass.auto(long_tail_csv, label="label", time="90s", preset="good", out=out)


def test_a_budget_too_small_for_one_run_is_refused_at_the_start(
        tmp_path: Path, long_tail_csv: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(FitclassError, match=r"too small to fit even one run of the cheapest "
                                            r"member \(tfidf.*give --time 1m or more"):
        fitclass.auto(long_tail_csv, label="label", time="2s", out=tmp_path / "auto")
    assert time.perf_counter() - started < 2.0
    assert not (tmp_path / "auto" / "trials").exists()


def test_a_class_of_one_row_is_refused_before_any_trial(tmp_path: Path) -> None:
    rows = make_rows({"sports": 30, "tech": 30, "food": 1}, seed=2)
    table = write_table(rows, tmp_path / "lone.csv")
    result = CliRunner().invoke(app, ["auto", str(table), "--label", "label", "--time", "1m",
                                      "--out", str(tmp_path / "auto")])
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert f"{table}: auto cannot train on this table" in flat
    assert "fewer than 2 rows (food)" in flat and "drop) the classes under 2 rows" in flat
    assert not (tmp_path / "auto" / "trials").exists()  # no trial was started


def test_an_out_folder_fitclass_did_not_write_is_refused_and_kept(
        tmp_path: Path, long_tail_csv: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="will not write into this folder: it is not a "
                                       "fitclass auto folder"):
        fitclass.auto(long_tail_csv, label="label", time="1m", out=out)
    assert (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_cli_bad_time_and_a_missing_column_say_what_to_do(tmp_path: Path,
                                                          long_tail_csv: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["auto", str(long_tail_csv), "--label", "label", "--time",
                              "soon", "--out", str(tmp_path / "a")])
    assert bad.exit_code != 0
    assert "--time 'soon'" in bad.output and "30m" in bad.output
    missing = runner.invoke(app, ["auto", str(long_tail_csv), "--label", "topic", "--time",
                                  "1m", "--out", str(tmp_path / "b")])
    assert missing.exit_code != 0
    assert "topic" in missing.output and "'text'" in missing.output  # lists the columns


def test_a_dataframe_is_saved_into_out_for_its_trials(tmp_path: Path) -> None:
    frame = pd.DataFrame(make_rows({"sports": 40, "tech": 40, "food": 40}, seed=5))
    run = fitclass.auto(frame, label="label", time="40s", preset="fast", out=tmp_path / "df",
                        trials=1)
    assert (run.path / "table.csv").is_file()
    assert fitclass.load_run(run.path).recipe.data.train == run.path / "table.csv"
    other = frame.assign(label=frame["label"].iloc[::-1].to_numpy())
    with pytest.raises(FitclassError, match="different table"):
        fitclass.auto(other, label="label", time="40s", preset="fast", out=tmp_path / "df")


def test_when_no_trial_finishes_it_says_so_and_auto_md_lists_the_errors(
        tmp_path: Path, long_tail_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fitclass.api

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory (planted)")

    monkeypatch.setattr(fitclass.api, "train", broken)
    with pytest.raises(FitclassError, match="no trial finished within the budget"):
        fitclass.auto(long_tail_csv, label="label", time="1m", preset="fast",
                      out=tmp_path / "auto")
    notes = (tmp_path / "auto" / "auto.md").read_text()
    assert "3 trials failed in a row" in notes and "planted" in notes
    assert "Nothing: no trial finished" in notes
    assert "| 3 |" not in notes  # it stopped after three failures


def test_a_killed_process_is_continued_by_the_same_command(tmp_path: Path,
                                                            long_tail_csv: Path) -> None:
    """A real kill (SIGKILL mid-search): the rerun keeps the finished trials' runs, fails
    the trial that was running, and counts the killed call's time."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "auto"
    code = (f"import fitclass; fitclass.auto({str(long_tail_csv)!r}, label='label', "
            f"time='5m', preset='fast', out={str(out)!r})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "trials" / "trial-0001" / "metrics.json"
    try:
        deadline = time.monotonic() + 240
        while not second.is_file() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert second.is_file(), "the worker never finished two trials"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/metrics.json")}
    spent = json.loads((out / "auto.json").read_text())["spent_seconds"]
    assert spent > 0
    count = len(stamps) + 1
    fitclass.auto(long_tail_csv, label="label", time="5m", preset="fast", out=out,
                  trials=count)
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    record = json.loads((out / "auto.json").read_text())
    assert len(record["calls"]) == 2 and record["spent_seconds"] > spent
    assert fitclass.load_run(out).metrics["macro_f1"] > 0
