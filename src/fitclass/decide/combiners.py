"""Ensemble combiners on arrays: member probabilities in, combined probabilities out.

Members' validation probabilities have shape (members, rows, classes). Each combiner is
fitted on some rows and applied to others; `cross_fit` scores a combiner only on rows it
was not fitted on, which is how fitclass reports every ensemble's validation metrics. Every
fitter is given the targets' kind (`TargetKind`): it decides the log-loss, the stacking
meta-model and whether folds can be stratified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from fitclass.decide.folds import cross_fit_folds
from fitclass.registry import Registry
from fitclass.target_kinds import TargetKind

#: A score to maximise on (targets, combined probabilities).
Score = Callable[[np.ndarray, np.ndarray], float]
EPS = 1e-7


@dataclass
class Combiner:
    """A fitted way to combine members: weights (mean, weighted, greedy) or a meta-model."""

    method: str
    weights: np.ndarray
    meta_coef: np.ndarray | None = None
    meta_intercept: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        if self.meta_coef is None:
            return np.tensordot(self.weights, member_probs, axes=1)
        return stacked_probs(self, member_probs)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "weights": self.weights.tolist(),
                "meta_coef": None if self.meta_coef is None else self.meta_coef.tolist(),
                "meta_intercept": None if self.meta_intercept is None
                else self.meta_intercept.tolist(), "details": self.details}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Combiner:
        return cls(method=payload["method"], weights=np.asarray(payload["weights"]),
                   meta_coef=None if payload["meta_coef"] is None
                   else np.asarray(payload["meta_coef"]),
                   meta_intercept=None if payload["meta_intercept"] is None
                   else np.asarray(payload["meta_intercept"]),
                   details=payload.get("details", {}))


def fit_mean(member_probs: np.ndarray, targets: np.ndarray, score: Score,
             kind: TargetKind) -> Combiner:
    """Soft voting: the plain average of member probabilities."""
    count = member_probs.shape[0]
    return Combiner("mean", np.full(count, 1.0 / count))


def fit_weighted(member_probs: np.ndarray, targets: np.ndarray, score: Score,
                 kind: TargetKind, objective: str = "log_loss", samples: int = 400,
                 seed: int = 0) -> Combiner:
    """Non-negative weights summing to 1: minimise log loss (SLSQP on the simplex); with
    `objective="metric"`, then search Dirichlet samples around it for the best `score`."""
    count = member_probs.shape[0]
    start = np.full(count, 1.0 / count)
    result = minimize(lambda w: kind.log_loss(targets, np.tensordot(w, member_probs, axes=1)),
                      start, method="SLSQP", bounds=[(0.0, 1.0)] * count,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}])
    weights = _simplex(result.x if result.success else start)
    if objective == "metric":
        rng = np.random.default_rng(seed)
        candidates = [weights, start, *rng.dirichlet(np.ones(count), size=samples)]
        scores = [score(targets, np.tensordot(w, member_probs, axes=1)) for w in candidates]
        weights = _simplex(candidates[int(np.argmax(scores))])
    return Combiner("weighted", weights, details={"objective": objective})


def fit_greedy(member_probs: np.ndarray, targets: np.ndarray, score: Score,
               kind: TargetKind, rounds: int = 50) -> Combiner:
    """Ensemble selection with replacement (Caruana et al. 2004): repeatedly add the member
    that most improves the running average's score; weights are the selection counts."""
    count = member_probs.shape[0]
    picks = np.zeros(count)
    total = np.zeros_like(member_probs[0])
    history = []
    for step in range(1, rounds + 1):
        trial_scores = [score(targets, (total + member_probs[m]) / step) for m in range(count)]
        best = int(np.argmax(trial_scores))
        picks[best] += 1
        total += member_probs[best]
        history.append(float(trial_scores[best]))
    return Combiner("greedy", picks / picks.sum(), details={"score_by_round": history})


def fit_best(member_probs: np.ndarray, targets: np.ndarray, score: Score,
             kind: TargetKind) -> Combiner:
    """The single member that scores best on the fitting rows (weight 1). Cross-fitted like
    every combiner, it is the floor `method: auto` compares the real ensembles against, so
    an automatic ensemble never scores below its best member on held-out rows."""
    scores = [score(targets, probs) for probs in member_probs]
    weights = np.zeros(member_probs.shape[0])
    weights[int(np.argmax(scores))] = 1.0
    return Combiner("best", weights, details={"member_scores": [float(s) for s in scores]})


def stacked_probs(combiner: Combiner, member_probs: np.ndarray) -> np.ndarray:
    features = _stack_features(member_probs)
    assert combiner.meta_coef is not None and combiner.meta_intercept is not None
    scores = features @ combiner.meta_coef.T + combiner.meta_intercept
    if combiner.details.get("multilabel"):  # the kind the meta-model was fitted for
        return 1.0 / (1.0 + np.exp(-scores))
    if scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.stack([1 - positive, positive], axis=1)
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def _stack_features(member_probs: np.ndarray) -> np.ndarray:
    """Members' log-probabilities side by side: (rows, members x classes)."""
    logp = np.log(np.clip(member_probs, EPS, 1.0))
    return np.concatenate(list(logp), axis=1)


def fit_stacking(member_probs: np.ndarray, targets: np.ndarray, score: Score,
                 kind: TargetKind, C: float = 1.0) -> Combiner:
    """A logistic-regression meta-model on the members' log-probabilities (multi-label: one
    per label, on that label's member probabilities)."""
    stack = _stack_per_label if kind.multilabel else _stack_multinomial
    return stack(member_probs, targets, C)


def _stack_per_label(member_probs: np.ndarray, targets: np.ndarray, C: float) -> Combiner:
    features = _stack_features(member_probs)
    count, classes = member_probs.shape[0], member_probs.shape[2]
    coef = np.zeros((classes, features.shape[1]))
    intercept = np.zeros(classes)
    for label in range(classes):
        columns = [m * classes + label for m in range(count)]
        model = LogisticRegression(C=C, max_iter=1000).fit(features[:, columns],
                                                           targets[:, label])
        coef[label, columns] = model.coef_[0]
        intercept[label] = model.intercept_[0]
    return Combiner("stacking", np.full(count, 1.0 / count), coef, intercept,
                    {"multilabel": True})


def _stack_multinomial(member_probs: np.ndarray, targets: np.ndarray, C: float) -> Combiner:
    features = _stack_features(member_probs)
    count, classes = member_probs.shape[0], member_probs.shape[2]
    model = LogisticRegression(C=C, max_iter=2000).fit(features, targets)
    coef, intercept = model.coef_, model.intercept_
    details: dict[str, Any] = {"classes_seen": model.classes_.tolist()}
    if len(model.classes_) != classes and classes > 2:
        coef, intercept = _expand(coef, intercept, model.classes_, classes)
    return Combiner("stacking", np.full(count, 1.0 / count), coef, intercept, details)


def _expand(coef: np.ndarray, intercept: np.ndarray, seen: np.ndarray,
            classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Classes absent from the meta-model's training rows get a very low score."""
    full_coef = np.zeros((classes, coef.shape[1]))
    full_intercept = np.full(classes, -30.0)
    full_coef[seen], full_intercept[seen] = coef, intercept
    return full_coef, full_intercept


METHODS: Registry[Callable[..., Combiner]] = Registry("combiner", "ensemble method")
for _name, _fitter in {"mean": fit_mean, "weighted": fit_weighted, "greedy": fit_greedy,
                       "stacking": fit_stacking, "best": fit_best}.items():
    METHODS.add(_name, _fitter)


def cross_fit(method: str, member_probs: np.ndarray, targets: np.ndarray, score: Score,
              kind: TargetKind, k: int = 5, seed: int = 0, **options: Any) -> np.ndarray:
    """Combined probabilities for every row from a combiner fitted without that row."""
    out = np.zeros_like(member_probs[0])
    for fit_rows, score_rows in cross_fit_folds(targets, kind, k, seed):
        combiner = METHODS.get(method)(member_probs[:, fit_rows], targets[fit_rows], score,
                                   kind, **options)
        out[score_rows] = combiner.combine(member_probs[:, score_rows])
    return out


def _simplex(weights: np.ndarray) -> np.ndarray:
    weights = np.clip(np.asarray(weights, dtype=float), 0.0, None)
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(weights),
                                                                     1 / len(weights))
