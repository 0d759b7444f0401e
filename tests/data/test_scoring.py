"""Reading inputs for a finished run: lines from standard input and layout overrides."""

from __future__ import annotations

import pytest

from fitclass.data.scoring import check_line_inputs, lines_of, scoring_data, scoring_table
from fitclass.errors import DataError, RecipeError
from fitclass.recipe import DataConfig


def test_lines_keep_blank_lines_as_empty_texts() -> None:
    assert lines_of(b"a\n\nb\n") == ["a", "", "b"]
    assert lines_of("\ufeffé\r\n\r\nlast".encode()) == ["é", "", "last"]
    assert lines_of(b"\n") == [""]
    with pytest.raises(DataError, match="no lines"):
        lines_of(b"")


def test_overrides_keep_the_run_shape() -> None:
    pair = DataConfig.model_validate({"train": "t.csv", "text": ["q", "a"], "id": "id"})
    changed = scoring_data(pair, overrides=["data.text=[question, answer]", "data.id="])
    assert changed.text == ["question", "answer"] and changed.id is None
    with pytest.raises(RecipeError, match=r"reads 2 text columns; give a pair"):
        scoring_data(pair, text_column="question")
    tags = DataConfig.model_validate({"train": "t.csv", "label": ["x", "y"]})
    with pytest.raises(RecipeError, match="class names"):
        scoring_data(tags, overrides=["data.label=z"])


def test_a_pair_run_needs_pairs() -> None:
    pair = DataConfig.model_validate({"train": "t.csv", "text": ["q", "a"]})
    with pytest.raises(DataError, match="one text per line cannot give the sentence pairs"):
        check_line_inputs(pair, "standard input")
    with pytest.raises(DataError, match=r"\(first, second\) tuple"):
        scoring_table(["a question"], pair, need_labels=False)
    table = scoring_table([("q", None)], pair, need_labels=False)
    assert table.texts == [("q", "")]
