"""`fitclass auto --preset best` stopped during its refit and rerun with the same command:
finished trials, fold runs, cross-validations and refits are kept, a half-written refit is
trained again, and OUT ends up an ensemble of finished refits. Tiny TF-IDF tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import fitclass
import fitclass.crossval.refit
from conftest import make_rows, write_table
from fitclass.models.base import MODEL_INFO
from fitclass.runs.folder import RunDir

pytestmark = pytest.mark.usefixtures("no_reports")

#: The command both calls run (a rerun must be the same command to continue).
COMMAND: dict[str, Any] = {"label": "label", "time": "240s", "preset": "best", "trials": 2,
                           "backbones": ["tfidf"]}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = make_rows({"sports": 30, "tech": 30, "food": 30}, seed=11)
    return write_table(rows, tmp_path_factory.mktemp("refit-resume") / "three.csv")


def stamps(out: Path) -> dict[Path, int]:
    """The metrics.json of every finished run under trials/ (trials, folds, cross-validations
    and refits), by modification time."""
    return {path: path.stat().st_mtime_ns for path in (out / "trials").rglob("metrics.json")
            if RunDir(path.parent).status() == "finished"}


def trials(kept: dict[Path, int]) -> list[Path]:
    """The trials' own runs among `kept` (not their cross-validations)."""
    return [p for p in kept if p.parent.parent.name == "trials"
            and not p.parent.name.endswith("-cv")]


def check_finished(out: Path, kept: dict[Path, int]) -> None:
    """Nothing finished before the stop was written again, and OUT predicts with refits."""
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    record = json.loads((out / "auto.json").read_text())
    refit = record["final"]["refit"]
    assert refit["done"] and len(refit["refits"]) == 2, refit
    assert len(record["calls"]) == 2
    info = json.loads((out / "model" / MODEL_INFO).read_text())
    members = sorted(str((out / m["relative"]).resolve()) for m in info["members"])
    assert members == sorted(str(Path(p).resolve()) for p in refit["refits"])
    for path in refit["refits"]:
        assert RunDir(path).status() == "finished"
    predicted = fitclass.load_run(out).predict(["pizza with cheese in the kitchen"])
    assert list(predicted["label"]) == ["food"]


def test_a_refit_that_failed_half_written_is_trained_again_and_nothing_else(
        tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fitclass.crossval.refit.train_run
    calls: list[Path] = []

    def dies_on_the_second_refit(recipe: Any, *, out: Path, **kwargs: Any) -> Any:
        calls.append(Path(out))
        if len(calls) == 1:
            return real(recipe, out=out, **kwargs)
        # as a kill leaves it: status running, a partial record, the lock's process gone
        half = RunDir.create(out)
        half.write_json("labels.json", {"task": "multiclass"})
        half.release()
        raise RuntimeError("killed during the refit (planted)")

    out = tmp_path / "auto"
    with monkeypatch.context() as patch:
        patch.setattr(fitclass.crossval.refit, "train_run", dies_on_the_second_refit)
        with pytest.raises(RuntimeError, match="planted"):
            fitclass.auto(table, out=out, **COMMAND)
    half = calls[1]
    assert RunDir(half).status() == "interrupted"
    kept = stamps(out)
    assert len(trials(kept)) == 2
    assert len([p for p in kept if p.parent.name.startswith("fold-")]) == 10  # both CVs
    assert calls[0] / "metrics.json" in kept  # the first refit finished
    fitclass.auto(table, out=out, **COMMAND)
    check_finished(out, kept)


def test_a_process_killed_once_a_refit_folder_appears_is_continued(
        tmp_path: Path, table: Path) -> None:
    """A real SIGKILL while the first refit is being written (its folder may be empty,
    hold only a lock, or a running status); the same command then finishes."""
    out = tmp_path / "auto"
    code = (f"import fitclass; fitclass.auto({str(table)!r}, out={str(out)!r}, "
            + ", ".join(f"{k}={v!r}" for k, v in COMMAND.items()) + ")")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while (worker.poll() is None and time.monotonic() < deadline
               and not list((out / "trials").glob("*-cv/refit"))):
            time.sleep(0.05)
        assert worker.poll() is None, "the worker ended before a refit started"
        assert list((out / "trials").glob("*-cv/refit")), "no refit started in time"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    kept = stamps(out)
    assert len(trials(kept)) == 2
    assert not (out / "auto.json").is_file() or "final" not in json.loads(
        (out / "auto.json").read_text())
    fitclass.auto(table, out=out, **COMMAND)
    check_finished(out, kept)
