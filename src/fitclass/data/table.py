"""`TextTable`: the rows of one file as texts, raw labels, ids and groups, ready to split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fitclass.errors import DataError
from fitclass.recipe import DataConfig

#: A text input: one string, or a (first, second) pair for sentence-pair tasks.
TextInput = str | tuple[str, str]


@dataclass
class TextTable:
    """Rows of one source file with the recipe's columns pulled out (labels still raw strings)."""

    source: str
    frame: pd.DataFrame
    texts: list[TextInput]
    labels: list[str] | None
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
        return TextTable(
            source=self.source,
            frame=self.frame.iloc[rows].reset_index(drop=True),
            texts=[self.texts[i] for i in rows],
            labels=None if self.labels is None else [self.labels[i] for i in rows],
            ids=[self.ids[i] for i in rows],
            groups=None if self.groups is None else self.groups[rows],
            id_column=self.id_column,
            positions=[self.positions[i] for i in rows],
        )

    def targets(self, class_names: list[str]) -> np.ndarray:
        """Label indices in `class_names` order; a label outside it is a `DataError`."""
        if self.labels is None:
            raise DataError(f"{self.source}: has no label column, so it cannot be scored")
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({label for label in self.labels if label not in index})
        if unknown:
            raise DataError(
                f"{self.source}: labels {unknown[:10]} are not among the model's classes "
                f"{class_names}; fix the labels or retrain with them in the training data"
            )
        return np.array([index[label] for label in self.labels], dtype=int)


def label_text(value: object) -> str:
    """Labels are compared as text: 1, 1.0 and '1' from different readers must agree."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sort_class_names(labels: list[str]) -> list[str]:
    """Numeric labels sort numerically (2 before 10); others alphabetically."""
    unique = sorted(set(labels))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def texts_from(frame: pd.DataFrame, columns: list[str]) -> list[TextInput]:
    """Pull single texts or pairs; values are already checked to be non-empty strings."""
    if len(columns) == 1:
        return [str(value) for value in frame[columns[0]]]
    return [(str(a), str(b)) for a, b in zip(frame[columns[0]], frame[columns[1]], strict=True)]


def build_table(
    frame: pd.DataFrame, path: str | Path, config: DataConfig, *, with_labels: bool
) -> TextTable:
    """Make a `TextTable` from a checked frame (see `checks.check_table`)."""
    ids = (
        [str(value) for value in frame[config.id]]
        if config.id
        else [str(i) for i in range(len(frame))]
    )
    labels = None
    if with_labels:
        labels = [label_text(value) for value in frame[config.label_columns[0]]]
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
