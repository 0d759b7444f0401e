"""Fold assignment for `--folds K`: class shares kept, groups never split, multi-label
folds iterative, and a K the data cannot hold refused with the flag, class and count."""

from __future__ import annotations

import numpy as np
import pytest

from fitclass.data.folds import assign_folds, check_fold_count
from fitclass.errors import DataError
from fitclass.recipe import SplitConfig
from fitclass.target_kinds import MULTICLASS, MULTILABEL

CLASSES = ["a", "b", "c"]


def _targets(counts: list[int], seed: int = 0) -> np.ndarray:
    targets = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(targets)


def test_stratified_folds_keep_every_class_share() -> None:
    targets = _targets([100, 60, 20])
    folds = assign_folds(targets, MULTICLASS, None, SplitConfig(seed=3), 5, CLASSES, "t.csv")
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    for fold in range(5):
        counts = np.bincount(targets[folds == fold], minlength=3)
        # each fold holds a fifth of every class (stratified: off by at most one row)
        assert np.all(np.abs(counts - np.array([20, 12, 4])) <= 1)


def test_folds_depend_only_on_rows_and_seed() -> None:
    targets = _targets([50, 30, 10])
    config = SplitConfig(seed=7)
    first = assign_folds(targets, MULTICLASS, None, config, 4, CLASSES, "t.csv")
    again = assign_folds(targets, MULTICLASS, None, config, 4, CLASSES, "t.csv")
    other = assign_folds(targets, MULTICLASS, None, SplitConfig(seed=8), 4, CLASSES, "t.csv")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_grouped_folds_never_split_a_group_and_keep_class_shares() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat([f"g{i}" for i in range(60)], 5)  # 60 groups of 5 rows
    targets = rng.choice(3, size=len(groups), p=[0.5, 0.3, 0.2])
    folds = assign_folds(targets, MULTICLASS, groups, SplitConfig(method="group", seed=0), 5,
                         CLASSES, "t.csv")
    for group in np.unique(groups):
        assert len(np.unique(folds[groups == group])) == 1  # one fold per group
    shares = np.bincount(targets, minlength=3) / len(targets)
    for fold in range(5):
        part = targets[folds == fold]
        assert np.all(np.abs(np.bincount(part, minlength=3) / len(part) - shares) < 0.12)


def test_multilabel_folds_give_every_label_to_every_fold() -> None:
    rng = np.random.default_rng(2)
    targets = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(np.float32)
    targets[:10, 3] = 1.0  # at least 10 positives of the rarest label
    folds = assign_folds(targets, MULTILABEL, None, SplitConfig(seed=0), 5,
                         ["w", "x", "y", "z"], "t.csv")
    for fold in range(5):
        assert (targets[folds == fold].sum(axis=0) >= 1).all()


@pytest.mark.parametrize("k", [1, 0, -3])
def test_fewer_than_two_folds_is_refused_naming_the_flag(k: int) -> None:
    with pytest.raises(DataError, match=rf"--folds {k}: cross-validation needs at least 2"):
        check_fold_count(k)


def test_more_folds_than_a_class_has_rows_names_class_count_and_fix() -> None:
    targets = _targets([30, 20, 3])
    with pytest.raises(DataError) as info:
        assign_folds(targets, MULTICLASS, None, SplitConfig(), 5, CLASSES, "data/t.csv")
    message = str(info.value)
    assert "--folds 5" in message and "class 'c' has only 3 labelled rows" in message
    assert "data/t.csv" in message and "--folds 3 or fewer" in message


def test_more_folds_than_groups_is_refused() -> None:
    targets = _targets([8, 8, 8])
    groups = np.array([f"g{i % 4}" for i in range(24)])
    with pytest.raises(DataError, match=r"--folds 5: data.group has only 4 distinct groups"):
        assign_folds(targets, MULTICLASS, groups, SplitConfig(method="group"), 5, CLASSES,
                     "t.csv")


def test_a_class_in_too_few_groups_is_refused_naming_its_group_count() -> None:
    targets = np.array([0] * 20 + [1] * 20 + [2] * 6)
    groups = np.array([f"g{i % 10}" for i in range(40)] + ["rare1"] * 3 + ["rare2"] * 3)
    with pytest.raises(DataError, match=r"class 'c' has only 2 labelled groups"):
        assign_folds(targets, MULTICLASS, groups, SplitConfig(method="group"), 3, CLASSES,
                     "t.csv")
