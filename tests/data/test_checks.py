"""Data checks: every broken input is an error naming file, column, rows or key; risky input
is a warning recorded in the run's data_checks.json while training goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fitclass
from fitclass.data import checks
from fitclass.data.prepare import prepare_data
from fitclass.errors import DataError
from fitclass.recipe import DataConfig


def rows(n: int = 12, labels: tuple[str, ...] = ("pos", "neg")) -> list[dict[str, Any]]:
    return [{"text": f"text number {i}", "label": labels[i % len(labels)]} for i in range(n)]


def data_error(**config: Any) -> str:
    with pytest.raises(DataError) as info:
        prepare_data(DataConfig(**config))
    return str(info.value)


# --- files --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = data_error(train=path)
    assert str(path) in message and "file not found" in message
    assert "data.train" in message


def test_missing_valid_file(tmp_path: Path, table_writer) -> None:
    train = table_writer(rows(), tmp_path / "train.csv")
    valid = tmp_path / "valid.csv"
    message = data_error(train=train, valid=valid)
    assert str(valid) in message and "file not found" in message


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "train.xlsx"
    path.write_text("text,label\na,b\n")
    message = data_error(train=path)
    assert str(path) in message and "'.xlsx'" in message
    assert ".csv" in message and ".parquet" in message  # lists what is allowed


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("")
    message = data_error(train=path)
    assert str(path) in message and "the file is empty" in message


@pytest.mark.parametrize(("name", "content"), [("train.csv", "text,label\n"),
                                               ("train.tsv", "text\tlabel\n")])
def test_header_only(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    message = data_error(train=path)
    assert str(path) in message and "header but no data rows" in message


# --- columns ------------------------------------------------------------------------------


def test_missing_text_column(tmp_path: Path, table_writer) -> None:
    path = table_writer([{"sentence": "a", "label": "x"}], tmp_path / "train.csv")
    message = data_error(train=path)
    assert str(path) in message
    assert "column 'text' not found" in message
    assert "['sentence', 'label']" in message and "set data.text" in message


def test_missing_label_column(tmp_path: Path, table_writer) -> None:
    path = table_writer([{"text": "a", "category": "x"}], tmp_path / "train.csv")
    message = data_error(train=path)
    assert str(path) in message
    assert "column 'label' not found" in message and "set data.label" in message


def test_missing_id_and_pair_columns(tmp_path: Path, table_writer) -> None:
    path = table_writer(rows(), tmp_path / "train.csv")
    assert "column 'uid' not found" in data_error(train=path, id="uid")
    message = data_error(train=path, text=["text", "answer"])
    assert "column 'answer' not found" in message and "data.text" in message


def test_missing_group_column(tmp_path: Path, table_writer) -> None:
    path = table_writer(rows(), tmp_path / "train.csv")
    message = data_error(train=path, group="user", split={"method": "group"})
    assert str(path) in message
    assert "column 'user' not found" in message and "set data.group" in message


# --- cells --------------------------------------------------------------------------------


def test_empty_text_rows_name_rows_and_file_lines(tmp_path: Path, table_writer) -> None:
    data = rows()
    data[1]["text"] = ""
    data[4]["text"] = "   "
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path)
    # 0-based rows; CSV file lines add the header and start at 1
    assert f"{path}: rows 1, 4 (file lines 3, 6): text column 'text'" in message
    assert "empty or not a string" in message


def test_empty_text_in_one_of_a_pair(tmp_path: Path, table_writer) -> None:
    data = [{"q": f"q{i}", "a": f"a{i}", "label": "x"} for i in range(5)]
    data[3]["a"] = ""
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path, text=["q", "a"])
    assert "row 3 (file line 5)" in message and "['q', 'a']" in message


def test_non_string_text_in_jsonl(tmp_path: Path, table_writer) -> None:
    data: list[dict[str, Any]] = rows(6)
    data[2]["text"] = 12345
    data[5]["text"] = None
    path = table_writer(data, tmp_path / "train.jsonl")
    message = data_error(train=path)
    # JSON lines have no header: line = row + 1
    assert f"{path}: rows 2, 5 (file lines 3, 6): text column 'text'" in message
    assert "not a string" in message


def test_parquet_rows_have_no_file_lines(tmp_path: Path, table_writer) -> None:
    data = rows(6)
    data[0]["text"] = ""
    path = table_writer(data, tmp_path / "train.parquet")
    message = data_error(train=path)
    assert f"{path}: row 0: text column 'text'" in message and "file line" not in message


def test_missing_labels(tmp_path: Path, table_writer) -> None:
    data = rows()
    data[2]["label"] = ""
    data[7]["label"] = " "
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path)
    assert f"{path}: rows 2, 7 (file lines 4, 9): column 'label' has no label" in message


def test_null_label_in_jsonl(tmp_path: Path, table_writer) -> None:
    data: list[dict[str, Any]] = rows(6)
    data[3]["label"] = None
    path = table_writer(data, tmp_path / "train.jsonl")
    assert "row 3 (file line 4): column 'label' has no label" in data_error(train=path)


def test_many_bad_rows_are_summarised(tmp_path: Path, table_writer) -> None:
    data = rows(30)
    for row in data[:20]:
        row["text"] = ""
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path)
    assert "rows 0, 1, 2, 3, 4, 5, 6, 7 and 12 more" in message


def test_all_errors_are_reported_together(tmp_path: Path, table_writer) -> None:
    data = rows()
    data[0]["text"] = ""
    data[5]["label"] = ""
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path)
    assert "row 0 (file line 2): text column" in message
    assert "row 5 (file line 7): column 'label' has no label" in message


def test_label_unseen_in_train(tmp_path: Path, table_writer) -> None:
    train = table_writer(rows(), tmp_path / "train.csv")
    valid_rows = rows(6)
    valid_rows[1]["label"] = "neutral"
    valid_rows[4]["label"] = "mixed"
    valid = table_writer(valid_rows, tmp_path / "valid.csv")
    message = data_error(train=train, valid=valid)
    assert f"{valid}: rows 1, 4 (file lines 3, 6)" in message
    assert "['mixed', 'neutral'] never occur in the training data" in message
    assert "the model can never predict them" in message


# --- classes that cannot be learned ----------------------------------------------------------


def test_a_single_class_is_an_error(tmp_path: Path, table_writer) -> None:
    path = table_writer(rows(12, ("pos",)), tmp_path / "train.csv")
    message = data_error(train=path)
    assert f"{path}: every training row has the label 'pos' (12 rows)" in message
    assert "at least two classes" in message and "data.label" in message


def test_a_single_class_within_data_limit_names_the_limit(tmp_path: Path,
                                                         table_writer) -> None:
    data = sorted(rows(20), key=lambda row: row["label"])  # all 'neg' rows first
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path, limit=6)
    assert "label 'neg' (6 rows) (data.limit: 6 reads only the first rows" in message


def test_a_single_class_with_a_valid_file_is_an_error(tmp_path: Path, table_writer) -> None:
    train = table_writer(rows(12, ("pos",)), tmp_path / "train.csv")
    valid = table_writer(rows(4), tmp_path / "valid.csv")
    message = data_error(train=train, valid=valid)
    assert "every training row has the label 'pos'" in message


def multilabel_rows(b_values: list[int]) -> list[dict[str, Any]]:
    return [{"text": f"text number {i}", "a": i % 2, "b": b} for i, b in enumerate(b_values)]


def test_a_label_column_without_positives_is_an_error(tmp_path: Path, table_writer) -> None:
    path = table_writer(multilabel_rows([0] * 12), tmp_path / "train.csv")
    message = data_error(train=path, label=["a", "b"])
    assert f"{path}: label columns ['b'] are 0 in every training row" in message
    assert "remove the column from data.label" in message


def test_no_row_with_any_label_is_an_error(tmp_path: Path, table_writer) -> None:
    data = [{"text": f"text {i}", "a": 0, "b": 0} for i in range(12)]
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path, label=["a", "b"])
    assert f"{path}: no training row has any label: every data.label column ['a', 'b'] is 0" \
        in message
    assert "label columns ['a', 'b'] are 0" not in message  # one message, not two
    names = table_writer([{"text": f"text {i}", "tags": ""} for i in range(12)],
                         tmp_path / "names.csv")
    message = data_error(train=names, label="tags", label_sep="|")
    assert "no training row has any label: column 'tags' is empty in every row" in message


def test_rare_multilabel_columns_are_fine(tmp_path: Path, table_writer) -> None:
    path = table_writer(multilabel_rows([1, 1] + [0] * 18), tmp_path / "train.csv")
    prepared = prepare_data(DataConfig(train=path, label=["a", "b"]))
    assert prepared.class_names == ["a", "b"]


# --- splitting ----------------------------------------------------------------------------


def test_class_with_one_row_cannot_be_stratified(tmp_path: Path, table_writer) -> None:
    data = [*rows(20), {"text": "lonely", "label": "rare"}]
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path)
    assert str(path) in message and "['rare']" in message
    assert "fewer than 2 rows" in message and "data.valid" in message


def test_one_row_class_is_fine_with_a_valid_file(tmp_path: Path, table_writer) -> None:
    train = table_writer([*rows(20), {"text": "lonely", "label": "rare"}],
                         tmp_path / "train.csv")
    valid = table_writer(rows(4), tmp_path / "valid.csv")
    prepared = prepare_data(DataConfig(train=train, valid=valid))
    assert prepared.class_names == ["neg", "pos", "rare"]
    assert prepared.report.class_counts["train"]["rare"] == 1


def test_too_small_validation_share_to_stratify(tmp_path: Path, table_writer) -> None:
    path = table_writer(rows(30, ("a", "b", "c")), tmp_path / "train.csv")
    message = data_error(train=path, split={"valid_size": 0.05})
    assert "data.split.valid_size=0.05 gives 2 validation rows for 3 classes" in message


def test_group_split_with_too_few_groups(tmp_path: Path, table_writer) -> None:
    data = [{**row, "user": f"u{i % 3}"} for i, row in enumerate(rows(30))]
    path = table_writer(data, tmp_path / "train.csv")
    message = data_error(train=path, group="user", split={"method": "group", "valid_size": 0.2})
    assert "needs at least 5 distinct groups in data.group, found 3" in message
    assert "valid_size=0.2" in message


def test_group_split_without_group_column(tmp_path: Path, table_writer) -> None:
    path = table_writer(rows(), tmp_path / "train.csv")
    message = data_error(train=path, split={"method": "group"})
    assert "data.split.method is 'group' but data.group names no column" in message


# --- warnings, recorded in the run --------------------------------------------------------


@pytest.fixture(scope="module")
def risky_run(tmp_path_factory: pytest.TempPathFactory, rows_maker, table_writer,
              recipe_for) -> Path:
    """A tfidf run on data with duplicates, conflicting duplicates and train/valid leakage."""
    folder = tmp_path_factory.mktemp("risky")
    data = rows_maker({"sports": 30, "tech": 20, "food": 10}, seed=5)
    train = [dict(row) for row in data[:45]]
    valid = [dict(row) for row in data[45:]]
    n = len(train)
    train.append({**train[0], "id": "dup1", "text": "  " + train[0]["text"].upper() + " "})
    other = next(label for label in ("sports", "tech") if label != train[1]["label"])
    train.append({**train[1], "id": "dup2", "label": other})
    valid += [dict(train[2]), dict(train[3])]  # leaked into validation
    recipe = recipe_for("tfidf", table_writer(train, folder / "train.csv"),
                        data={"valid": str(table_writer(valid, folder / "valid.csv"))})
    run = fitclass.train(recipe, out=folder / "run")
    assert n == 45
    return run.path


def findings(run_path: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((run_path / "data_checks.json").read_text())
    assert report["errors"] == []
    return {w["check"]: w for w in report["warnings"]}


def test_warnings_do_not_stop_training(risky_run: Path) -> None:
    assert json.loads((risky_run / "status.json").read_text())["status"] == "finished"
    assert set(findings(risky_run)) == {"duplicates", "conflicting_duplicates", "leakage"}


def test_duplicates_warning_ignores_case_and_whitespace(risky_run: Path) -> None:
    duplicates = findings(risky_run)["duplicates"]
    assert duplicates["level"] == "warning"
    assert duplicates["count"] == 2
    assert duplicates["rows"] == [45, 46]  # the repeats, by row in the training file
    assert "2 rows repeat an earlier text" in duplicates["message"]
    assert "train.csv" in duplicates["message"]


def test_conflicting_duplicates_warning(risky_run: Path) -> None:
    conflicting = findings(risky_run)["conflicting_duplicates"]
    assert conflicting["count"] == 1
    assert conflicting["rows"] == [1, 46]
    assert "1 texts occur with different labels" in conflicting["message"]


def test_leakage_warning(risky_run: Path) -> None:
    leakage = findings(risky_run)["leakage"]
    valid_rows = 17
    assert leakage["count"] == 2 and leakage["rows"] == [valid_rows - 2, valid_rows - 1]
    assert "valid.csv" in leakage["message"]
    assert f"2 of {valid_rows} validation rows" in leakage["message"]


def test_class_counts_recorded(risky_run: Path) -> None:
    report = json.loads((risky_run / "data_checks.json").read_text())
    assert sum(report["class_counts"]["train"].values()) == 47
    assert sum(report["class_counts"]["valid"].values()) == 17


def test_truncation_warning_with_tiny_bert(tmp_path: Path, rows_maker, table_writer,
                                           recipe_for) -> None:
    data = rows_maker({"sports": 12, "tech": 12, "food": 12}, words=20)
    recipe = recipe_for("tiny_bert", table_writer(data, tmp_path / "train.csv"),
                        model={"max_length": 8}, train={"epochs": 1, "batch_size": 16})
    run = fitclass.train(recipe, out=tmp_path / "run")
    truncation = findings(run.path)["truncation"]
    assert truncation["count"] == 27  # every training row (36 - 9 held out) is too long
    assert "exceed model.max_length=8 tokens" in truncation["message"]
    assert "consider raising model.max_length" in truncation["message"]


def test_truncation_is_info_when_few_rows_are_long() -> None:
    lengths = __import__("numpy").array([5] * 99 + [50])
    finding = checks.check_truncation(lengths, 10, "train.csv")
    assert finding is not None and finding.level == "info" and finding.rows == [99]
    assert checks.check_truncation(lengths[:0], 10, "train.csv") is None


def test_tfidf_runs_have_no_truncation_check(risky_run: Path) -> None:
    report = json.loads((risky_run / "data_checks.json").read_text())
    assert all(f["check"] != "truncation" for f in report["info"] + report["warnings"])
