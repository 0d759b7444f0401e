"""A JSON file cut short is reported as truncated wherever the cut falls (`files.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitclass.errors import RunError
from fitclass.files import read_json_file


@pytest.mark.parametrize("cut", ['{"a": 1.', '{"a": 0.7', '{"a": 1, "b"', '{"a": [1, 2'])
def test_a_cut_anywhere_is_named_truncated(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(cut, encoding="utf-8")
    with pytest.raises(RunError, match="truncated at byte"):
        read_json_file(path)


def test_a_real_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"a" 1, "b": 2}', encoding="utf-8")
    with pytest.raises(RunError, match="line 1 column 6"):
        read_json_file(path)
