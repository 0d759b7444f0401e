"""Inputs scored by a finished run (`predict`, `evaluate`): every input row is served.

Training refuses empty texts (`checks.check_texts`); scoring cannot: test files and live
traffic hold empty strings, and a prediction table must keep one row per input. So here an
empty or missing text (a NaN or None cell, a JSONL null) is predicted as the empty string, with
a `DataWarning` naming its rows; and under `data.on_bad_image: skip` an unreadable image keeps
its row, with the reason in the table frame's `ERROR_COLUMN` and no prediction.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from fitclass.data import checks
from fitclass.data.image_tables import ERROR_COLUMN, image_list_table, read_image_table
from fitclass.data.prepare import scoring_config
from fitclass.data.readers import read_data_table
from fitclass.data.table import TextInput, TextTable, build_table, label_text
from fitclass.errors import DataError, RecipeError
from fitclass.recipe import DataConfig, merge, parse_overrides

#: `data` keys a scored file may set apart from training: its columns and its format.
SCORING_KEYS = ("text", "id", "label", "quoting", "sep", "encoding", "on_bad_image", "images")


class DataWarning(UserWarning):
    """Input that is served, but not as it should be (empty texts, unreadable images); the
    CLI prints these as `warning: ...`."""


def scoring_data(config: DataConfig, *, text_column: str | list[str] | None = None,
                 overrides: Sequence[str] | None = None) -> DataConfig:
    """The run's `data` section with a scored file's own layout: `text_column`, and
    `overrides` in `--set` syntax (`data.text=review`), limited to `SCORING_KEYS`."""
    allowed = [key for key in SCORING_KEYS if key in DataConfig.model_fields]
    listed = ", ".join(f"data.{key}" for key in allowed if key != "images")
    listed += ", data.images.column" if "images" in allowed else ""
    parsed = parse_overrides(list(overrides or []))
    changes = parsed.pop("data", {})
    if parsed or not isinstance(changes, dict):
        raise RecipeError(f"--set {', '.join(parsed) or 'data'}: predict and evaluate change "
                          f"only the scored file's layout: {listed}")
    for key in changes:
        if key not in allowed:
            raise RecipeError(f"--set data.{key}: cannot change when scoring (the model was "
                              f"trained with it); predict and evaluate accept {listed}")
    if text_column is not None:
        if changes.get("text", text_column) != text_column:
            raise RecipeError(f"text column given twice ({text_column!r} and "
                              f"{changes['text']!r}); give it once")
        changes["text"] = text_column
    _check_shapes(config, changes)
    try:
        return DataConfig.model_validate(merge(config.model_dump(), changes))
    except ValidationError as error:
        problems = "; ".join(f"data.{'.'.join(map(str, item['loc']))}: {item['msg']}"
                             for item in error.errors())
        raise RecipeError(f"--set: {problems}") from None


def _check_shapes(config: DataConfig, changes: dict[str, Any]) -> None:
    """Renamed columns must keep the run's shape: as many text columns, one label column."""
    text = changes.get("text")
    count = len(config.text_columns)
    names = [text] if isinstance(text, str) else text
    fits = isinstance(names, list) and len(names) == count and all(isinstance(name, str)
                                                                   for name in names)
    if text is not None and not fits:
        shape = "one column name" if count == 1 else (
            f"a pair [first, second] (--set 'data.text=[a, b]'), as {config.text_columns}")
        raise RecipeError(f"data.text {text!r}: this run reads {count} text column"
                          f"{'s' if count > 1 else ''}; give {shape}")
    if "label" in changes and isinstance(config.label, list):
        raise RecipeError(f"data.label: this run's labels are its 0/1 columns {config.label}, "
                          f"which are its class names; rename the file's columns instead")
    if "label" in changes and not isinstance(changes["label"], str):
        raise RecipeError(f"data.label {changes['label']!r}: give one column name")
    images = changes.get("images")
    if images is not None and (config.images is None or not isinstance(images, dict)
                               or set(images) - {"column"}):
        raise RecipeError("data.images: only data.images.column (the path column) can change "
                          "when scoring, and only for an image run")


def scoring_table(inputs: Sequence[TextInput | None] | pd.DataFrame | str | Path,
                  config: DataConfig, *, need_labels: bool,
                  pixel_side: int | None = None) -> TextTable:
    """Every row of a file, DataFrame or list, in order (see the module docstring).
    `pixel_side`: an image model's stored side, so that the image checks' scan decodes the
    pixels the model reads (each new image decoded once, not cached)."""
    if isinstance(inputs, str | Path):
        return _file_table(Path(inputs), config, need_labels=need_labels,
                           pixel_side=pixel_side)
    if isinstance(inputs, pd.DataFrame) and config.images is not None:
        raise DataError("an image run predicts on an image folder, a table file of image "
                        "paths, or a list of image paths; not a DataFrame")
    if isinstance(inputs, pd.DataFrame):
        return _frame_table(inputs, "frame", config, need_labels=need_labels)
    items = list(inputs)
    if config.images is not None and config.on_bad_image == "skip":
        report = checks.CheckReport()
        table = image_list_table([_path_item(item) for item in items], config, report,
                                 pixel_side)
        _warn(report, "bad_image")
        return table
    texts = [_text_item(item, row) for row, item in enumerate(items)]
    if len(config.text_columns) == 2 and any(isinstance(text, str) for text in texts):
        raise DataError(f"texts: this run reads sentence pairs ({config.text_columns}); give "
                        f"each input as a (first, second) tuple")
    if config.images is None:
        _warn_empty(texts, "texts", None)
    return TextTable(source="texts", frame=pd.DataFrame({"text": texts}), texts=texts,
                     labels=None, ids=[str(i) for i in range(len(texts))])


def row_errors(table: TextTable) -> list[str]:
    """Why each row has no prediction ('' for rows that are predicted)."""
    if ERROR_COLUMN not in table.frame.columns:
        return [""] * len(table)
    return [str(error) for error in table.frame[ERROR_COLUMN]]


def usable_rows(table: TextTable) -> list[int]:
    """Positions of the rows that can be predicted."""
    return [row for row, error in enumerate(row_errors(table)) if not error]


def lines_of(data: bytes, source: str = "standard input") -> list[str]:
    """One text per line (UTF-8, a BOM and CRLF endings allowed); a blank line is an empty
    text, the newline ending the last line is not a line of its own."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not UTF-8 (byte {error.start}: {error.reason}); convert "
                        f"it, e.g. `iconv -f cp949 -t utf-8`") from None
    if not text:
        raise DataError(f"{source}: no lines to predict; give one text per line")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def check_line_inputs(config: DataConfig, source: str) -> None:
    """One text per line cannot feed a sentence-pair run."""
    if config.images is None and len(config.text_columns) == 2:
        raise DataError(f"{source}: one text per line cannot give the sentence pairs this run "
                        f"reads (columns {config.text_columns}); give a table file with both "
                        f"columns")


def _file_table(path: Path, config: DataConfig, *, need_labels: bool,
                pixel_side: int | None = None) -> TextTable:
    if not path.exists():
        raise DataError(f"{path}: not found; give the file (or image folder) to score")
    if config.images is not None:
        report = checks.CheckReport()
        table = read_image_table(path, config, report, need_labels=need_labels,
                                 keep_bad=config.on_bad_image == "skip",
                                 pixel_side=pixel_side, cache=False)
        _warn(report, "bad_image")
        return table
    frame = read_data_table(path, config)
    return _frame_table(frame, str(path), config, need_labels=need_labels)


def _frame_table(frame: pd.DataFrame, source: str, config: DataConfig, *,
                 need_labels: bool) -> TextTable:
    # the file need not carry the recipe's id column (row index instead) or group column
    config = scoring_config(list(frame.columns), config)
    checks.check_columns(frame, source, config, need_labels=need_labels)
    frame = frame.reset_index(drop=True)
    texts = {column: _column_texts(frame[column], source, column)
             for column in config.text_columns}
    frame = frame.assign(**texts)
    pairs = zip(*texts.values(), strict=True)
    _warn_empty([row[0] if len(row) == 1 else row for row in pairs], source,
                config.text_columns)
    with_labels = _labels_usable(frame, source, config, need_labels=need_labels)
    return build_table(frame, source, config, with_labels=with_labels)


def _as_text(value: object) -> str | None:
    """A cell as text: missing is empty, a number its digits, anything else not text."""
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating) and np.isnan(value):
        return ""
    if isinstance(value, bool | int | float | np.integer | np.floating | np.bool_):
        return label_text(value)
    return None


def _column_texts(values: pd.Series, source: str, column: str) -> list[str]:
    texts = [_as_text(value) for value in values]
    bad = [row for row, text in enumerate(texts) if text is None]
    if bad:
        kind = type(values.iloc[bad[0]]).__name__
        raise DataError(f"{source}: {checks.where(source, bad)}: text column {column!r} holds "
                        f"{kind} values, not text; give one string per cell (or set "
                        f"data.text / --text-column to the text column)")
    return [text or "" for text in texts]


def _text_item(item: object, row: int) -> TextInput:
    if isinstance(item, tuple) and len(item) == 2:
        return (_one_text(item[0], row), _one_text(item[1], row))
    return _one_text(item, row)


def _one_text(item: object, row: int) -> str:
    text = _as_text(item)
    if text is None:
        raise DataError(f"texts: item {row} is a {type(item).__name__}, not text; give "
                        f"strings (or pairs of strings for a sentence-pair run)")
    return text


def _path_item(item: object) -> str:
    return "" if item is None else str(item)


def _warn_empty(texts: Sequence[TextInput], source: str, columns: list[str] | None) -> None:
    rows = [row for row, text in enumerate(texts)
            if not all(part.strip() for part in ((text,) if isinstance(text, str) else text))]
    if not rows:
        return
    named = "" if columns is None else (
        f" in column {columns[0]!r}" if len(columns) == 1 else f" in columns {columns}")
    warnings.warn(f"{source}: {len(rows)} empty text{'s' if len(rows) > 1 else ''}{named}, "
                  f"{checks.where(source, rows)}; predicted as empty text (each keeps its row "
                  f"in the output)", DataWarning, stacklevel=4)


def _labels_usable(frame: pd.DataFrame, source: str, config: DataConfig, *,
                   need_labels: bool) -> bool:
    """Labels are read when present; broken ones stop `evaluate` but are only left out of
    `predict`'s output (predicting needs no labels)."""
    if not all(column in frame.columns for column in config.label_columns):
        return False
    finding = checks.check_label_values(frame, source, config)
    if finding is None:
        return True
    if need_labels:
        raise DataError(f"data checks failed:\n  - {finding.message}")
    warnings.warn(f"true labels left out of the predictions: {finding.message}", DataWarning,
                  stacklevel=4)
    return False


def _warn(report: checks.CheckReport, check: str) -> None:
    for finding in report.warnings:  # skipped files must not go unsaid
        if finding.check == check:
            warnings.warn(finding.message, DataWarning, stacklevel=4)
