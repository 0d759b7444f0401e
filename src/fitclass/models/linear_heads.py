"""Linear heads for the TF-IDF backbone, by `model.classifier`: a registry of fitters.

Each fitter returns a `LinearHead`: weights over TF-IDF features plus how scores become
probabilities (`link`), so every head saves, loads and predicts the same way:

- `logreg`: logistic regression (softmax; binary: one sigmoid row).
- `linear_svm`: linear SVM, probabilities by Platt scaling fitted on out-of-fold scores.
- `nbsvm`: naive-Bayes log-count-ratio features (Wang & Manning 2012) with logistic
  regression, one-vs-rest; r * w folds into ordinary linear weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.svm import LinearSVC

from fitclass.registry import Registry


@dataclass
class LinearHead:
    """scores = X @ coef.T + intercept; `link` maps scores to probabilities."""

    coef: np.ndarray
    intercept: np.ndarray
    link: str  # softmax | sigmoid_ovr (normalised one-vs-rest) | sigmoid (independent)
    platt_a: np.ndarray | None = None
    platt_b: np.ndarray | None = None

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.platt_a is not None and self.platt_b is not None:
            scores = scores * self.platt_a + self.platt_b
        if self.link == "softmax" and scores.shape[1] > 1:
            shifted = scores - scores.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            return exp / exp.sum(axis=1, keepdims=True)
        positive = 1.0 / (1.0 + np.exp(-scores))
        if self.link == "sigmoid":
            return positive
        if positive.shape[1] == 1:  # binary: one score for the second class
            return np.hstack([1.0 - positive, positive])
        return positive / np.clip(positive.sum(axis=1, keepdims=True), 1e-12, None)


ClassWeights = dict[int, float] | None
HeadFitter = Callable[[sparse.csr_matrix, np.ndarray, float, ClassWeights, int], LinearHead]
HEADS: Registry[HeadFitter] = Registry("linear head", "model.classifier")
register_head = HEADS.register


def fit_head(name: str, features: sparse.csr_matrix, targets: np.ndarray, C: float,
             weights: ClassWeights, seed: int) -> LinearHead:
    """Fit head `name` on multi-class targets (class indices)."""
    return HEADS.get(name)(features, targets, C, weights, seed)


def _platt(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Sigmoid a * s + b fitted on out-of-fold scores (Platt 1999)."""
    model = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), positive)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


@register_head("logreg")
def logreg(features: sparse.csr_matrix, targets: np.ndarray, C: float, weights: ClassWeights,
           seed: int) -> LinearHead:
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed, class_weight=weights)
    model.fit(features, targets)
    return LinearHead(model.coef_, model.intercept_, "softmax")


@register_head("linear_svm")
def linear_svm(features: sparse.csr_matrix, targets: np.ndarray, C: float,
               weights: ClassWeights, seed: int) -> LinearHead:
    svm = LinearSVC(C=C, class_weight=weights, random_state=seed)
    folds = int(min(3, np.bincount(targets).min())) if len(np.unique(targets)) > 1 else 2
    scores = cross_val_predict(svm, features, targets, cv=max(folds, 2),
                               method="decision_function")
    svm.fit(features, targets)
    scores = scores.reshape(len(targets), -1)
    columns = scores.shape[1]
    classes = [1] if columns == 1 else list(range(columns))
    fitted = [_platt(scores[:, i], targets == c) for i, c in enumerate(classes)]
    return LinearHead(svm.coef_, svm.intercept_, "sigmoid_ovr",
                      np.array([a for a, _ in fitted]), np.array([b for _, b in fitted]))


def log_count_ratio(features: sparse.csr_matrix, positive: np.ndarray,
                    alpha: float = 1.0) -> np.ndarray:
    """r = log((p / |p|_1) / (q / |q|_1)), p and q the smoothed feature sums of the
    positive and negative rows (Wang & Manning 2012)."""
    p = np.asarray(features[positive].sum(axis=0)).ravel() + alpha
    q = np.asarray(features[~positive].sum(axis=0)).ravel() + alpha
    return np.log((p / p.sum()) / (q / q.sum()))


@register_head("nbsvm")
def nbsvm(features: sparse.csr_matrix, targets: np.ndarray, C: float, weights: ClassWeights,
          seed: int) -> LinearHead:
    classes = np.unique(targets)
    wanted = [classes.max()] if len(classes) == 2 else list(range(int(targets.max()) + 1))
    coef = np.zeros((len(wanted), features.shape[1]))
    intercept = np.zeros(len(wanted))
    for row, c in enumerate(wanted):
        positive = targets == c
        if positive.all() or not positive.any():
            intercept[row] = -20.0
            continue
        ratio = log_count_ratio(features, positive)
        binary_weights = None if weights is None else {0: 1.0, 1: weights.get(int(c), 1.0)}
        model = LogisticRegression(C=C, max_iter=2000, random_state=seed,
                                   class_weight=binary_weights)
        model.fit(features.multiply(ratio).tocsr(), positive.astype(int))
        coef[row], intercept[row] = ratio * model.coef_[0], model.intercept_[0]
    return LinearHead(coef, intercept, "sigmoid_ovr")
