"""Data checks run before any training: fail on broken input, warn on risky input.

Errors stop the run with the file, rows, column, what was expected and how to fix it.
Warnings (duplicates, leakage, conflicting labels, truncation) are recorded in the run's
`data_checks.json` and printed, but training goes on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fitclass.data.grouping import first_seen_codes, repeated_groups
from fitclass.data.table import Label, TextInput, label_names, label_text
from fitclass.errors import DataError
from fitclass.recipe import DataConfig

MAX_LISTED = 8  # rows or examples quoted in one message


@dataclass
class Finding:
    """One check's outcome."""

    level: Literal["error", "warning", "info"]
    check: str
    message: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """All findings of one run, plus the class counts; saved as `data_checks.json`."""

    findings: list[Finding] = field(default_factory=list)
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    augmented_rows: dict[str, int] = field(default_factory=dict)
    #: Every check that ran, found something or not (the checks list shows the rest as ok).
    checked: list[str] = field(default_factory=list)

    def add(self, finding: Finding | None) -> None:
        if finding is not None:
            self.findings.append(finding)

    def ran(self, *checks: str) -> None:
        """Record that `checks` ran (their findings, if any, are added on their own)."""
        self.checked.extend(c for c in checks if c not in self.checked)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def raise_errors(self) -> None:
        """Raise one `DataError` listing every error found, so the user fixes them in one go."""
        if self.errors:
            raise DataError("data checks failed:\n" + "\n".join(f"  - {e.message}"
                                                               for e in self.errors))

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": [asdict(f) for f in self.errors],
            "warnings": [asdict(f) for f in self.warnings],
            "info": [asdict(f) for f in self.findings if f.level == "info"],
            "class_counts": self.class_counts,
            "augmented_rows": self.augmented_rows,
            "checked": self.checked,
        }


def where(path: str | Path, rows: list[int]) -> str:
    """'rows 3, 9 (lines 5, 11)': 0-based row positions, plus file lines for text formats."""
    shown = rows[:MAX_LISTED]
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    text = f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, shown))}{more}"
    suffix = Path(path).suffix.lower()
    offset = {".csv": 2, ".tsv": 2, ".tab": 2, ".txt": 2, ".jsonl": 1, ".ndjson": 1}.get(suffix)
    if offset is not None:
        text += f" (file line{'s' if len(rows) > 1 else ''} "
        text += ", ".join(str(r + offset) for r in shown) + ")"
    return text


def normalise(text: TextInput) -> str:
    """Duplicate detection ignores case and runs of whitespace."""
    joined = text if isinstance(text, str) else " [SEP] ".join(text)
    # str.split() cuts at exactly the characters `re.sub(r"\s+", " ", ...)` replaced (those
    # str.isspace() accepts) and drops them at both ends as strip() did, 4x faster
    return " ".join(joined.split()).lower()


def check_columns(frame: pd.DataFrame, path: str | Path, config: DataConfig, *,
                  need_labels: bool) -> None:
    """Missing columns end the checks at once: nothing else can be read without them."""
    wanted = {"data.text": config.text_columns}
    if need_labels:
        wanted["data.label"] = config.label_columns
    if config.id:
        wanted["data.id"] = [config.id]
    if config.group and need_labels:
        wanted["data.group"] = [config.group]
    columns = list(frame.columns)
    for key, names in wanted.items():
        for name in names:
            if name not in columns:
                raise DataError(
                    f"{path}: column {name!r} not found; columns are {columns}; set {key} "
                    f"to one of them"
                )


def check_texts(frame: pd.DataFrame, path: str | Path, columns: list[str]) -> Finding | None:
    """Every text cell must be a non-empty string."""
    bad: list[int] = []
    for column in columns:
        # tolist(): walking a Series of Arrow strings costs a microsecond a row
        bad.extend(row for row, value in enumerate(frame[column].tolist())
                   if not isinstance(value, str) or not value.strip())
    if not bad:
        return None
    rows = sorted(set(bad))
    return Finding(
        "error", "empty_text",
        f"{path}: {where(path, rows)}: text column {columns if len(columns) > 1 else columns[0]!r}"
        f" is empty or not a string; expected non-empty text: fill or delete these rows",
        count=len(rows), rows=rows[:100],
    )


def check_labels(frame: pd.DataFrame, path: str | Path, column: str) -> Finding | None:
    """Every labelled row needs a label."""
    rows = [row for row, value in enumerate(frame[column].tolist()) if _no_label(value)]
    if not rows:
        return None
    return Finding(
        "error", "missing_label",
        f"{path}: {where(path, rows)}: column {column!r} has no label; every training row "
        f"needs one: label these rows or remove them",
        count=len(rows), rows=rows[:100],
    )


def _no_label(value: object) -> bool:
    if isinstance(value, str):  # most cells: skip label_text's checks
        return not value.strip()
    return value is None or (isinstance(value, float) and np.isnan(value)) \
        or label_text(value) == ""


def check_label_values(frame: pd.DataFrame, path: str | Path,
                       config: DataConfig) -> Finding | None:
    """The label check for the recipe's label layout: 0/1 columns hold 0/1, a single label
    column has no empty cell (delimited multi-label names are checked when split)."""
    if isinstance(config.label, list):
        return check_binary_labels(frame, path, config.label)
    return None if config.multilabel else check_labels(frame, path, config.label_columns[0])


def check_binary_labels(frame: pd.DataFrame, path: str | Path,
                        columns: list[str]) -> Finding | None:
    """Multi-label 0/1 columns must hold 0 or 1 (or true/false) in every row."""
    bad_rows: set[int] = set()
    bad_columns = []
    for column in columns:
        rows = [row for row, value in enumerate(frame[column].tolist())
                if label_text(value).lower() not in ("0", "1", "true", "false")]
        if rows:
            bad_rows.update(rows)
            bad_columns.append(column)
    if not bad_rows:
        return None
    rows = sorted(bad_rows)
    return Finding(
        "error", "bad_binary_label",
        f"{path}: {where(path, rows)}: label columns {bad_columns} must hold 0 or 1 in every "
        f"row; fix these cells (an empty cell is not a 0)",
        count=len(rows), rows=rows[:100],
    )


def check_min_class_rows(labels: list[Label], path: str | Path) -> Finding | None:
    """Stratified splitting needs at least two rows of every class."""
    counts = Counter(label_names(labels))
    rare = sorted(name for name, n in counts.items() if n < 2)
    if not rare:
        return None
    return Finding(
        "error", "rare_class",
        f"{path}: classes {rare[:MAX_LISTED]} have fewer than 2 rows, too few to stratify a "
        f"validation split; add rows, merge or drop these classes, or give data.valid",
        count=len(rare), examples=rare[:MAX_LISTED],
    )


def check_two_classes(labels: list[Label], path: str | Path,
                      limit: int | None) -> Finding | None:
    """A multi-class model needs at least two classes to tell apart."""
    names = sorted(set(label_names(labels)))
    if len(names) != 1:
        return None
    read = f" (data.limit: {limit} reads only the first rows; a file sorted by label gives " \
           f"one class)" if limit else ""
    return Finding(
        "error", "single_class",
        f"{path}: every training row has the label {names[0]!r} ({len(labels)} rows){read}; "
        f"a classifier needs at least two classes: add rows of the other classes, or check "
        f"that data.label names the label column",
        count=len(labels), examples=names,
    )


def check_label_positives(labels: list[Label], path: str | Path,
                          config: DataConfig) -> Finding | None:
    """Multi-label training needs a positive example of every label, and rows with labels."""
    if not any(labels):
        where_labels = (f"every data.label column {config.label_columns} is 0 in every row"
                        if isinstance(config.label, list) else
                        f"column {config.label!r} is empty in every row")
        return Finding(
            "error", "no_labels",
            f"{path}: no training row has any label: {where_labels}; check the label "
            f"columns (data.label{', data.label_sep' if config.label_sep else ''})",
            count=len(labels),
        )
    if not isinstance(config.label, list):
        return None  # names found in the data all have a positive row
    used = set(label_names(labels))
    never = [column for column in config.label if column not in used]
    if not never:
        return None
    return Finding(
        "error", "label_without_positives",
        f"{path}: label columns {never[:MAX_LISTED]} are 0 in every training row; a label "
        f"with no positive example can never be learned: add rows that have it, or remove "
        f"the column from data.label",
        count=len(never), examples=never[:MAX_LISTED],
    )


def check_unseen_labels(train_labels: list[Label], valid_labels: list[Label],
                        valid_path: str | Path) -> Finding | None:
    """A validation label the model never trains on can never be predicted."""
    seen = set(label_names(train_labels))
    rows = [i for i, label in enumerate(valid_labels)
            if any(name not in seen for name in (label if isinstance(label, tuple) else
                                                 (label,)))]
    if not rows:
        return None
    names = sorted({n for i in rows for n in label_names([valid_labels[i]]) if n not in seen})
    return Finding(
        "error", "unseen_label",
        f"{valid_path}: {where(valid_path, rows)}: labels {names[:MAX_LISTED]} never occur in "
        f"the training data, so the model can never predict them; add training rows for "
        f"them or drop these validation rows",
        count=len(rows), rows=rows[:100], examples=names[:MAX_LISTED],
    )


def check_duplicates(texts: list[TextInput], labels: list[Label],
                     path: str | Path) -> list[Finding]:
    """Exact duplicates after normalisation, and duplicates that disagree on their label."""
    repeated = repeated_groups(first_seen_codes(map(normalise, texts)))
    findings: list[Finding] = []
    if len(repeated):
        extra = len(repeated.rows) - len(repeated)
        findings.append(Finding(
            "warning", "duplicates",
            f"{path}: {extra} rows repeat an earlier text (case and whitespace ignored) in "
            f"{len(repeated)} groups; duplicates weigh those texts more",
            count=extra, rows=repeated.repeats()[:100].tolist(),
            examples=[str(texts[row])[:120] for row in repeated.firsts()[:MAX_LISTED]],
        ))
    conflicting = repeated.select(repeated.mixed(first_seen_codes(labels)))
    if len(conflicting):
        findings.append(Finding(
            "warning", "conflicting_duplicates",
            f"{path}: {len(conflicting)} texts occur with different labels; at most one label "
            f"can be right: review them (fitclass audit lists them too)",
            count=len(conflicting), rows=conflicting.rows[:100].tolist(),
            examples=[f"{str(texts[rows[0]])[:100]!r}: {sorted({str(labels[r]) for r in rows})}"
                      for rows in map(conflicting.group, range(min(len(conflicting),
                                                                   MAX_LISTED)))],
        ))
    return findings


def check_leakage(train_texts: list[TextInput], valid_texts: list[TextInput],
                  valid_source: str, valid_positions: list[int]) -> Finding | None:
    """The same text in train and validation inflates validation scores."""
    train_keys = {normalise(t) for t in train_texts}
    hits = [i for i, text in enumerate(valid_texts) if normalise(text) in train_keys]
    rows = [valid_positions[i] for i in hits]
    if not rows:
        return None
    return Finding(
        "warning", "leakage",
        f"{valid_source}: {len(rows)} of {len(valid_texts)} validation rows "
        f"({len(rows) / len(valid_texts):.1%}) also occur in train; validation scores are "
        f"optimistic: remove the copies, or (for a split fitclass makes) set "
        f"data.split.dedupe: group",
        count=len(rows), rows=rows[:100],
        examples=[str(valid_texts[i])[:120] for i in hits[:MAX_LISTED]],
    )


def check_truncation(lengths: np.ndarray, max_length: int, source: str) -> Finding | None:
    """Texts longer than `model.max_length` tokens lose their ends."""
    if len(lengths) == 0:
        return None
    long_rows = np.flatnonzero(lengths > max_length)
    share = len(long_rows) / len(lengths)
    level: Literal["warning", "info"] = "warning" if share > 0.05 else "info"
    return Finding(
        level, "truncation",
        f"{source}: {len(long_rows)} rows ({share:.1%}) exceed model.max_length={max_length} "
        f"tokens and will be truncated (95th percentile length {int(np.percentile(lengths, 95))})"
        + ("; consider raising model.max_length" if level == "warning" else ""),
        count=len(long_rows), rows=long_rows[:100].tolist(),
    )


def class_distribution(labels: list[Label]) -> dict[str, int]:
    """Rows per class, or positives per label, most frequent first."""
    return dict(sorted(Counter(label_names(labels)).items(), key=lambda item: -item[1]))
