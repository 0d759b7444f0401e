"""`fitclass audit --against FILE`: rows of other files with an exact or near copy in train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fitclass.data.prepare import read_labelled
from fitclass.errors import FitclassError
from fitclass.noise.audit import audit
from fitclass.noise.near_copies import COLUMNS, near_copies
from fitclass.recipe import DataConfig

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, rows_maker, table_writer) -> dict[str, Any]:
    """Training rows, and a test file holding an exact copy (case changed), a near copy
    (a word dropped, punctuation added) and unrelated rows."""
    rows = rows_maker({"sports": 20, "tech": 20, "food": 20}, seed=4, words=12)
    unrelated = rows_maker({"sports": 3, "tech": 3}, seed=9, words=12)
    shorter = " ".join(rows[5]["text"].split()[:-1]) + " !!"  # last word dropped
    test = [{"id": "t-exact", "text": rows[2]["text"].upper(), "label": rows[2]["label"]},
            {"id": "t-near", "text": shorter, "label": rows[5]["label"]},
            *[{**row, "id": f"t-{i}"} for i, row in enumerate(unrelated)]]
    folder = tmp_path_factory.mktemp("against")
    return {"folder": folder, "rows": rows,
            "train": table_writer(rows, folder / "train.csv"),
            "test": table_writer(test, folder / "test.csv"),
            "unlabelled": table_writer([{"text": t["text"]} for t in test],
                                       folder / "unlabelled.csv")}


def test_copies_found_with_their_training_rows(files: dict[str, Any]) -> None:
    config = DataConfig(train=files["train"], id="id")
    train = read_labelled(files["train"], config)
    table, summary = near_copies(train, [files["test"], files["unlabelled"]], config)
    assert list(table.columns) == COLUMNS
    labelled = table[table["file"] == str(files["test"])]
    assert labelled["id"].tolist() == ["t-exact", "t-near"]
    assert labelled["train_row"].tolist() == [2, 5]
    assert labelled["train_id"].tolist() == [files["rows"][2]["id"], files["rows"][5]["id"]]
    assert labelled["exact"].tolist() == [True, False]
    assert labelled["similarity"].iloc[0] == 1.0 and 0.8 <= labelled["similarity"].iloc[1] < 1
    unlabelled = summary["against"][str(files["unlabelled"])]  # no id column: row numbers
    assert unlabelled == {"rows": 8, "with_copy_in_train": 2, "exact": 1, "share": 0.25}
    assert summary["threshold"] == 0.8 and summary["train_rows_nearly_repeating"] == 0


def test_audit_writes_near_copies(files: dict[str, Any], recipe_for) -> None:
    out = files["folder"] / "suspects.csv"
    result = audit(recipe_for("tfidf", files["train"]), out, folds=2, proxy="tfidf",
                   against=[files["test"]])
    written = pd.read_csv(files["folder"] / "suspects_near_copies.csv")
    assert written["id"].tolist() == ["t-exact", "t-near"]
    assert result.near_copies is not None and len(result.near_copies) == 2
    summary = json.loads((files["folder"] / "suspects_summary.json").read_text())
    assert summary["near_copies"]["against"][str(files["test"])]["with_copy_in_train"] == 2


def test_audit_refuses_foreign_output_and_null_threshold(files: dict[str, Any], recipe_for,
                                                         tmp_path: Path) -> None:
    (tmp_path / "s_near_copies.csv").write_text("mine\n1\n")
    with pytest.raises(FitclassError, match="not a near-copies table"):
        audit(recipe_for("tfidf", files["train"]), tmp_path / "s.csv", folds=2,
              proxy="tfidf", against=[files["test"]])
    with pytest.raises(FitclassError, match=r"needs data\.near_duplicate_threshold"):
        audit(recipe_for("tfidf", files["train"], data={"near_duplicate_threshold": None}),
              tmp_path / "t.csv", folds=2, proxy="tfidf", against=[files["test"]])
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "t_folds").exists()
