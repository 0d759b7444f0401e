"""Read what `fitclass doctor` diagnoses: a table (as `train` reads it, through the recipe's
`data` section) or a folder of class folders of images (class counts only).

Unlike training, broken rows (an empty text, a missing label) do not stop the diagnosis:
they are left out and become a finding, so one command shows every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.data import checks
from fitclass.data.readers import read_data_table
from fitclass.data.table import Label, TextInput, build_table, label_text, sort_class_names
from fitclass.diagnosis.findings import Finding
from fitclass.errors import DataError, FitclassError, RecipeError
from fitclass.recipe import DataConfig, ImagesConfig, build_recipe


@dataclass
class Rows:
    """The usable labelled rows of one file, and what was left out."""

    source: str
    texts: list[TextInput]
    labels: list[Label]
    config: DataConfig
    images: bool = False
    left_out: list[Finding] = field(default_factory=list)

    @property
    def multilabel(self) -> bool:
        return self.config.multilabel

    @property
    def class_names(self) -> list[str]:
        if isinstance(self.config.label, list):
            return list(self.config.label)
        return sort_class_names(self.labels)


def data_config(path: str | Path, text: str | list[str] | None, label: str | list[str] | None,
                layout: dict[str, Any] | None = None) -> DataConfig:
    """The `data` section for `path`: the given columns (default `text` / `label`, as a
    recipe's) and layout keys (quoting, sep, encoding, label_sep, id, group)."""
    raw: dict[str, Any] = {"train": str(Path(path).resolve()), **(layout or {})}
    if text is not None:
        raw["text"] = text[0] if isinstance(text, list) and len(text) == 1 else text
    if label is not None:
        raw["label"] = label[0] if isinstance(label, list) and len(label) == 1 else label
    several = isinstance(raw.get("label"), list) or raw.get("label_sep") is not None
    task = "multilabel" if several else "multiclass"
    try:
        return build_recipe({"task": task, "data": raw}, "doctor options").data
    except RecipeError as error:
        raise FitclassError(str(error).replace("data.", "--set data.")) from None


def _missing_columns(frame: pd.DataFrame, path: Path, config: DataConfig) -> None:
    """A missing column names the columns the file has and the option that sets it."""
    columns = list(frame.columns)
    wanted = [("--text COLUMN", config.text_columns), ("--label COLUMN", config.label_columns)]
    wanted += [("--set data.id=COLUMN", [config.id])] if config.id else []
    wanted += [("--set data.group=COLUMN", [config.group])] if config.group else []
    for option, names in wanted:
        for name in names:
            if name not in columns:
                raise DataError(f"{path}: column {name!r} not found; the columns are "
                                f"{columns}; name the right one with {option}")


def read_rows(path: str | Path, config: DataConfig) -> Rows:
    """The labelled rows of a table file or image folder."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, config)
    return rows_of(read_data_table(path, config, limit=config.limit), path, config)


def rows_of(frame: pd.DataFrame, path: Path, config: DataConfig) -> Rows:
    """The labelled rows of a table read as `path`; empty texts and missing labels are
    left out (a finding says how many)."""
    frame = frame.rename(columns=str).reset_index(drop=True)  # rows by position
    _missing_columns(frame, path, config)
    found = [b for b in (checks.check_texts(frame, path, config.text_columns),
                         checks.check_label_values(frame, path, config)) if b is not None]
    bad = _unusable(frame, config) if found else []
    if bad:
        frame = frame.drop(index=bad).reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{path}: no row has both a text and a label; "
                        + "; ".join(b.message for b in found))
    table = build_table(frame, path, config, with_labels=True)
    assert table.labels is not None
    left_out = [Finding(
        "unusable_rows", "warning",
        f"{len(bad)} rows left out ({', '.join(b.check for b in found)})",
        {"rows": len(bad), "checks": {b.check: b.count for b in found}},
        "fill or delete these rows before training: `fitclass train` stops on them",
        "; ".join(b.message for b in found))] if bad else []
    return Rows(str(path), table.texts, table.labels, config, left_out=left_out)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) \
        or not label_text(value)


def _unusable(frame: pd.DataFrame, config: DataConfig) -> list[int]:
    """Every row (the checks list at most 100) whose text is empty or not a string, or
    whose label is missing (or, for 0/1 label columns, not 0/1)."""
    bad: set[int] = set()
    for column in config.text_columns:
        bad.update(i for i, v in enumerate(frame[column].tolist())
                   if not isinstance(v, str) or not v.strip())
    binary = isinstance(config.label, list)
    if config.multilabel and not binary:
        return sorted(bad)  # delimited names: an empty cell is a row with no label
    for column in config.label_columns:
        bad.update(i for i, v in enumerate(frame[column].tolist())
                   if _blank(v) or (binary and label_text(v).lower()
                                    not in ("0", "1", "true", "false")))
    return sorted(bad)


def read_image_folder(folder: Path, config: DataConfig) -> Rows:
    """A folder of class folders (or a root with `train/`): one row per image file, its
    class the folder's name. Images are not decoded: classes and counts only."""
    from fitclass.data.image_tables import folder_frame

    root = folder / "train" if (folder / "train").is_dir() else folder
    frame, labelled = folder_frame(root, need_labels=True)
    assert labelled
    images = config.model_copy(update={"train": root, "images": ImagesConfig(),
                                       "text": "path", "label": "label"})
    return Rows(str(root), list(frame["path"]), list(frame["label"]), images, images=True)
