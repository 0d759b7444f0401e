"""Multi-class decisions beyond argmax: prior correction and expected-cost minimisation."""

from __future__ import annotations

import numpy as np


def prior_weights(train_priors: np.ndarray, target_priors: np.ndarray) -> np.ndarray:
    """Per-class factors that move probabilities from the training class distribution to a
    target one (Saerens et al. 2002): p'(c) is proportional to p(c) * target(c) / train(c)."""
    return np.asarray(target_priors) / np.clip(np.asarray(train_priors), 1e-12, None)


def reweight(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    adjusted = probs * weights
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def least_cost(probs: np.ndarray, cost_matrix: np.ndarray) -> np.ndarray:
    """The class of least expected cost; cost_matrix[true, predicted]."""
    return (probs @ cost_matrix).argmin(axis=1)
