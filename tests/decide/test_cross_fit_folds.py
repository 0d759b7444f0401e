"""Folds shared by the cross-fitted decisions (`decide/folds.py`)."""

from __future__ import annotations

import numpy as np

from fitclass.decide.folds import cross_fit_folds
from fitclass.target_kinds import MULTICLASS, MULTILABEL


def test_a_class_absent_from_the_rows_still_gets_stratified_folds() -> None:
    """Class 1 has no validation row: the folds stay stratified over classes 0 and 2."""
    targets = np.array([0] * 10 + [2] * 5)
    folds = cross_fit_folds(targets, MULTICLASS, 5, seed=0)
    assert len(folds) == 5
    for _, held in folds:  # stratified: every fold holds exactly one row of class 2
        assert np.count_nonzero(targets[held] == 2) == 1


def test_rare_classes_and_multilabel_targets_get_plain_folds() -> None:
    rare = np.array([0] * 10 + [1] * 2)
    folds = cross_fit_folds(rare, MULTICLASS, 3, seed=0)
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(12))
    matrix = np.eye(3, dtype=int)[np.arange(12) % 3]
    assert len(cross_fit_folds(matrix, MULTILABEL, 4, seed=1)) == 4
