"""K folds of the labelled rows for cross-validation (`fitclass train --folds K`).

Every row gets one fold: stratified by class (scikit-learn's `StratifiedKFold`), by group
when the recipe splits by group (`data.split.method: group`) or keeps near duplicates
together (`data.split.dedupe: group`: near-duplicate clusters are the groups, joined with
`data.group` under method: group; see `dedupe_groups`), with the group split's own
`group_folds`, so no group is on both sides, or iteratively for multi-label targets
(`MultilabelStratifiedKFold`). The assignment depends only on the rows, their labels and
groups, K and `data.split.seed`, so each fold run computes its own fold again from its
recipe and the cross-validation finds the same rows in it.

K is checked before anything trains: every fold's training part must hold every class
(else the fold models would not share a label set) and its validation part one row of each,
so each class (label) needs at least K rows, or with groups K groups.
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedKFold

from fitclass.data.group_folds import group_folds
from fitclass.errors import DataError
from fitclass.recipe import SplitConfig
from fitclass.target_kinds import TargetKind

MIN_FOLDS = 2


def check_fold_count(k: int) -> None:
    if k < MIN_FOLDS:
        raise DataError(f"--folds {k}: cross-validation needs at least {MIN_FOLDS} folds; use "
                        f"--folds 5 (the usual choice), or drop --folds to train one run "
                        f"with a validation split")


def _per_class(targets: np.ndarray, kind: TargetKind, classes: int) -> np.ndarray:
    """Rows per class (multi-class) or positive rows per label (multi-label)."""
    return kind.class_counts(targets, classes).astype(int)


def _groups_per_class(targets: np.ndarray, kind: TargetKind, groups: np.ndarray,
                      classes: int) -> np.ndarray:
    """How many distinct groups hold each class (label)."""
    _, group_of_row = np.unique(groups, return_inverse=True)
    dense = kind.indicator(targets, classes).astype(bool)
    return np.array([len(np.unique(group_of_row[dense[:, c]])) for c in range(classes)])


def grouping_name(config: SplitConfig) -> str:
    """What the fold groups are, for messages."""
    if config.dedupe != "group":
        return "data.group"
    joined = " joined with data.group" if config.method == "group" else ""
    return f"near-duplicate clusters (data.split.dedupe: group){joined}"


def check_folds_fit(k: int, targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None,
                    config: SplitConfig, class_names: list[str], source: str) -> None:
    """Refuse a K that leaves some fold without a class (or without any group). `groups`:
    the rows' fold groups (`dedupe_groups.dedupe_groups`), None when rows split freely."""
    check_fold_count(k)
    what = "label" if kind.multilabel else "class"
    if len(targets) < k:
        raise DataError(f"--folds {k}: {source} has only {len(targets)} labelled rows; use "
                        f"--folds {max(MIN_FOLDS, len(targets))} or fewer")
    if config.method == "group" and groups is None:
        raise DataError("data.split.method is 'group' but data.group names no column; "
                        "set data.group to the column that holds the groups")
    if groups is not None:
        distinct, name = len(np.unique(groups)), grouping_name(config)
        if distinct < k:
            other = ("data.split.method: stratified" if config.dedupe != "group" else
                     "a higher data.near_duplicate_threshold")
            raise DataError(f"--folds {k}: {name} has only {distinct} distinct groups in "
                            f"{source}, and grouped folds keep each group in one fold; use "
                            f"--folds {distinct} or fewer, or {other}")
        counts, unit = _groups_per_class(targets, kind, groups, len(class_names)), "groups"
    else:
        counts, unit = _per_class(targets, kind, len(class_names)), "rows"
    smallest = int(np.argmin(counts))
    if counts[smallest] < k:
        rows = "rows" if unit == "rows" else f"groups ({grouping_name(config)})"
        raise DataError(
            f"--folds {k}: {what} {class_names[smallest]!r} has only {counts[smallest]} "
            f"labelled {rows} in {source}; every fold must hold it in both its training and "
            f"its validation part, so K can be at most {counts[smallest]}. Use --folds "
            f"{max(MIN_FOLDS, int(counts[smallest]))} or fewer, or add rows of "
            f"{class_names[smallest]!r}")


def assign_folds(targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None,
                 config: SplitConfig, k: int, class_names: list[str],
                 source: str) -> np.ndarray:
    """The fold (0..k-1) of every row, after `check_folds_fit`. `groups`: the rows' fold
    groups (`data.group` under method: group, near-duplicate clusters under dedupe: group:
    see `dedupe_groups`), each kept in one fold; None splits rows freely."""
    check_folds_fit(k, targets, kind, groups, config, class_names, source)
    if groups is not None:
        return group_folds(kind.strata(targets), groups, k, config.seed)
    rows = np.zeros(len(targets))
    splitter = (MultilabelStratifiedKFold(k, shuffle=True, random_state=config.seed)
                if kind.multilabel else
                StratifiedKFold(k, shuffle=True, random_state=config.seed))
    folds = np.empty(len(targets), dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(rows, targets)):
        folds[held] = fold
    return folds


def fold_method(kind: TargetKind, config: SplitConfig) -> str:
    """How the folds were made, for the record."""
    if config.dedupe == "group":
        return "group (near-duplicate clusters)"
    if config.method == "group":
        return "group"
    return "iterative" if kind.multilabel else "stratified"
