"""Single-label metrics from per-class confusion counts.

Accuracy, micro-F1, balanced accuracy, macro-F1 and weighted F1 depend on the predictions
only through three counts per class: true positives, support (rows of the class) and
predictions of the class. Two places need them for many decisions at once, so both compute
from counts rather than from labels: the bootstrap (`uncertainty.weighted`, one row of counts
per replicate) and the offset search (`decide.offsets`, one row per candidate offset). One
formula here keeps both equal to `fitclass.metrics` (pinned by
`tests/uncertainty/test_weighted_metrics.py` and `tests/decide/test_offsets.py`). Each
metric is a ratio of sums over classes of per-class terms (`class_terms`); macro averages count
the classes `counted_in_macro` (docs/metrics.md).
"""

from __future__ import annotations

import numpy as np

#: The metrics computed here (micro-F1 equals accuracy for single-label predictions).
COUNT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1")


def ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float = 0.0) -> np.ndarray:
    """numerator / denominator, `empty` where the denominator is 0 (scikit-learn's
    `zero_division`)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, empty)


def _f1(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return ratio(2 * tp, support + predicted)


def counted_in_macro(support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Which classes a macro average counts: those that occur in the targets or the
    predictions (scikit-learn's label set when `labels=` is not given). A class absent from
    both has no F1 to speak of; counting it as 0 would pull down a bootstrap resample that
    happened to miss a rare class. The one rule for macro-F1, single- and multi-label
    (docs/metrics.md)."""
    return (np.asarray(support, dtype=float) + np.asarray(predicted, dtype=float)) > 0


def macro_average(values: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The mean of per-class `values` (classes last) over the classes `counted_in_macro`;
    0 when none is."""
    counted = counted_in_macro(support, predicted)
    return ratio((np.asarray(values, dtype=float) * counted).sum(axis=-1), counted.sum(axis=-1))


def class_terms(name: str, tp: np.ndarray, predicted: np.ndarray,
                support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A class's terms of metric `name`: the metric is the sum of the numerators over the
    classes divided by the sum of the denominators (0 when that is 0). `tp`, `predicted`,
    `support` are one class's counts, or arrays with the classes last. Each term depends on
    its own class's counts only, so the offset search can update one class at a time."""
    tp, predicted, support = (np.asarray(a, dtype=float) for a in (tp, predicted, support))
    if name in ("accuracy", "micro_f1"):
        return tp, support
    if name == "balanced_accuracy":  # recall averaged over the classes present (scikit-learn)
        return ratio(tp, support), (support > 0).astype(float)
    if name == "macro_f1":
        return _f1(tp, support, predicted), counted_in_macro(support, predicted).astype(float)
    if name == "weighted_f1":
        return _f1(tp, support, predicted) * support, support
    raise ValueError(f"{name!r} is not a count metric; choose one of {list(COUNT_METRICS)}")


def count_metric(name: str, tp: np.ndarray, support: np.ndarray,
                 predicted: np.ndarray) -> np.ndarray:
    """One count metric from arrays shaped (..., classes) (`support` broadcasts); the
    result is shaped (...)."""
    support = np.broadcast_to(support, np.shape(tp))
    numerator, denominator = class_terms(name, tp, predicted, support)
    return ratio(numerator.sum(axis=-1), denominator.sum(axis=-1))


def from_counts(tp: np.ndarray, support: np.ndarray,
                predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Every count metric from arrays shaped (..., classes); results shaped (...)."""
    return {name: count_metric(name, tp, support, predicted) for name in COUNT_METRICS}


def confusion_counts(targets: np.ndarray, predictions: np.ndarray,
                     classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, support, predicted) per class of class-index labels."""
    targets, predictions = np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)
    return (np.bincount(targets[targets == predictions], minlength=classes),
            np.bincount(targets, minlength=classes),
            np.bincount(predictions, minlength=classes))
