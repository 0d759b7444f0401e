"""The folds of scikit-learn's `StratifiedGroupKFold(shuffle=True)`, in time linear in the
rows and groups.

sklearn hands groups to folds one at a time, greedily, and for every group scores each fold
with half a dozen numpy calls on tiny arrays, then builds the fold's rows with a Python
loop over every row: about a millisecond a group, minutes for the 200,000 groups of a
million rows. This is the same algorithm (sklearn 1.9: the same shuffle of the groups, the
same order, the same score, the same tie rule) with each group's folds scored in one
batched computation whose sums run in the same order, so every fold holds exactly sklearn's
rows (tests compare them); counts and the rows of each fold come from array operations.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: `np.isclose`'s default tolerances, which sklearn's tie rule uses.
RTOL, ATOL = 1e-05, 1e-08


def group_folds(strata: np.ndarray, groups: np.ndarray, n_splits: int,
                seed: int) -> np.ndarray:
    """The fold of every row: test fold i of `StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed).split(X, strata, groups)` is `np.flatnonzero(folds == i)`."""
    _, class_of_row, class_counts = np.unique(strata, return_inverse=True, return_counts=True)
    _check_classes(class_counts, n_splits)
    _, group_of_row, group_sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if n_splits > len(group_sizes):
        raise ValueError(f"Cannot have number of splits n_splits={n_splits} greater than the "
                         f"number of groups: {len(group_sizes)}.")
    per_group = np.zeros((len(group_sizes), len(class_counts)))
    np.add.at(per_group, (group_of_row.ravel(), class_of_row.ravel()), 1)
    order = np.arange(len(group_sizes))
    np.random.RandomState(seed).shuffle(order)
    per_group = per_group[order]
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    group_of_row = position[group_of_row.ravel()]
    fold_of_group = _assign(per_group, class_counts.astype(float), n_splits)
    return fold_of_group[group_of_row]


def _check_classes(class_counts: np.ndarray, n_splits: int) -> None:
    """sklearn's own checks, with its messages."""
    if np.all(n_splits > class_counts):
        raise ValueError(f"n_splits={n_splits} cannot be greater than the number of members "
                         f"in each class.")
    if n_splits > np.min(class_counts):
        warnings.warn(f"The least populated class in y has only {np.min(class_counts)} "
                      f"members, which is less than n_splits={n_splits}.", UserWarning,
                      stacklevel=3)


def _assign(per_group: np.ndarray, class_counts: np.ndarray, n_splits: int) -> np.ndarray:
    """Fold of each group: groups with the most uneven classes first, each to the fold that
    keeps the classes' shares most even across folds (ties: the smaller fold)."""
    per_fold = np.zeros((n_splits, len(class_counts)))
    sizes = [0.0] * n_splits  # rows per fold: sums of whole numbers, exact in any order
    fold_of_group = np.empty(len(per_group), dtype=np.int64)
    # proposal i = per_fold with the group's counts added to row i (adding 0.0 elsewhere
    # changes no bit): every fold scored at once
    into = np.eye(n_splits)[:, :, np.newaxis]
    for group in np.argsort(-np.std(per_group, axis=1), kind="stable"):
        counts = per_group[group]
        proposals = per_fold + into * counts
        scores = np.mean(np.std(proposals / class_counts.reshape(1, 1, -1), axis=1), axis=1)
        best = _best(scores.tolist(), sizes)
        per_fold[best] += counts
        sizes[best] += float(counts.sum())
        fold_of_group[group] = best
    return fold_of_group


def _best(scores: list[float], sizes: list[float]) -> int:
    """sklearn's choice: the lowest score; a score within `np.isclose(score, best)` of the
    best so far wins if its fold is smaller. Scores are finite (every class has rows), so
    the first fold always takes the lead from the infinite start, and `np.isclose` is its
    formula on two finite floats."""
    best, best_score, best_size = 0, math.inf, math.inf
    for fold, score in enumerate(scores):
        if score < best_score or (abs(score - best_score) <= ATOL + RTOL * abs(best_score)
                                  and sizes[fold] < best_size):
            best, best_score, best_size = fold, score, sizes[fold]
    return best
