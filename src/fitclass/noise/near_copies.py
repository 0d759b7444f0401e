"""`fitclass audit --against FILE`: rows of other files (a test set, a validation file) that
are exact or near copies of training rows, so their scores would be optimistic.

One `<out stem>_near_copies.csv` row per such row, with the training row it copies, and a
summary (counts per file, and near duplicates inside train) for `<out stem>_summary.json`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitclass.data.checks import normalise
from fitclass.data.near_duplicate_checks import check_near_duplicates
from fitclass.data.prepare import read_inputs
from fitclass.data.table import TextTable
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.errors import FitclassError
from fitclass.recipe import DataConfig
from fitclass.runs.layout import claim_file

COLUMNS = ["file", "row", "id", "text", "train_row", "train_id", "train_text", "similarity",
           "exact"]
FIX = ("remove these rows from the file, or their copies from train (a validation split "
       "made by fitclass: data.split.dedupe: group)")


def output_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_near_copies.csv")


def check_output(path: Path) -> None:
    """Replace only a near-copies table fitclass wrote (its header)."""
    claim_file(path, lambda file: _header(file) == COLUMNS,
               "a near-copies table written by fitclass audit", "--out", "near_copies.csv")


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _threshold(config: DataConfig) -> float:
    if config.images is not None:
        raise FitclassError("--against checks text data; for images, fitclass train reports "
                            "near-duplicate images across train and validation")
    if config.near_duplicate_threshold is None:
        raise FitclassError("--against needs data.near_duplicate_threshold (null turns the "
                            "near-duplicate check off): set it, e.g. --set "
                            "data.near_duplicate_threshold=0.8")
    return config.near_duplicate_threshold


def copies_in_train(train: TextTable, other: TextTable, threshold: float,
                    name: str) -> pd.DataFrame:
    """The rows of `other` with an exact or near copy among `train`'s rows."""
    texts = train.texts + other.texts
    is_other = np.arange(len(texts)) >= len(train)
    match, score = find_near_duplicates(texts, threshold).best_match(is_other, ~is_other)
    hits = np.flatnonzero(match >= 0).tolist()
    partner = [int(match[k]) for k in hits]
    return pd.DataFrame({
        "file": name, "row": [other.positions[k] for k in hits],
        "id": [other.ids[k] for k in hits], "text": [str(other.texts[k]) for k in hits],
        "train_row": [train.positions[t] for t in partner],
        "train_id": [train.ids[t] for t in partner],
        "train_text": [str(train.texts[t]) for t in partner],
        "similarity": [round(float(score[k]), 4) for k in hits],
        "exact": [normalise(other.texts[k]) == normalise(train.texts[t])
                  for k, t in zip(hits, partner, strict=True)],
    }, columns=COLUMNS)


def near_copies(train: TextTable, paths: Sequence[str | Path],
                config: DataConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Copies of training rows in each file of `paths` (read as `predict` reads, labels
    optional), and the summary: per file, rows with an exact or near copy in train."""
    threshold = _threshold(config)
    frames, files = [], {}
    for path in paths:
        other = read_inputs(path, config, optional_id=True)
        frame = copies_in_train(train, other, threshold, str(path))
        frames.append(frame)
        files[str(path)] = {"rows": len(other), "with_copy_in_train": len(frame),
                            "exact": int(frame["exact"].sum()),
                            "share": round(len(frame) / max(1, len(other)), 4)}
    inside = check_near_duplicates(find_near_duplicates(train.texts, threshold), train.texts,
                                   train.source, train.positions)
    summary = {"threshold": threshold, "against": files, "fix": FIX,
               "train_rows_nearly_repeating": 0 if inside is None else inside.count,
               "train_examples": [] if inside is None else inside.examples}
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return table, summary
