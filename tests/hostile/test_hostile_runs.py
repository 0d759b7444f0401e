"""Hostile run folders: fitclass never deletes what it did not write, respects a live run's
lock, keeps resumed runs reproducible, and lets a failed run be replaced by the same command.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import fitclass
from fitclass.atomic import atomic_write_text
from fitclass.errors import DataError, FitclassError, RunError
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import remove_run
from fitclass.runs.listing import list_runs

SRC = Path(fitclass.__file__).resolve().parents[1]


def status(path: Path) -> dict[str, Any]:
    return json.loads((path / "status.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}



@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
                 recipe_for: Callable[..., dict[str, Any]]) -> Path:
    """A finished TF-IDF run, copied by the tests that change it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    fitclass.train(recipe_for("tfidf", train_csv, name="finished"), out=out)
    return out


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def killed(run: Path) -> None:
    """Make a finished run look like one killed mid-training (status `running`, lock of a
    process that has exited, a checkpoint)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    record = status(run) | {"status": "running"}
    (run / "status.json").write_text(json.dumps(record))
    (run / "run.lock").write_text(json.dumps({
        "pid": int(child.stdout), "host": socket.gethostname(), "started": "then",
        "heartbeat": time.time(), "token": "dead"}))
    (run / "checkpoints" / "last").mkdir(parents=True)


# --- the overwrite rule ---------------------------------------------------------------------


def test_out_dot_overwrite_in_a_project_folder_deletes_nothing(
        cli_main, tmp_path: Path, train_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(train_csv, tmp_path / "train.csv")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(
        {"data": {"train": "train.csv", "id": "id"}, "model": {"backbone": "tfidf"}}))
    (tmp_path / "notes.txt").write_text("unrelated")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    for extra in (["--overwrite"], []):
        code, _, err = cli_main("train", "r.yaml", "--out", ".", *extra)
        assert code == 2
        assert "it is the working directory" in err and "choose another --out" in err
        assert "pass --overwrite" not in err
    assert snapshot(tmp_path) == before


def test_a_folder_with_an_unrelated_file_is_refused_without_an_overwrite_hint(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(RunError) as info:
            fitclass.train(recipe_for("tfidf", train_csv), out=out, overwrite=overwrite)
        message = str(info.value)
        assert "not a fitclass run folder (no status.json)" in message
        assert "--overwrite" not in message.split("fitclass deletes")[0]
        assert "pass --overwrite" not in message
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_a_hand_made_status_file_does_not_make_a_run(tmp_path: Path, train_csv: Path,
                                                     recipe_for: Callable[..., Any]) -> None:
    out = tmp_path / "fake"
    out.mkdir()
    (out / "status.json").write_text(json.dumps({"status": "finished"}))
    (out / "recipe.yaml").write_text("precious: true\n")
    with pytest.raises(RunError, match=r"status.json was not written by fitclass"):
        fitclass.train(recipe_for("tfidf", train_csv), out=out, overwrite=True)
    assert (out / "recipe.yaml").read_text() == "precious: true\n"


def test_a_run_in_the_home_folder_or_a_parent_of_the_cwd_is_never_replaced(
        run_copy: Path, train_csv: Path, recipe_for: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(run_copy)
    monkeypatch.setenv("HOME", str(run_copy))
    with pytest.raises(RunError, match="it is your home folder"):
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy, overwrite=True)
    monkeypatch.setenv("HOME", str(run_copy.parent / "elsewhere"))
    inside = run_copy / "model"
    monkeypatch.chdir(inside)
    with pytest.raises(RunError, match="it is a parent of the working directory"):
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy, overwrite=True)
    monkeypatch.chdir(run_copy)
    with pytest.raises(RunError, match="it is the working directory"):
        remove_run(Path("."))
    assert snapshot(run_copy) == before


def test_overwrite_deletes_only_run_entries_and_keeps_tracking_folders_its_own(
        run_copy: Path, train_csv: Path, recipe_for: Callable[..., Any]) -> None:
    (run_copy / "tensorboard").mkdir()
    (run_copy / "onnx").mkdir()
    (run_copy / ".model.staging").mkdir()  # a killed save's staging folder
    (run_copy / ".recipe.yaml.1a2b3c4d.tmp").write_text("half")
    (run_copy / "noise_changes.csv").write_text("id\n")
    run = fitclass.train(recipe_for("tfidf", train_csv, name="again"), out=run_copy,
                         overwrite=True)
    assert run.recipe.name == "again"
    for gone in ("tensorboard", "onnx", ".model.staging", ".recipe.yaml.1a2b3c4d.tmp",
                 "noise_changes.csv"):
        assert not (run_copy / gone).exists(), gone


# --- the lock ---------------------------------------------------------------------------------


def test_a_lock_of_this_live_process_blocks_resume_overwrite_and_training(
        run_copy: Path, train_csv: Path, recipe_for: Callable[..., Any]) -> None:
    killed(run_copy)
    (run_copy / "run.lock").write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": "now",
        "heartbeat": time.time() - 12, "token": "live"}))
    assert RunDir(run_copy).status() == "running"
    before = snapshot(run_copy)
    expected = (rf"run {run_copy} is being trained by pid {os.getpid()} on host "
                rf"{socket.gethostname()} \(heartbeat 1[2-4] s ago")
    with pytest.raises(RunError, match=expected):
        fitclass.train({}, resume=run_copy)
    with pytest.raises(RunError, match=expected):
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy, overwrite=True)
    with pytest.raises(RunError, match=expected):
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy)
    assert snapshot(run_copy) == before


def test_a_killed_run_reads_interrupted_and_resumes_at_once(run_copy: Path) -> None:
    """A real process holds the lock; while it lives resume refuses; once it is killed the
    run lists as interrupted and resume proceeds."""
    killed(run_copy)
    (run_copy / "run.lock").unlink()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from fitclass.runs.lock import RunLock\n"
         f"RunLock(Path({str(run_copy)!r})).acquire()\nprint('held', flush=True)\n"
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=rf"being trained by pid {holder.pid} "):
            fitclass.train({}, resume=run_copy)
        assert [r["status"] for r in list_runs(run_copy.parent)] == ["running"]
    finally:
        holder.kill()
        holder.wait()
    assert RunDir(run_copy).status() == "interrupted"
    assert [r["status"] for r in list_runs(run_copy.parent)] == ["interrupted"]
    run = fitclass.train({}, resume=run_copy)
    assert status(run.path)["status"] == "finished" and status(run.path)["resumed"] is True
    assert not (run_copy / "run.lock").exists()


def test_a_lock_from_another_host_is_dead_once_its_heartbeat_is_stale(
        run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed(run_copy)
    lock = json.loads((run_copy / "run.lock").read_text())
    (run_copy / "run.lock").write_text(json.dumps(lock | {"host": "elsewhere", "pid": 1}))
    assert RunDir(run_copy).status() == "running"  # another host, fresh heartbeat
    monkeypatch.setattr("fitclass.runs.lock.STALE_SECONDS", 0.0)
    assert RunDir(run_copy).status() == "interrupted"


# --- resume overrides ---------------------------------------------------------------------


def test_resume_refuses_a_new_seed_and_records_the_overrides_it_accepts(
        run_copy: Path) -> None:
    killed(run_copy)
    stored = (run_copy / "recipe.yaml").read_text()
    with pytest.raises(RunError, match=r"--resume cannot change train.seed: stored 0, "
                                       r"requested 7.*start a new run"):
        fitclass.train({}, resume=run_copy, overrides=["train.seed=7"])
    assert (run_copy / "recipe.yaml").read_text() == stored
    assert RunDir(run_copy).status() == "interrupted"  # the refusal released the lock
    fitclass.train({}, resume=run_copy, overrides=["train.seed=0",  # unchanged: fine
                                                   "train.eval_batch_size=16"])
    recipe = yaml.safe_load((run_copy / "recipe.yaml").read_text())
    assert recipe["train"]["eval_batch_size"] == 16 and recipe["train"]["seed"] == 0
    [resume] = status(run_copy)["resumes"]
    assert resume["overrides"] == ["train.seed=0", "train.eval_batch_size=16"]
    assert resume["changed"] == {"train.eval_batch_size": {"from": 64, "to": 16}}


# --- failed runs ----------------------------------------------------------------------------


def test_a_failed_run_without_checkpoint_is_replaced_by_the_same_command(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., Any]) -> None:
    data = tmp_path / "train.csv"
    recipe = recipe_for("tfidf", data)
    out = tmp_path / "run"
    with pytest.raises(DataError):
        fitclass.train(recipe, out=out)
    assert status(out)["status"] == "failed"
    with pytest.raises(RunError) as info:  # predicting with it names what works, not --resume
        fitclass.load_run(out)
    assert "nothing to resume" in str(info.value) and "--resume" not in str(info.value)
    shutil.copy(train_csv, data)  # the user fixes the missing file, reruns the same command
    run = fitclass.train(recipe, out=out)
    assert status(run.path)["status"] == "finished" and "error" not in status(run.path)


def test_a_failed_run_with_a_checkpoint_names_what_works(run_copy: Path, train_csv: Path,
                                                         recipe_for: Callable[..., Any]) -> None:
    killed(run_copy)
    with pytest.raises(RunError) as info:
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy)
    message = str(info.value)
    assert "an unfinished run (interrupted) with a checkpoint" in message
    assert f"fitclass train --resume {run_copy}" in message and "--overwrite" in message
    (run_copy / "recipe.yaml").write_text("data: [broken\n")
    with pytest.raises(RunError) as info:
        fitclass.train(recipe_for("tfidf", train_csv), out=run_copy)
    message = str(info.value)
    assert "recipe.yaml does not load" in message and "--resume cannot continue it" in message
    assert "fitclass train --resume" not in message and "--overwrite" in message


# --- file modes -----------------------------------------------------------------------------


def test_run_files_follow_the_umask(tmp_path: Path, train_csv: Path,
                                    recipe_for: Callable[..., Any]) -> None:
    previous = os.umask(0o022)
    try:
        run = fitclass.train(recipe_for("tfidf", train_csv), out=tmp_path / "run")
        modes = {str(p.relative_to(run.path)): stat.S_IMODE(p.stat().st_mode)
                 for p in run.path.rglob("*") if p.is_file()}
        assert "metrics.json" in modes and "report.html" in modes
        assert set(modes.values()) == {0o644}, modes
        os.umask(0o027)
        atomic_write_text(tmp_path / "shared.json", "{}")
        assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o640
    finally:
        os.umask(previous)


# --- the other commands that write output folders ---------------------------------------------


def test_ensemble_refuses_a_folder_it_did_not_write(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ensemble"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(RunError, match=r"ensemble: fitclass will not write into this folder: it "
                                       r"is not a fitclass run folder"):
        fitclass.ensemble([finished_run, finished_run], out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.md"]


def test_sweep_refuses_a_folder_it_did_not_write(tmp_path: Path, train_csv: Path,
                                                 recipe_for: Callable[..., Any]) -> None:
    pytest.importorskip("optuna")
    from fitclass.sweep import sweep

    out = tmp_path / "project"
    out.mkdir()
    (out / "report.html").write_text("my own report")
    recipe = recipe_for("tfidf", train_csv,
                        sweep={"params": {"train.seed": {"int": [0, 3]}}, "trials": 1})
    with pytest.raises(RunError, match=r"not a fitclass sweep folder \(no .fitclass.json\)"):
        sweep(recipe, out)
    assert [p.name for p in out.iterdir()] == ["report.html"]


def test_audit_refuses_to_overwrite_inputs_and_foreign_files(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., Any]) -> None:
    from fitclass.noise.audit import audit

    data = Path(shutil.copy(train_csv, tmp_path / "train.csv"))
    recipe = recipe_for("tfidf", data)
    with pytest.raises(FitclassError, match="is an input of the recipe"):
        audit(recipe, data, folds=2, proxy="tfidf")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(FitclassError, match="not a suspects table written by fitclass audit"):
        audit(recipe, other, folds=2, proxy="tfidf")
    work = tmp_path / "work"
    work.mkdir()
    (work / "fold-0").mkdir()
    (work / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match=r"work: fitclass will not write into this folder: it is "
                                       r"not a fitclass audit work folder.*choose another "
                                       r"--work-dir"):
        audit(recipe, tmp_path / "suspects.csv", folds=2, proxy="tfidf", work_dir=work)
    assert sorted(p.name for p in work.iterdir()) == ["fold-0", "keep.txt"]
    assert data.read_bytes() == train_csv.read_bytes() and other.read_text() == "a,b\n1,2\n"


def test_pretrain_replaces_only_a_backbone_it_wrote(tmp_path: Path, train_csv: Path,
                                                    recipe_for: Callable[..., Any]) -> None:
    from fitclass.pretrain import pretrain

    recipe = recipe_for("tiny_bert", train_csv)
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "config.json").write_text("{}")  # looks like a model; not one fitclass wrote
    with pytest.raises(RunError, match=r"not a fitclass pretrained backbone folder"):
        pretrain(recipe, out, overwrite=True)
    (out / "fitclass_pretrain.json").write_text(json.dumps(
        {"tool": "fitclass", "files": ["config.json", "fitclass_pretrain.json"]}))
    with pytest.raises(FitclassError, match="or pass --overwrite to replace it"):
        pretrain(recipe, out)
    (out / "mine.txt").write_text("keep")
    with pytest.raises(RunError, match=r"it holds mine.txt"):
        pretrain(recipe, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "fitclass_pretrain.json",
                                                     "mine.txt"]


def test_export_refuses_an_onnx_folder_holding_other_files(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., Any]) -> None:
    pytest.importorskip("onnxruntime")
    from fitclass.export import export_onnx

    run = fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}),
                         out=tmp_path / "run")
    onnx = run.path / "onnx"
    onnx.mkdir()
    (onnx / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"not a fitclass ONNX export folder.*move those files"):
        export_onnx(run.path)
    (onnx / "notes.txt").unlink()
    export_onnx(run.path, "int8")  # an empty folder is claimed; exporting again rewrites it
    export_onnx(run.path, "int8")
    written = sorted(p.name for p in onnx.iterdir())
    assert written == [".fitclass.json", "export.json", "model.int8.onnx", "model.onnx"]
    (onnx / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"it holds notes.txt"):
        export_onnx(run.path)
    assert (onnx / "notes.txt").read_text() == "mine"


def test_demo_refuses_a_data_folder_it_did_not_write(cli_main, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\nmine,a\n")
    code, _, err = cli_main("demo", "--out", tmp_path, "--backbone", "tfidf")
    assert code == 2 and "is not this demo data" in err
    assert (tmp_path / "data" / "train.csv").read_text() == "text,label\nmine,a\n"
    assert not (tmp_path / "run").exists()
