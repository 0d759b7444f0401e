"""Train/validation splits: stratified by label, or by group (no group on both sides).

The targets' kind (`TargetKind`) gives the strata and which stratification applies:
iterative stratification for a multi-label matrix, sklearn's for class indices."""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from sklearn.model_selection import train_test_split

from fitclass.data.group_folds import group_folds
from fitclass.data.grouping import merged_codes
from fitclass.errors import DataError
from fitclass.recipe import SplitConfig
from fitclass.target_kinds import TargetKind


def multilabel_split(targets: np.ndarray, config: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Iterative stratification (Sechidis et al. 2011): every label keeps its share."""
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=config.valid_size,
                                                random_state=config.seed)
    train, valid = next(splitter.split(np.zeros(len(targets)), targets))
    return np.sort(train), np.sort(valid)


def stratified_split(targets: np.ndarray, config: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hold out `valid_size` of the rows (class indices) with every class keeping its share."""
    rows = np.arange(len(targets))
    n_classes = len(np.unique(targets))
    n_valid = int(np.ceil(config.valid_size * len(rows)))
    if n_valid < n_classes or len(rows) - n_valid < n_classes:
        raise DataError(
            f"data.split.valid_size={config.valid_size} gives {n_valid} validation rows for "
            f"{n_classes} classes; stratifying needs at least one row per class on each side: "
            f"raise valid_size, add rows, or give data.valid"
        )
    train, valid = train_test_split(
        rows, test_size=config.valid_size, stratify=targets, random_state=config.seed
    )
    return np.sort(train), np.sort(valid)


def group_split(
    strata: np.ndarray, groups: np.ndarray, config: SplitConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole groups, about `valid_size` of the rows, stratified where possible."""
    n_groups = len(np.unique(groups))
    n_splits = max(2, round(1.0 / config.valid_size))
    if n_groups < n_splits:
        raise DataError(
            f"data.split: method 'group' with valid_size={config.valid_size} needs at least "
            f"{n_splits} distinct groups in data.group, found {n_groups}; lower the number of "
            f"splits by raising valid_size, or use method: stratified"
        )
    # StratifiedGroupKFold's first fold, in linear time (sklearn's takes minutes for a
    # million rows)
    valid = np.flatnonzero(group_folds(strata, groups, n_splits, config.seed) == 0)
    train = np.setdiff1d(np.arange(len(strata)), valid, assume_unique=True)
    return train, valid


def split_rows(
    targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None, config: SplitConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions for train and validation, by `config.method`; `kind` is the targets'."""
    if config.method == "group":
        if groups is None:
            raise DataError("data.split.method is 'group' but data.group names no column; "
                            "set data.group to the column that holds the groups")
        return group_split(kind.strata(targets), groups, config)
    stratify = multilabel_split if kind.multilabel else stratified_split
    return stratify(targets, config)


def dedupe_split(targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None,
                 clusters: np.ndarray, config: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """`data.split.dedupe: group`: near-duplicate clusters become the groups of a group split
    (joined with `data.group` under method: group: rows sharing either are one group), so no
    cluster straddles train and validation. Stratified where possible, like `group_split`."""
    if config.method == "group" and groups is None:
        raise DataError("data.split.method is 'group' but data.group names no column; "
                        "set data.group to the column that holds the groups")
    keys = [groups, clusters] if config.method == "group" and groups is not None else [clusters]
    merged = merged_codes(*keys)
    n_splits = max(2, round(1.0 / config.valid_size))
    if merged.max(initial=-1) + 1 < n_splits:
        raise DataError(
            f"data.split.dedupe: group with valid_size={config.valid_size} needs at least "
            f"{n_splits} groups of rows, found {merged.max(initial=-1) + 1} once near "
            f"duplicates{' and data.group' if len(keys) == 2 else ''} are joined; raise "
            f"valid_size, raise data.near_duplicate_threshold, or give data.valid"
        )
    return group_split(kind.strata(targets), merged, config)
