"""Prediction tables written atomically, in the format of the file's extension."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from fitclass.data.writers import atomic_write_bytes, output_format, write_table
from fitclass.errors import DataError


def test_format_follows_the_extension() -> None:
    assert output_format(Path("p.TSV")) == "tsv" and output_format(None) == "csv"
    assert output_format(None, "jsonl") == "jsonl"
    with pytest.raises(DataError, match=r"'\.txt'.*\.csv, \.tsv, \.jsonl, \.parquet"):
        output_format(Path("p.txt"))
    with pytest.raises(DataError, match="choose one of csv, jsonl, parquet, tsv"):
        output_format(None, "xml")


def test_replaces_atomically_with_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "p.jsonl"
    target.write_text("old")
    frame = pd.DataFrame({"row": ["0", "1"], "prob:a": [0.5, float("nan")]})
    previous = os.umask(0o022)
    try:
        write_table(frame, target)
    finally:
        os.umask(previous)
    assert target.read_text().splitlines() == ['{"row":"0","prob:a":0.5}',
                                               '{"row":"1","prob:a":null}']
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["p.jsonl"]


def test_unwritable_targets_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="cannot be written"):
        atomic_write_bytes(tmp_path / "file" / "p.csv", b"x")
    assert sorted(os.listdir(tmp_path)) == ["file"]
