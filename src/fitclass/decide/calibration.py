"""Temperature scaling fitted on validation, and expected calibration error (ECE)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

EPS = 1e-7


def to_logits(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits that reproduce `probs` (up to a per-row constant for softmax)."""
    clipped = np.clip(probs, EPS, 1 - EPS)
    return np.log(clipped / (1 - clipped)) if multilabel else np.log(clipped)


def scale(probs: np.ndarray, temperature: float, multilabel: bool) -> np.ndarray:
    """Probabilities with logits divided by `temperature`."""
    if temperature == 1.0:
        return probs
    logits = to_logits(probs, multilabel) / temperature
    return expit(logits) if multilabel else softmax(logits, axis=1)


def nll(targets: np.ndarray, probs: np.ndarray, temperature: float, multilabel: bool) -> float:
    logits = to_logits(probs, multilabel) / temperature
    if multilabel:
        p = np.clip(expit(logits), EPS, 1 - EPS)
        return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())
    return float(-log_softmax(logits, axis=1)[np.arange(len(targets)), targets].mean())


def fit_temperature(targets: np.ndarray, probs: np.ndarray, multilabel: bool) -> float:
    """The temperature in [0.05, 20] minimising validation negative log-likelihood."""
    result = minimize_scalar(lambda log_t: nll(targets, probs, float(np.exp(log_t)), multilabel),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(targets: np.ndarray, probs: np.ndarray, multilabel: bool,
                               bins: int = 15) -> float:
    """ECE with equal-width bins: top-label confidence (multi-class) or every label's
    probability against its 0/1 outcome (multi-label)."""
    if multilabel:
        confidence, correct = probs.ravel(), targets.ravel().astype(float)
    else:
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == targets).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)
