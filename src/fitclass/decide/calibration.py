"""Temperature scaling fitted on validation, and expected calibration error (ECE), for
either kind of targets (`TargetKind`: softmax over classes or a sigmoid per label)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from fitclass.target_kinds import TargetKind


def scale(probs: np.ndarray, temperature: float, kind: TargetKind) -> np.ndarray:
    """Probabilities with logits divided by `temperature`."""
    if temperature == 1.0:
        return probs
    return kind.activate(kind.to_logits(probs) / temperature)


def nll(targets: np.ndarray, probs: np.ndarray, temperature: float, kind: TargetKind) -> float:
    return kind.nll(targets, kind.to_logits(probs) / temperature)


def fit_temperature(targets: np.ndarray, probs: np.ndarray, kind: TargetKind) -> float:
    """The temperature in [0.05, 20] minimising validation negative log-likelihood."""
    result = minimize_scalar(lambda log_t: nll(targets, probs, float(np.exp(log_t)), kind),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(targets: np.ndarray, probs: np.ndarray, kind: TargetKind,
                               bins: int = 15) -> float:
    """ECE with equal-width bins: top-label confidence (multi-class) or every label's
    probability against its 0/1 outcome (multi-label)."""
    confidence, correct = kind.confidence_and_correct(targets, probs)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)
