"""Readers: every format reads the same rows; limit; raw TSV without quoting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fitclass.data.prepare import prepare_data, read_labelled
from fitclass.data.readers import read_table
from fitclass.errors import DataError
from fitclass.recipe import DataConfig

ROWS = [
    {"id": "a1", "text": "plain text", "label": "pos"},
    {"id": "a2", "text": "with, a comma and \"quotes\"", "label": "neg"},
    {"id": "a3", "text": "ünïcödé ✓ 日本語", "label": "pos"},
    {"id": "a4", "text": "NA", "label": "neg"},  # must stay text, never become missing
    {"id": "a5", "text": "null", "label": "pos"},
    {"id": "a6", "text": "  spaced  ", "label": "neg"},
]
SUFFIXES = [".csv", ".tsv", ".tab", ".txt", ".jsonl", ".ndjson", ".json", ".parquet", ".pq"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_format_reads_the_same_rows(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    frame = read_table(path)
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame.to_dict("records") == ROWS


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_format_gives_the_same_table(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    table = read_labelled(path, DataConfig(train=path, id="id"))
    assert table.texts == [row["text"] for row in ROWS]
    assert table.labels == [row["label"] for row in ROWS]
    assert table.ids == [row["id"] for row in ROWS]
    assert table.id_column == "id"


def test_suffix_is_case_insensitive(tmp_path: Path, table_writer) -> None:
    path = table_writer(ROWS, tmp_path / "train.csv").rename(tmp_path / "TRAIN.CSV")
    assert len(read_table(path)) == len(ROWS)


def test_numeric_labels_agree_across_formats(tmp_path: Path, table_writer) -> None:
    rows = [{"text": "x", "label": 1}, {"text": "y", "label": 10}, {"text": "z", "label": 2}]
    csv_table = read_labelled(table_writer(rows, tmp_path / "t.csv"),
                              DataConfig(train=tmp_path / "t.csv"))
    floats = [{"text": r["text"], "label": float(r["label"])} for r in rows]
    json_table = read_labelled(table_writer(floats, tmp_path / "t.jsonl"),
                               DataConfig(train=tmp_path / "t.jsonl"))
    assert csv_table.labels == json_table.labels == ["1", "10", "2"]
    # numeric class names sort numerically: 2 before 10
    assert csv_table.targets(["1", "2", "10"]).tolist() == [0, 2, 1]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_limit_reads_the_first_rows(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    frame = read_table(path, limit=3)
    assert frame["id"].tolist() == ["a1", "a2", "a3"]


def test_data_limit_caps_the_training_rows(tmp_path: Path, table_writer, rows_maker) -> None:
    path = table_writer(rows_maker(), tmp_path / "train.csv")
    prepared = prepare_data(DataConfig(train=path, limit=40,
                                       split={"valid_size": 0.25, "seed": 0}))
    assert len(prepared.train) + len(prepared.valid) == 40
    kept = set(pd.read_csv(path)["text"][:40])
    assert set(prepared.train.texts) | set(prepared.valid.texts) == kept


RAW_TSV = 'text\tlabel\n"quoted start\tpos\nplain\tneg\nsaid "hi" there\tpos\n'


def test_quoting_none_reads_raw_quote_characters(tmp_path: Path) -> None:
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    frame = read_table(path, quoting="none")
    assert frame.to_dict("records") == [
        {"text": '"quoted start', "label": "pos"},
        {"text": "plain", "label": "neg"},
        {"text": 'said "hi" there', "label": "pos"},
    ]


def test_csv_quoting_swallows_rows_of_raw_tsv(tmp_path: Path) -> None:
    """The reason `quoting: none` exists: standard quoting merges rows of raw TSV."""
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    assert len(read_table(path, quoting="csv")) < 3


def test_quoting_none_through_the_recipe(tmp_path: Path) -> None:
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    table = read_labelled(path, DataConfig(train=path, quoting="none"))
    assert table.texts == ['"quoted start', "plain", 'said "hi" there']


def test_unreadable_file_suggests_quoting_none(tmp_path: Path) -> None:
    path = tmp_path / "broken.tsv"
    path.write_text('text\tlabel\n"never closed\tpos\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(path) in str(info.value)
    assert "data.quoting: none" in str(info.value)


def test_broken_jsonl_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"could not be read as jsonl"):
        read_table(path)
