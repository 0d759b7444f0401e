"""The folds every cross-fitted decision uses (ensemble combiners, metric offsets): a
decision fitted on some validation rows scores the others, so its reported score is honest."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from fitclass.target_kinds import TargetKind


def cross_fit_folds(targets: np.ndarray, kind: TargetKind, k: int,
                    seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`k` seeded folds, stratified when every class present among the targets has `k` rows
    (a class absent from these rows does not count); multi-label targets and rarer classes
    get plain folds."""
    rows = np.zeros(len(targets))
    if not kind.multilabel and can_stratify(targets, k):
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, targets))
    return list(KFold(k, shuffle=True, random_state=seed).split(rows))


def can_stratify(targets: np.ndarray, k: int) -> bool:
    """Whether every class present among the class-index `targets` has `k` rows, so each of
    `k` stratified folds holds every class."""
    counts = np.bincount(np.asarray(targets, dtype=int))
    return bool(counts[counts > 0].min(initial=k) >= k)
