"""`TextTable.concat` and `joined`: rows of two tables as one, ids, labels, groups and
source positions kept in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fitclass.data.table import TextTable, joined
from fitclass.errors import DataError


def table(source: str, texts: list[str], labels: list[str] | None, *, ids: list[str],
          groups: list[str] | None = None, id_column: str = "id") -> TextTable:
    frame = pd.DataFrame({"text": texts})
    return TextTable(source=source, frame=frame, texts=list(texts), labels=labels,
                     ids=ids, groups=None if groups is None else np.array(groups),
                     id_column=id_column, positions=[10 + i for i in range(len(texts))])


def test_concat_keeps_both_tables_rows_in_order() -> None:
    first = table("a.csv", ["one", "two"], ["x", "y"], ids=["a1", "a2"], groups=["g", "h"])
    second = table("b.csv", ["three"], ["y"], ids=["b1"], groups=["k"])
    both = first.concat(second)
    assert both.source == "a.csv + b.csv"
    assert both.texts == ["one", "two", "three"] and both.labels == ["x", "y", "y"]
    assert both.ids == ["a1", "a2", "b1"] and both.id_column == "id"
    assert both.groups is not None and both.groups.tolist() == ["g", "h", "k"]
    assert both.positions == [10, 11, 10]  # each row's position in its own file
    assert both.frame["text"].tolist() == both.texts
    assert both.frame.index.tolist() == [0, 1, 2]
    assert len(first) == 2 and len(second) == 1  # neither table changed


def test_concat_with_stand_in_labels_and_an_id_prefix() -> None:
    """A distillation's unlabelled rows: the teacher's predictions as their labels, ids
    marked so they cannot be a training row's; groups kept only where both have them."""
    train = table("train.csv", ["one", "two"], [("x",), ("x", "y")], ids=["1", "2"],
                  groups=["g", "h"])
    unlabelled = table("more.csv", ["three", "four"], None, ids=["1", "2"])
    both = train.concat(unlabelled, labels=[(), ("y",)], id_prefix="unlabelled:")
    assert both.labels == [("x",), ("x", "y"), (), ("y",)] and both.multilabel
    assert both.ids == ["1", "2", "unlabelled:1", "unlabelled:2"]
    assert both.groups is None
    assert both.targets(["x", "y"]).tolist() == [[1, 0], [1, 1], [0, 0], [0, 1]]
    assert train.concat(unlabelled).labels is None  # no labels for the second: none
    with pytest.raises(ValueError, match=r"1 labels for the 2 rows of more\.csv"):
        train.concat(unlabelled, labels=[("x",)])


def test_joined_numbers_rows_without_an_id_column_and_needs_groups_in_both() -> None:
    first = table("train.csv", ["one", "two"], ["x", "y"], ids=["0", "1"], id_column="row")
    second = table("valid.csv", ["three"], ["x"], ids=["0"], id_column="row")
    assert joined(first, second).ids == ["0", "1", "2"]
    named = table("train.csv", ["one"], ["x"], ids=["k"])
    assert joined(named, table("valid.csv", ["two"], ["y"], ids=["m"])).ids == ["k", "m"]
    grouped = table("train.csv", ["one"], ["x"], ids=["k"], groups=["g"])
    with pytest.raises(DataError, match=r"valid\.csv: data\.group is a column of train\.csv"):
        joined(grouped, table("valid.csv", ["two"], ["y"], ids=["m"]))
