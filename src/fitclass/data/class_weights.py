"""Class weights from class counts: inverse, square-root inverse, effective number, explicit.

All schemes are normalised so the average weight over training rows is 1: the loss keeps its
scale, and the learning rate means the same with and without weights. Class counts come from
the task (`Task.class_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fitclass.errors import RecipeError

SCHEMES = ("none", "inverse", "sqrt_inverse", "effective_number")


def _normalise(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    mean_per_row = (weights * counts).sum() / max(counts.sum(), 1.0)
    return weights / mean_per_row if mean_per_row > 0 else weights


def class_weights(scheme: str | Sequence[float] | Mapping[str, float], counts: np.ndarray,
                  class_names: Sequence[str], beta: float = 0.999) -> np.ndarray | None:
    """Per-class loss weights, or None for `none`. Classes without rows get weight 0."""
    if isinstance(scheme, str):
        if scheme == "none":
            return None
        safe = np.maximum(counts, 1.0)
        if scheme == "inverse":
            raw = 1.0 / safe
        elif scheme == "sqrt_inverse":
            raw = 1.0 / np.sqrt(safe)
        elif scheme == "effective_number":  # Cui et al. 2019, class-balanced loss
            raw = (1.0 - beta) / (1.0 - np.power(beta, safe))
        else:
            raise RecipeError(f"imbalance.class_weights: unknown scheme {scheme!r}; choose one "
                              f"of {list(SCHEMES)}, a list, or a mapping class -> weight")
        raw = np.where(counts > 0, raw, 0.0)
        return _normalise(raw, counts)
    if isinstance(scheme, Mapping):
        unknown = sorted(set(scheme) - set(class_names))
        if unknown:
            raise RecipeError(f"imbalance.class_weights: {unknown} are not classes; classes "
                              f"are {list(class_names)}")
        return np.array([float(scheme.get(name, 1.0)) for name in class_names])
    if len(scheme) != len(class_names):
        raise RecipeError(f"imbalance.class_weights: {len(scheme)} weights given for "
                          f"{len(class_names)} classes {list(class_names)}")
    return np.asarray(scheme, dtype=float)


def positive_weights(targets: np.ndarray, cap: float) -> np.ndarray:
    """Multi-label `pos_weight`: negatives / positives per label, capped at `cap`."""
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    return np.minimum(negatives / np.maximum(positives, 1.0), cap)
