"""The group split's folds are scikit-learn's StratifiedGroupKFold folds, row for row."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from fitclass.data.group_folds import group_folds


def sklearn_folds(strata: np.ndarray, groups: np.ndarray, n_splits: int,
                  seed: int) -> list[list[int]]:
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [sorted(test.tolist()) for _, test in folds.split(np.zeros(len(strata)), strata,
                                                             groups)]


@pytest.mark.parametrize("case", range(24))
def test_same_rows_as_sklearn(case: int) -> None:
    rng = np.random.default_rng(case)
    rows = int(rng.integers(20, 600))
    classes = int(rng.integers(1, 9))
    n_splits = int(rng.choice([2, 3, 5, 10, 20]))
    n_groups = int(rng.integers(n_splits, max(n_splits + 1, rows // 2)))
    shares = rng.dirichlet(np.ones(classes) * float(rng.choice([0.3, 1.0, 5.0])))
    strata = rng.choice(classes, size=rows, p=shares)
    groups = rng.integers(0, n_groups, size=rows)
    named = np.array([f"user{g}" for g in groups], dtype=object) if case % 2 else groups
    seed = int(rng.integers(0, 10_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes smaller than n_splits
        try:
            expected = sklearn_folds(strata, named, n_splits, seed)
        except ValueError as error:
            with pytest.raises(ValueError, match=re.escape(str(error))):
                group_folds(strata, named, n_splits, seed)
            return
        folds = group_folds(strata, named, n_splits, seed)
        assert [np.flatnonzero(folds == i).tolist() for i in range(n_splits)] == expected


def test_sklearn_warning_and_errors_are_kept() -> None:
    strata = np.array([0] * 30 + [1] * 3)
    groups = np.arange(33) % 11
    with pytest.warns(UserWarning, match="least populated class in y has only 3 members"):
        group_folds(strata, groups, 5, 0)
    with pytest.raises(ValueError, match="n_splits=5 cannot be greater than the number"):
        group_folds(np.array([0, 0, 1, 1]), np.arange(4), 5, 0)
    with pytest.raises(ValueError, match="greater than the number of groups: 2"):
        group_folds(np.array([0] * 10 + [1] * 10), np.arange(20) % 2, 5, 0)
