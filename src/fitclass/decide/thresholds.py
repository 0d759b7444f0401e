"""Multi-label thresholds that maximise F1 on validation, per label or shared."""

from __future__ import annotations

import numpy as np


def best_f1_threshold(positive: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold t (predict positive when score >= t) with the best F1, and that F1.

    Exact: every distinct score is a candidate cut; t sits midway to the next lower score so
    small shifts in probabilities do not flip the decision at the cut.
    """
    positive = np.asarray(positive, dtype=bool)
    total_pos = positive.sum()
    if total_pos == 0:
        return 1.0, 0.0
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], positive[order]
    tp = np.cumsum(sorted_pos)
    predicted = np.arange(1, len(scores) + 1)
    last_of_value = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # cut after ties
    f1 = np.where(last_of_value, 2 * tp / (predicted + total_pos), -1.0)
    best = int(np.argmax(f1))
    lower = sorted_scores[best + 1] if best + 1 < len(scores) else 0.0
    return float((sorted_scores[best] + lower) / 2), float(f1[best])


def best_global_threshold(targets: np.ndarray, probs: np.ndarray) -> float:
    """One threshold for all labels, maximising micro-F1 over every (row, label) pair."""
    threshold, _ = best_f1_threshold(targets.ravel(), probs.ravel())
    return threshold


def fit_thresholds(targets: np.ndarray, probs: np.ndarray, mode: str,
                   min_support: int = 5) -> np.ndarray:
    """Per-label thresholds: `per_class` (labels with fewer than `min_support` validation
    positives fall back to the global best), `global`, or `none` (0.5 everywhere)."""
    num_labels = targets.shape[1]
    if mode == "none":
        return np.full(num_labels, 0.5)
    shared = best_global_threshold(targets, probs)
    if mode == "global":
        return np.full(num_labels, shared)
    thresholds = np.full(num_labels, shared)
    for label in range(num_labels):
        if targets[:, label].sum() >= min_support:
            thresholds[label], _ = best_f1_threshold(targets[:, label], probs[:, label])
    return thresholds


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray,
                     at_least_one: bool = False) -> np.ndarray:
    """0/1 predictions; with `at_least_one`, a row with none gets its highest-scoring label
    (scored relative to each label's threshold)."""
    predictions = (probs >= thresholds).astype(int)
    if at_least_one:
        empty = predictions.sum(axis=1) == 0
        margin = probs - thresholds
        predictions[empty, margin[empty].argmax(axis=1)] = 1
    return predictions
