"""`TextTable`: the rows of one file as texts, raw labels, ids and groups, ready to split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from fitclass.errors import DataError
from fitclass.recipe import DataConfig

#: A text input: one string, or a (first, second) pair for sentence-pair tasks.
TextInput = str | tuple[str, str]
#: A row's label: a class name (multi-class) or a tuple of label names (multi-label).
Label = str | tuple[str, ...]


@dataclass
class TextTable:
    """Rows of one source file with the recipe's columns pulled out (labels still raw strings)."""

    source: str
    frame: pd.DataFrame
    texts: list[TextInput]
    labels: list[Label] | None
    ids: list[str]
    groups: np.ndarray | None = None
    id_column: str = "row"
    #: Row positions in the source file (a split keeps the file's numbering for messages).
    positions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.positions:
            self.positions = list(range(len(self.texts)))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: np.ndarray) -> TextTable:
        """The rows at positions `rows`, in that order."""
        rows = np.asarray(rows, dtype=int)
        picked = rows.tolist()  # a list is indexed by Python ints 3x faster than by numpy's
        return TextTable(
            source=self.source,
            frame=self.frame.iloc[rows].reset_index(drop=True),
            texts=[self.texts[i] for i in picked],
            labels=None if self.labels is None else [self.labels[i] for i in picked],
            ids=[self.ids[i] for i in picked],
            groups=None if self.groups is None else self.groups[rows],
            id_column=self.id_column,
            positions=[self.positions[i] for i in picked],
        )

    def concat(self, other: TextTable, *, labels: list[Label] | None = None,
               id_prefix: str = "") -> TextTable:
        """This table's rows, then `other`'s. `labels` stands for `other`'s labels (e.g. a
        teacher's predictions of unlabelled rows), `id_prefix` goes before its ids (so they
        cannot reuse this table's); labels and groups stay only where both tables have
        them. The first table's id column and each row's source position are kept."""
        second = other.labels if labels is None else labels
        if second is not None and len(second) != len(other):
            raise ValueError(f"{len(second)} labels for the {len(other)} rows of "
                             f"{other.source}")
        return TextTable(
            source=f"{self.source} + {other.source}",
            frame=pd.concat([self.frame, other.frame], ignore_index=True),
            texts=self.texts + other.texts,
            labels=None if self.labels is None or second is None else self.labels + second,
            ids=self.ids + [f"{id_prefix}{i}" for i in other.ids],
            groups=None if self.groups is None or other.groups is None
            else np.concatenate([self.groups, other.groups]),
            id_column=self.id_column,
            positions=self.positions + other.positions,
        )

    @property
    def multilabel(self) -> bool:
        return self.labels is not None and bool(self.labels) and isinstance(self.labels[0],
                                                                             tuple)

    def targets(self, class_names: list[str]) -> np.ndarray:
        """Label indices (multi-class) or a 0/1 matrix (multi-label) in `class_names` order;
        a label outside `class_names` is a `DataError`."""
        if self.labels is None:
            raise DataError(f"{self.source}: has no label column, so it cannot be scored")
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({name for name in label_names(self.labels) if name not in index})
        if unknown:
            raise DataError(
                f"{self.source}: labels {unknown[:10]} are not among the model's classes "
                f"{class_names}; fix the labels or retrain with them in the training data"
            )
        if not self.multilabel:
            return np.array([index[str(label)] for label in self.labels], dtype=int)
        matrix = np.zeros((len(self.labels), len(class_names)), dtype=np.float32)
        for row, names in enumerate(self.labels):
            matrix[row, [index[name] for name in names]] = 1.0
        return matrix


def joined(first: TextTable, second: TextTable) -> TextTable:
    """The rows of `first`, then those of `second` (a training and a validation file read
    as one set of labelled rows). Without an id column a row's id is its position in the
    joined table, so the second file's rows do not reuse the first's ids."""
    if (first.groups is None) != (second.groups is None):
        raise DataError(f"{second.source}: data.group is a column of {first.source} but not "
                        f"of this file (or the other way round); give both files the column")
    table = first.concat(second)
    if first.id_column == "row":
        table.ids = [str(i) for i in range(len(table))]
    return table


def label_names(labels: list[Label]) -> list[str]:
    """Every class name used by `labels`, flattening multi-label tuples."""
    if not any(isinstance(label, tuple) for label in labels):
        return cast(list[str], list(labels))  # all of them class names
    names: list[str] = []
    for label in labels:
        names.extend(label if isinstance(label, tuple) else [label])
    return names


def label_text(value: object) -> str:
    """Labels are compared as text: 1, 1.0 and '1' from different readers must agree."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sort_class_names(labels: list[Label]) -> list[str]:
    """Numeric labels sort numerically (2 before 10); others alphabetically."""
    unique = sorted(set(label_names(labels)))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def column_text(values: pd.Series) -> list[str]:
    """`str(value)` of every cell. `tolist()` first: walking a Series of Arrow strings costs
    a microsecond a row; a cell that is a `str` already is kept as it is (`str()` would
    return that same object)."""
    return [value if type(value) is str else str(value) for value in values.tolist()]


def shared(values: list[str]) -> list[str]:
    """Equal strings as one object each: a million labels or group names are a few dozen
    strings, not a million copies."""
    seen: dict[str, str] = {}
    return [seen.setdefault(value, value) for value in values]


def texts_from(frame: pd.DataFrame, columns: list[str]) -> list[TextInput]:
    """Pull single texts or pairs; values are already checked to be non-empty strings."""
    if len(columns) == 1:
        return cast(list[TextInput], column_text(frame[columns[0]]))
    return list(zip(column_text(frame[columns[0]]), column_text(frame[columns[1]]),
                    strict=True))


def is_positive(value: object) -> bool:
    """A multi-label 0/1 cell (checked to be 0/1 by `checks.check_binary_labels`)."""
    return label_text(value).lower() in ("1", "true")


def read_labels(frame: pd.DataFrame, config: DataConfig) -> list[Label]:
    """Class names (multi-class), or tuples of label names from 0/1 columns or a delimited
    column (multi-label)."""
    if isinstance(config.label, list):
        columns = config.label
        flags = np.array([[is_positive(v) for v in frame[c].tolist()] for c in columns]).T
        return [tuple(c for c, on in zip(columns, row, strict=True) if on) for row in flags]
    values = [value.strip() if type(value) is str else label_text(value)
              for value in frame[config.label].tolist()]  # label_text, without a call a row
    if config.label_sep is None:
        return cast(list[Label], shared(values))
    return [tuple(sorted({part.strip() for part in value.split(config.label_sep)
                          if part.strip()})) for value in values]


def build_table(
    frame: pd.DataFrame, path: str | Path, config: DataConfig, *, with_labels: bool
) -> TextTable:
    """Make a `TextTable` from a checked frame (see `checks.check_table`)."""
    ids = column_text(frame[config.id]) if config.id else [str(i) for i in range(len(frame))]
    labels: list[Label] | None = None
    if with_labels:
        labels = read_labels(frame, config)
    groups = frame[config.group].astype(str).to_numpy() if config.group in frame.columns else None
    return TextTable(
        source=str(path),
        frame=frame,
        texts=texts_from(frame, config.text_columns),
        labels=labels,
        ids=ids,
        groups=groups,
        id_column=config.id or "row",
    )
