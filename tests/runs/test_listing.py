"""`fitclass runs`: listing the runs under a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fitclass
import fitclass.api
from fitclass.errors import DataError
from fitclass.runs.listing import find_runs, list_runs

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, recipe_for,
              table_writer) -> dict[str, Any]:
    """good (char TF-IDF), weak (5 word features), a failed run, and a nested group: two
    members and their ensemble."""
    root = tmp_path_factory.mktemp("listing")
    good = fitclass.train(recipe_for("tfidf", train_csv, name="good"), out=root / "good")
    weak = fitclass.train(recipe_for("tfidf", train_csv, name="weak", model={
        "backbone": "tfidf", "analyzer": "word", "max_features": 3}), out=root / "weak")
    valid = table_writer([{"id": "v1", "text": "a song on the radio", "label": "music"}],
                         root / "data" / "valid.csv")
    with pytest.raises(DataError, match="music"):
        fitclass.train(recipe_for("tfidf", train_csv, name="broken",
                                  data={"valid": str(valid)}), out=root / "broken")
    group = root / "group" / "members"
    member_a = fitclass.train(recipe_for("tfidf", train_csv), out=group / "a")
    member_b = fitclass.train(recipe_for("tfidf", train_csv, model={
        "backbone": "tfidf", "analyzer": "word"}), out=group / "b")
    ensemble = fitclass.ensemble([member_a.path, member_b.path], root / "group" / "ensemble",
                                 method="mean", metric="log_loss")
    return {"root": root, "good": good, "weak": weak, "ensemble": ensemble,
            "members": [member_a, member_b]}


def test_list_runs_finds_every_run(runs_root: dict[str, Any]) -> None:
    root = runs_root["root"]
    rows = {Path(r["run"]).relative_to(root).as_posix(): r for r in list_runs(root)}
    assert set(rows) == {"good", "weak", "broken", "group/ensemble", "group/members/a",
                         "group/members/b"}
    assert rows["broken"]["status"] == "failed"
    assert "music" in rows["broken"]["error"]
    assert rows["broken"]["name"] == "broken" and rows["broken"]["select_value"] is None
    assert rows["good"]["status"] == "finished"
    assert rows["good"]["name"] == "good" and rows["good"]["backbone"] == "tfidf"
    assert rows["good"]["select_metric"] == "macro_f1"
    assert rows["good"]["select_value"] == pytest.approx(runs_root["good"].metrics["macro_f1"])
    assert rows["good"]["n_valid"] == 30
    assert rows["group/ensemble"]["backbone"] == "ensemble"
    assert rows["group/ensemble"]["select_metric"] == "log_loss"
    assert rows["group/ensemble"]["name"] == "ensemble-mean"
    assert rows["group/members/a"]["name"] == "a"  # no recipe name: the folder's
    assert {r["task"] for r in rows.values()} == {"multiclass"}


def test_list_runs_skips_model_and_checkpoint_folders(runs_root: dict[str, Any]) -> None:
    found = find_runs(runs_root["root"])
    assert all(p.name not in ("model", "checkpoints") for p in found)
    assert not find_runs(runs_root["root"] / "missing")


def test_list_runs_sorted_by_macro_f1(runs_root: dict[str, Any]) -> None:
    rows = list_runs(runs_root["root"], sort="macro_f1")
    values = [r["macro_f1"] for r in rows]
    finished = [v for v in values if v is not None]
    assert finished == sorted(finished, reverse=True)
    assert values[-1] is None and rows[-1]["status"] == "failed"  # no metric: last
    assert rows.index(next(r for r in rows if r["name"] == "good")) < rows.index(
        next(r for r in rows if r["name"] == "weak"))
    assert runs_root["weak"].metrics["macro_f1"] < runs_root["good"].metrics["macro_f1"]
    ascending = list_runs(runs_root["root"], sort="macro_f1", descending=False)
    assert [r["macro_f1"] for r in ascending if r["macro_f1"] is not None] == sorted(finished)


def test_cli_runs_json(runs_root: dict[str, Any]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run([str(Path(sys.executable).parent / "fitclass"), "runs",
                           str(runs_root["root"]), "--json", "--sort", "macro_f1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list) and len(rows) == 6
    keys = {"name", "task", "backbone", "status", "select_metric", "select_value"}
    assert all(keys <= set(row) for row in rows)
    assert rows[-1]["status"] == "failed"
    assert {r["name"] for r in rows} >= {"good", "weak", "broken", "ensemble-mean"}
