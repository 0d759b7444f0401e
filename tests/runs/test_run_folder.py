"""Run directories: status, refusal to clobber, overwrite, failures, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fitclass
from fitclass.atomic import atomic_write_text, replace_dir
from fitclass.errors import DataError, RunError
from fitclass.runs.folder import RunDir


def status(path: Path) -> dict:
    return json.loads((path / "status.json").read_text())


def test_finished_run_is_never_overwritten(tmp_path: Path, train_csv: Path,
                                           recipe_for) -> None:
    out = tmp_path / "run"
    fitclass.train(recipe_for("tfidf", train_csv, name="first"), out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunError) as info:
        fitclass.train(recipe_for("tfidf", train_csv, name="second"), out=out)
    assert "a finished run is already here" in str(info.value)
    assert "--overwrite" in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_overwrite_replaces_a_finished_run(tmp_path: Path, train_csv: Path,
                                           recipe_for) -> None:
    out = tmp_path / "run"
    fitclass.train(recipe_for("tfidf", train_csv, name="first"), out=out)
    (out / ".DS_Store").write_text("operating-system litter")
    run = fitclass.train(recipe_for("tfidf", train_csv, name="second"), out=out,
                         overwrite=True)
    assert run.recipe.name == "second"
    assert status(out)["status"] == "finished" and status(out)["tool"] == "fitclass"
    assert (out / ".DS_Store").exists()  # only the entries a run writes are deleted
    assert not (out / "run.lock").exists()  # released


def test_overwrite_refuses_a_run_holding_other_files(tmp_path: Path, train_csv: Path,
                                                     recipe_for) -> None:
    out = tmp_path / "run"
    fitclass.train(recipe_for("tfidf", train_csv, name="first"), out=out)
    (out / "stray.txt").write_text("left over")
    with pytest.raises(RunError, match=r"it holds stray.txt, which fitclass does not write "
                                       r"into run folders.*choose another --out"):
        fitclass.train(recipe_for("tfidf", train_csv, name="second"), out=out,
                       overwrite=True)
    assert (out / "stray.txt").read_text() == "left over"
    assert fitclass.load_run(out).recipe.name == "first"


def test_empty_existing_folder_is_used(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    out = tmp_path / "run"
    out.mkdir()
    assert fitclass.train(recipe_for("tfidf", train_csv), out=out).path == out


def test_failed_run_records_the_error(tmp_path: Path, recipe_for) -> None:
    out = tmp_path / "run"
    with pytest.raises(DataError):
        fitclass.train(recipe_for("tfidf", tmp_path / "missing.csv"), out=out)
    record = status(out)
    assert record["status"] == "failed"
    assert record["error"].startswith("DataError: ")
    assert "missing.csv" in record["error"]
    with pytest.raises(RunError, match=r"not a finished run \(status: failed\)"):
        fitclass.load_run(out)
    # nothing to continue (no checkpoint): the same command replaces the failed run
    with pytest.raises(DataError):
        fitclass.train(recipe_for("tfidf", tmp_path / "missing.csv"), out=out)
    assert status(out)["status"] == "failed"


def test_invalid_recipe_creates_nothing(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    out = tmp_path / "run"
    with pytest.raises(fitclass.RecipeError):
        fitclass.train(recipe_for("tfidf", train_csv, train={"lr": -1}), out=out)
    assert not out.exists()


def test_default_run_path_is_under_runs(tmp_path: Path, train_csv: Path, recipe_for,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = fitclass.train(recipe_for("tfidf", train_csv, name="my exp/1"))
    assert run.path.parent == Path("runs")
    assert run.path.name.startswith("my-exp-1-")
    assert status(tmp_path / run.path)["status"] == "finished"


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        fitclass.load_run(tmp_path / "nothing")
    with pytest.raises(RunError, match=r"not a fitclass run directory \(no status.json\)"):
        fitclass.load_run(tmp_path)


def test_status_keeps_its_history(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    assert run.status() == "running" and (run.path / "run.lock").is_file()
    run.set_status("running", resumed=False)
    started = status(run.path)["started"]
    run.set_status("finished", wall_seconds=1.5)
    record = status(run.path)
    assert record["status"] == "finished" and record["started"] == started
    assert record["resumed"] is False and record["wall_seconds"] == 1.5
    run.release()
    assert not (run.path / "run.lock").exists()


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_replace_dir_swaps_whole_folders(tmp_path: Path) -> None:
    target, staged = tmp_path / "model", tmp_path / ".model.staging"
    target.mkdir()
    (target / "old.bin").write_text("old")
    staged.mkdir()
    (staged / "new.bin").write_text("new")
    replace_dir(staged, target)
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
