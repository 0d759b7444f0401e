"""The task as a small strategy object: how outputs become probabilities, how targets are
counted, weighed and lost against, how a decision is fitted and how it is all scored.

A `Task` owns its `TargetKind` (`fitclass.target_kinds`, the array side: counts, strata,
logits, log-loss, label text) and adds what needs torch (per-row losses, soft targets) or
the metrics and decisions. Callers ask the task; they never tell the kinds apart by a
targets array's shape. Decisions (thresholds, calibration, priors) live in `decide/`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from fitclass.decide import calibration, thresholds
from fitclass.decide.decision import Decision, HeldOut, checked_costs, prior_factors
from fitclass.decide.offsets import fit_for_metric
from fitclass.metrics import (
    DEGENERATE_HINT,
    LOWER_IS_BETTER,
    multiclass_metrics,
    multilabel_metrics,
)
from fitclass.target_kinds import MULTICLASS, MULTILABEL, TargetKind


def is_soft(targets: torch.Tensor) -> bool:
    """Multi-class targets given as probability rows (bootstrapping, MixUp) not indices."""
    return targets.ndim == 2 and targets.is_floating_point()


class Task(ABC):
    """Everything that differs between task kinds, behind one interface."""

    name: ClassVar[str]
    kind: ClassVar[TargetKind]
    #: The prediction column of predict's output (`label` or `labels`).
    label_column: ClassVar[str]
    _metrics: ClassVar[Callable[..., dict[str, Any]]]

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)

    @property
    def num_labels(self) -> int:
        return len(self.class_names)

    @property
    def multilabel(self) -> bool:
        return self.kind.multilabel

    # --- targets ----------------------------------------------------------------------------

    def class_counts(self, targets: np.ndarray) -> np.ndarray:
        """Rows per class (multi-class) or positives per label (multi-label), as floats."""
        return self.kind.class_counts(targets, self.num_labels)

    def class_priors(self, targets: np.ndarray) -> np.ndarray:
        """Class shares (multi-class) or positive rates per label (multi-label)."""
        return self.kind.priors(targets, self.num_labels)

    @abstractmethod
    def dense_rows(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Targets as float rows, one column per class (probability rows kept as they are)."""

    @abstractmethod
    def soft_targets(self, targets: torch.Tensor, num_classes: int,
                     smoothing: float) -> torch.Tensor:
        """Targets as probabilities, with label smoothing towards uniform (or 0.5 per label)."""

    @abstractmethod
    def predicted_rows(self, logits: torch.Tensor, hard: bool) -> torch.Tensor:
        """The model's own prediction as target rows: probabilities, or with `hard` the
        predicted class (labels) as 0/1 (bootstrapping's second target)."""

    @abstractmethod
    def per_row_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Plain loss of each row, to rank rows (CE, or mean BCE over labels)."""

    @abstractmethod
    def row_dynamics(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(rows, 4) training dynamics of each row (`training/dynamics.py`): its loss, the
        probability of its given label(s), its margin (given label's logit minus the largest
        other; multi-label: mean signed logit) and its predicted class."""

    # --- probabilities and decisions --------------------------------------------------------

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Turn model outputs into per-class probabilities."""

    def default_decision(self) -> Decision:
        """Argmax (multi-class) or 0.5 thresholds (multi-label), no calibration."""
        return Decision(multilabel=self.multilabel)

    def decide(self, probs: np.ndarray, decision: Decision | None = None) -> np.ndarray:
        """Predictions (indices or a 0/1 matrix) from raw probabilities."""
        decision = decision or self.default_decision()
        return decision.predict(decision.calibrate(probs))

    def fit_decision(self, config: Any, targets: np.ndarray, probs: np.ndarray,
                     train_priors: np.ndarray) -> Decision:
        """Fit the recipe's `decision` section on validation targets and raw probabilities."""
        decision = Decision(multilabel=self.multilabel, at_least_one=config.at_least_one)
        ece_before = calibration.expected_calibration_error(targets, probs, self.kind)
        if config.calibration == "temperature":
            decision.temperature = calibration.fit_temperature(targets, probs, self.kind)
        self._fit_rule(decision, config, targets, probs, train_priors)
        calibrated = decision.calibrate(probs)
        decision.report = {
            "ece_before": ece_before,
            "ece_after": calibration.expected_calibration_error(targets, calibrated, self.kind),
            "temperature": decision.temperature,
            **decision.report,  # what the rule reported (decision.optimize)
        }
        return decision

    @abstractmethod
    def _fit_rule(self, decision: Decision, config: Any, targets: np.ndarray,
                  probs: np.ndarray, train_priors: np.ndarray) -> None:
        """Fit what turns this kind's calibrated probabilities into labels."""

    @abstractmethod
    def label_strings(self, predictions: np.ndarray) -> list[str]:
        """Predictions as the `label`/`labels` column of predict's output."""

    # --- scoring ----------------------------------------------------------------------------

    def metrics(self, targets: np.ndarray, probs: np.ndarray,
                decision: Decision | None = None) -> dict[str, Any]:
        """The full metrics dict, on calibrated probabilities and the decision's predictions
        (on the rows its offsets were fitted on, their cross-fitted predictions)."""
        decision = decision or self.default_decision()
        calibrated = decision.calibrate(probs)
        return self.score(targets, calibrated, decision.predictions_on(targets, probs))

    def score(self, targets: np.ndarray, calibrated: np.ndarray,
              predictions: np.ndarray) -> dict[str, Any]:
        """The full metrics dict of predictions already made from calibrated probabilities:
        a member run's own inside an ensemble, or rows decided by different decisions
        (cross-validation: each fold's rows by the decision fitted on the other folds)."""
        return type(self)._metrics(targets, calibrated, self.class_names, predictions)

    def degenerate_reasons(self, targets: np.ndarray, probs: np.ndarray,
                           predictions: np.ndarray, metric: str) -> list[str]:
        """Warnings about a model that only looks trained: it predicts one class (one label
        set) for every validation row, or its selection `metric` is no better than always
        predicting the most frequent class (per label, multi-label). Empty when neither
        holds. `probs` and `predictions` are what `metrics.json` was computed from."""
        targets, preds = np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)
        if len(targets) == 0 or len(np.unique(targets, axis=0)) < 2:
            return []  # one kind of row: predicting it always is right, not degenerate
        n = len(targets)
        if len(np.unique(preds, axis=0)) == 1:
            return [f"the model predicts {self._constant(preds[0])} for all {n} validation "
                    f"rows; {DEGENERATE_HINT}"]
        base_probs, base_preds, baseline_name = self._baseline(targets)
        compute = type(self)._metrics
        key = "log_loss" if metric == "loss" else metric
        score = compute(targets, probs, self.class_names, preds).get(key)
        baseline = compute(targets, base_probs, self.class_names, base_preds).get(key)
        if not isinstance(score, float | int) or not isinstance(baseline, float | int):
            return []
        worse = (score >= baseline - 1e-9 if key in LOWER_IS_BETTER
                 else score <= baseline + 1e-9)
        if not worse:
            return []
        return [f"the model's {metric} ({score:.4f}) is no better than always predicting "
                f"{baseline_name} ({baseline:.4f}); {DEGENERATE_HINT}"]

    @abstractmethod
    def _constant(self, prediction: np.ndarray) -> str:
        """How a prediction made for every row is named in a warning."""

    @abstractmethod
    def _baseline(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """Probabilities, predictions and name of always predicting the most common value."""


def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float one-hot rows of class indices. Not `F.one_hot`, which checks the indices' range
    on the host (reading the device twice per batch, a stall on a GPU)."""
    dense = torch.zeros((len(targets), num_classes), device=targets.device)
    return dense.scatter_(1, targets.long()[:, None], 1.0)


class MulticlassTask(Task):
    """One label per row; softmax probabilities."""

    name = "multiclass"
    kind = MULTICLASS
    label_column = "label"
    _metrics = staticmethod(multiclass_metrics)

    def dense_rows(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        return targets.float() if is_soft(targets) else one_hot(targets, num_classes)

    def soft_targets(self, targets: torch.Tensor, num_classes: int,
                     smoothing: float) -> torch.Tensor:
        return self.dense_rows(targets, num_classes) * (1.0 - smoothing) + smoothing / num_classes

    def predicted_rows(self, logits: torch.Tensor, hard: bool) -> torch.Tensor:
        predicted = torch.softmax(logits.float(), dim=1)
        return one_hot(predicted.argmax(1), logits.shape[1]) if hard else predicted

    def per_row_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets.long(), reduction="none")

    def row_dynamics(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, given = logits.float(), targets.long()[:, None]
        loss = -F.log_softmax(logits, dim=1).gather(1, given)[:, 0]
        others = logits.scatter(1, given, float("-inf"))
        margin = logits.gather(1, given)[:, 0] - others.max(1).values
        return torch.stack([loss, loss.neg().exp(), margin, logits.argmax(1).float()], dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)

    def _fit_rule(self, decision: Decision, config: Any, targets: np.ndarray,
                  probs: np.ndarray, train_priors: np.ndarray) -> None:
        """Prior correction, then a cost matrix or offsets fitted for `decision.optimize`
        on the prior-corrected probabilities (argmax otherwise)."""
        decision.class_weights = prior_factors(config.prior_correction, train_priors,
                                               self.class_names)
        if config.cost_matrix is not None:
            decision.cost_matrix = checked_costs(config.cost_matrix, self.num_labels)
        if config.optimize != "none":
            fitted = fit_for_metric(decision.calibrate(probs), targets, config.optimize,
                                    self.class_names, config.optimize_folds)
            decision.offsets = fitted.offsets.tolist()
            decision.held_out = HeldOut(np.array(targets), np.array(probs),
                                        fitted.held_out)
            decision.report["optimize"] = fitted.report

    def label_strings(self, predictions: np.ndarray) -> list[str]:
        return [self.class_names[i] for i in predictions]

    def _constant(self, prediction: np.ndarray) -> str:
        return f"{self.class_names[int(prediction)]!r}"

    def _baseline(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(targets)
        share = np.bincount(targets, minlength=self.num_labels) / n
        majority = int(share.argmax())
        return (np.tile(share, (n, 1)), np.full(n, majority),
                f"the most frequent class {self.class_names[majority]!r}")


class MultilabelTask(Task):
    """Any number of labels per row; independent sigmoid probabilities."""

    name = "multilabel"
    kind = MULTILABEL
    label_column = "labels"
    _metrics = staticmethod(multilabel_metrics)

    def dense_rows(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        return targets.float()

    def soft_targets(self, targets: torch.Tensor, num_classes: int,
                     smoothing: float) -> torch.Tensor:
        return targets.float() * (1.0 - smoothing) + 0.5 * smoothing

    def predicted_rows(self, logits: torch.Tensor, hard: bool) -> torch.Tensor:
        predicted = torch.sigmoid(logits.float())
        return (predicted > 0.5).float() if hard else predicted

    def per_row_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(),
                                                  reduction="none").mean(1)

    def row_dynamics(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, y = logits.float(), targets.float()
        loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
        p_given = (torch.sigmoid(logits) * y + torch.sigmoid(-logits) * (1 - y)).mean(1)
        margin = ((2 * y - 1) * logits).mean(1)
        predicted = (logits > 0).float().argmax(1).float()
        return torch.stack([loss, p_given, margin, predicted], dim=1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def _fit_rule(self, decision: Decision, config: Any, targets: np.ndarray,
                  probs: np.ndarray, train_priors: np.ndarray) -> None:
        """A threshold per label (or one for all), on calibrated probabilities."""
        mode = "per_class" if config.thresholds == "auto" else config.thresholds
        decision.thresholds = thresholds.fit_thresholds(targets, decision.calibrate(probs),
                                                        mode, config.min_support).tolist()

    def label_strings(self, predictions: np.ndarray) -> list[str]:
        return ["|".join(n for n, on in zip(self.class_names, row, strict=True) if on)
                for row in predictions]

    def _constant(self, prediction: np.ndarray) -> str:
        on = [name for name, value in zip(self.class_names, prediction, strict=True) if value]
        return f"the same labels ({'|'.join(on) or 'none'})"

    def _baseline(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(targets)
        share = targets.mean(axis=0)
        return (np.tile(share, (n, 1)), np.tile(share > 0.5, (n, 1)),
                "each label's most common value")


TASKS: dict[str, type[Task]] = {task.name: task for task in (MulticlassTask, MultilabelTask)}


def make_task(name: str, class_names: Sequence[str]) -> Task:
    return TASKS[name](class_names)
