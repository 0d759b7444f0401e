"""Single-label metrics from per-class confusion counts.

Accuracy, micro-F1, balanced accuracy, macro-F1 and weighted F1 depend on the predictions
only through three counts per class: true positives, support (rows of the class) and
predictions of the class. Two places need them for many decisions at once, so both compute
from counts rather than from labels: the bootstrap (`uncertainty.weighted`, one row of counts
per replicate) and the offset search (`decide.offsets`, one row per candidate offset). One
formula here keeps both equal to `fitclass.metrics` (pinned by
`tests/uncertainty/test_weighted_metrics.py` and `tests/decide/test_offsets.py`).
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


def class_share(name: str, tp: np.ndarray, predicted: np.ndarray, support: np.ndarray,
                supports: np.ndarray) -> np.ndarray:
    """A class's share of metric `name` (the metric is the sum of the shares over classes):
    `tp`, `predicted`, `support` are one class's counts, or arrays with the classes last;
    `supports` holds every class's support (classes last). Each metric is a sum of per-class
    terms, so the offset search can update one class's counts at a time."""
    tp, predicted, support = (np.asarray(a, dtype=float) for a in (tp, predicted, support))
    supports = np.asarray(supports, dtype=float)
    total = supports.sum(axis=-1, keepdims=True)
    if name in ("accuracy", "micro_f1"):
        return ratio(tp, total)
    if name == "balanced_accuracy":  # recall averaged over the classes present (scikit-learn)
        present = np.count_nonzero(supports, axis=-1)[..., None]
        return ratio(tp, support) / np.maximum(present, 1)
    if name == "macro_f1":
        return _f1(tp, support, predicted) / supports.shape[-1]
    if name == "weighted_f1":
        return ratio(_f1(tp, support, predicted) * support, total)
    raise ValueError(f"{name!r} is not a count metric; choose one of {list(COUNT_METRICS)}")


def count_metric(name: str, tp: np.ndarray, support: np.ndarray,
                 predicted: np.ndarray) -> np.ndarray:
    """One count metric from arrays shaped (..., classes) (`support` broadcasts); the
    result is shaped (...)."""
    support = np.broadcast_to(support, np.shape(tp))
    return class_share(name, tp, predicted, support, support).sum(axis=-1)


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
