"""The one writer: a trained run and an ensemble run hold the same record files, and an
ensemble carries the degenerate-model warnings and the members' shared data fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import fitclass
import fitclass.api
from fitclass.ensembling import shared_fingerprint
from fitclass.runs import layout
from fitclass.runs.folder import RunDir

#: What every finished run holds, whatever made it.
RECORD = {layout.RECIPE, layout.ENVIRONMENT, layout.STATUS, layout.LABELS, layout.DECISION,
          layout.METRICS, layout.VALID_PREDICTIONS, layout.VALID_PROBS, layout.MODEL}


pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
          recipe_for) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("writer")
    char = fitclass.train(recipe_for("tfidf", train_csv), out=root / "char")
    word = fitclass.train(recipe_for("tfidf", train_csv, model={
        "backbone": "tfidf", "analyzer": "word"}), out=root / "word")
    ensemble = fitclass.ensemble([char.path, word.path], root / "ensemble", method="mean")
    return {"char": char, "word": word, "ensemble": ensemble}


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if not p.name.startswith(".")}


def _labels(path: Path) -> dict[str, Any]:
    return json.loads((path / layout.LABELS).read_text(encoding="utf-8"))


def test_train_and_ensemble_write_the_same_record(built: dict[str, Any]) -> None:
    trained, ensemble = _entries(built["char"].path), _entries(built["ensemble"].path)
    assert trained >= RECORD and ensemble >= RECORD
    assert ensemble - RECORD == {layout.ENSEMBLE}  # only what is particular to ensembles
    assert set(_labels(built["ensemble"].path)) == set(_labels(built["char"].path))


def test_ensemble_carries_warnings_and_the_members_fingerprint(built: dict[str, Any]) -> None:
    fingerprint = _labels(built["char"].path)["data_fingerprint"]
    assert fingerprint.startswith("sha256:")
    assert _labels(built["word"].path)["data_fingerprint"] == fingerprint
    assert _labels(built["ensemble"].path)["data_fingerprint"] == fingerprint
    assert isinstance(built["ensemble"].metrics["warnings"], list)


def test_ensemble_scored_on_another_file_claims_no_fingerprint(
        built: dict[str, Any], tmp_path: Path, train_csv: Path) -> None:
    scored = fitclass.ensemble([built["char"].path, built["word"].path], tmp_path / "ens",
                               method="mean", valid=train_csv)
    assert "data_fingerprint" not in _labels(scored.path)


def _member(tmp_path: Path, name: str, fingerprint: str | None) -> Any:
    folder = tmp_path / name
    folder.mkdir()
    labels: dict[str, Any] = {"classes": ["a", "b"]}
    if fingerprint is not None:
        labels["data_fingerprint"] = fingerprint
    (folder / layout.LABELS).write_text(json.dumps(labels), encoding="utf-8")
    return SimpleNamespace(dir=RunDir(folder))


def test_shared_fingerprint_only_when_all_members_agree(tmp_path: Path) -> None:
    same = [_member(tmp_path, "a", "sha256:1"), _member(tmp_path, "b", "sha256:1")]
    assert shared_fingerprint(same) == "sha256:1"
    assert shared_fingerprint([*same, _member(tmp_path, "c", "sha256:2")]) is None
    assert shared_fingerprint([*same, _member(tmp_path, "d", None)]) is None


def test_degenerate_ensemble_is_warned_about(tmp_path: Path, rows_maker, table_writer,
                                             recipe_for) -> None:
    """Members that never learn the minority class: the ensemble says so in metrics.json."""
    rows = rows_maker({"sports": 60, "food": 6}, seed=3)
    data = table_writer(rows, tmp_path / "skewed.csv")
    members = [fitclass.train(recipe_for("tfidf", data, model={
        "backbone": "tfidf", "analyzer": "word", "max_features": 1},
        decision={"calibration": "none", "thresholds": "none"}), out=tmp_path / f"m{i}")
        for i in range(2)]
    ensemble = fitclass.ensemble([m.path for m in members], tmp_path / "ens", method="mean")
    assert members[0].metrics["warnings"]  # one word feature: the minority is never predicted
    assert ensemble.metrics["warnings"]
