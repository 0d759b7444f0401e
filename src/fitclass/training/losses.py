"""The loss registry: a recipe's `imbalance.loss` name to a loss on (logits, targets).

Targets are class indices (multi-class) or a 0/1 matrix (multi-label); every loss has one
form per task kind, registered under the kind's name (`register_loss(name, "multiclass")`),
and `make_loss` takes the form of the spec's task. Every form takes class weights and
composes with label smoothing (the task's `soft_targets`). A factory gets a `LossSpec` with
the training class statistics, so priors and alphas need no special cases.

Every form also takes `rows`, a 0/1 weight per batch row: the loss of the marked rows alone,
computed over the whole batch (a distillation's rows without a hard label are left out this
way: choosing them by a boolean mask would read the device every step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from fitclass.errors import RecipeError
from fitclass.registry import Registry
from fitclass.tasks import MulticlassTask, MultilabelTask, Task, is_soft

MULTICLASS, MULTILABEL = MulticlassTask.name, MultilabelTask.name

#: The denominator's floor when `rows` marks rows of zero summed class weight (none).
TINY = 1e-12


class Loss(Protocol):
    """A training loss: the batch mean over rows (class-weighted where the recipe asks),
    of the rows `rows` marks with 1 when given (0 when it marks none)."""

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 rows: torch.Tensor | None = None) -> torch.Tensor: ...



@dataclass
class LossSpec:
    """What a loss may need: the task, class statistics and the recipe's loss settings."""

    task: Task
    priors: np.ndarray  # class shares (multi-class) or positive rates (multi-label)
    weights: np.ndarray | None = None  # per-class loss weights
    pos_weight: np.ndarray | None = None  # multi-label positive weights
    label_smoothing: float = 0.0
    gamma: float = 2.0
    alpha: float | list[float] | str | None = None
    tau: float = 1.0


LossFactory = Callable[[LossSpec], Loss]
#: Each loss name to its form for each task kind (by `Task.name`).
LOSSES: Registry[dict[str, LossFactory]] = Registry("loss", "imbalance.loss")


def register_loss(name: str, *tasks: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator registering a factory as the form of loss `name` for these task kinds."""

    def decorate(factory: LossFactory) -> LossFactory:
        LOSSES.add(name, {**(LOSSES.find(name) or {}), **dict.fromkeys(tasks, factory)})
        return factory

    return decorate


def loss_names() -> list[str]:
    return LOSSES.names()


def make_loss(name: str, spec: LossSpec) -> Loss:
    """The registered loss `name` built for `spec`, in the form of its task's kind."""
    forms, task = LOSSES.get(name), spec.task.name
    if task not in forms:  # a loss registered for the other kind only
        usable = [n for n, f in LOSSES.items() if task in f]
        raise RecipeError(f"imbalance.loss: {name!r} has no form for task: {task}; choose "
                          f"one of {usable}")
    return forms[task](spec)


def _tensor(values: np.ndarray | None) -> torch.Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float32)


def row_mean(values: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The mean of per-row `values`, over the rows `rows` marks (all rows without it); 0
    when it marks none. No host sync: the count is clamped, not tested."""
    if rows is None:
        return values.mean()
    rows = rows.to(values.dtype)
    return (values * rows).sum() / rows.sum().clamp_min(1.0)


def _weighted_sum(per_class: torch.Tensor, targets: torch.Tensor,
                  weights: torch.Tensor | None, rows: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Mean over rows of per-class terms; with weights, torch's weighted-mean convention
    (divided by the summed weight of the rows' classes; soft rows weigh by their shares).
    `rows` keeps the marked rows' terms and weights only."""
    if weights is None:
        return row_mean(per_class.sum(1), rows)
    weights = weights.to(per_class.device)
    row_weights = targets.float() @ weights if is_soft(targets) else weights[targets.long()]
    if rows is None:
        return (per_class * weights).sum() / row_weights.sum()
    rows = rows.to(per_class.dtype)
    kept = ((per_class * weights).sum(1) * rows).sum()
    return kept / (row_weights * rows).sum().clamp_min(TINY)


def _multiclass_ce(logits: torch.Tensor, targets: torch.Tensor, spec: LossSpec,
                   offset: torch.Tensor | None = None,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-target cross-entropy, equal to `torch.nn.CrossEntropyLoss(weight, label_smoothing)`:
    each class term is scaled by its weight, the sum divided by the true classes' weights."""
    logits = logits.float() if offset is None else logits.float() + offset.to(logits.device)
    q = spec.task.soft_targets(targets, logits.shape[1], spec.label_smoothing)
    return _weighted_sum(-q * F.log_softmax(logits, dim=1), targets, _tensor(spec.weights),
                         rows)


def _multilabel_bce(logits: torch.Tensor, targets: torch.Tensor, spec: LossSpec,
                    offset: torch.Tensor | None = None,
                    rows: torch.Tensor | None = None) -> torch.Tensor:
    """The mean over rows and labels of each label's (weighted) binary cross-entropy."""
    logits = logits.float() if offset is None else logits.float() + offset.to(logits.device)
    q = spec.task.soft_targets(targets, logits.shape[1], spec.label_smoothing)
    pos_weight, weights = _tensor(spec.pos_weight), _tensor(spec.weights)
    per_label = F.binary_cross_entropy_with_logits(
        logits, q, weight=None if weights is None else weights.to(logits.device),
        pos_weight=None if pos_weight is None else pos_weight.to(logits.device),
        reduction="none")
    return per_label.mean() if rows is None else row_mean(per_label.mean(1), rows)


@register_loss("ce", MULTICLASS)
@register_loss("bce", MULTICLASS)
def cross_entropy(spec: LossSpec) -> Loss:
    """Cross-entropy (`bce` on a multi-class task means the same)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        return _multiclass_ce(logits, targets, spec, rows=rows)

    return loss


@register_loss("ce", MULTILABEL)
@register_loss("bce", MULTILABEL)
def binary_cross_entropy(spec: LossSpec) -> Loss:
    """Binary cross-entropy with logits, per label (`ce` on a multi-label task too)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        return _multilabel_bce(logits, targets, spec, rows=rows)

    return loss


def _auto_alpha_multiclass(priors: np.ndarray) -> np.ndarray:
    """Inverse square-root share, mean 1 over rows."""
    raw = 1.0 / np.sqrt(np.maximum(priors, 1e-12))
    return raw / (raw * priors).sum()


def _auto_alpha_multilabel(priors: np.ndarray) -> np.ndarray:
    """1 - positive rate, the weight of positives."""
    return 1.0 - priors


AUTO_ALPHA: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    MULTICLASS: _auto_alpha_multiclass, MULTILABEL: _auto_alpha_multilabel}


def focal_alpha(spec: LossSpec) -> np.ndarray | None:
    """Per-class alpha: a scalar, a list, or `auto` (multi-class: inverse square-root share,
    mean 1 over rows; multi-label: 1 - positive rate, the weight of positives)."""
    if spec.alpha is None:
        return None
    if spec.alpha == "auto":
        return AUTO_ALPHA[spec.task.name](spec.priors)
    if isinstance(spec.alpha, str):
        raise RecipeError(f"imbalance.alpha: {spec.alpha!r} is not a number, list or 'auto'")
    alpha = np.asarray(spec.alpha, dtype=float)
    return np.full(len(spec.priors), float(alpha)) if alpha.ndim == 0 else alpha


@register_loss("focal", MULTICLASS)
def focal(spec: LossSpec) -> Loss:
    """Focal loss (Lin et al. 2017): down-weights easy rows by (1 - p)^gamma."""
    alpha = _tensor(focal_alpha(spec))
    gamma = spec.gamma

    def multiclass(logits: torch.Tensor, targets: torch.Tensor,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        q = spec.task.soft_targets(targets, logits.shape[1], spec.label_smoothing)
        per_class = -q * (1.0 - log_p.exp()).pow(gamma) * log_p
        if alpha is not None:
            per_class = per_class * alpha.to(logits.device)
        return _weighted_sum(per_class, targets, _tensor(spec.weights), rows)

    return multiclass


@register_loss("focal", MULTILABEL)
def focal_per_label(spec: LossSpec) -> Loss:
    """Focal loss on each label's binary cross-entropy."""
    alpha = _tensor(focal_alpha(spec))
    gamma = spec.gamma

    def multilabel(logits: torch.Tensor, targets: torch.Tensor,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
        logits = logits.float()
        q = spec.task.soft_targets(targets, logits.shape[1], spec.label_smoothing)
        bce = F.binary_cross_entropy_with_logits(logits, q, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * q + (1 - p) * (1 - q)
        loss = bce * (1.0 - p_t).pow(gamma)
        if alpha is not None:
            a = alpha.to(logits.device)
            loss = loss * (a * q + (1 - a) * (1 - q))
        return loss.mean() if rows is None else row_mean(loss.mean(1), rows)

    return multilabel


@register_loss("logit_adjusted", MULTICLASS)
def logit_adjusted(spec: LossSpec) -> Loss:
    """Logit-adjusted loss (Menon et al. 2021): train on logits + tau * log prior, predict on
    raw logits, which then estimate balanced (not prior-weighted) class scores."""
    priors = np.clip(spec.priors, 1e-12, 1.0)
    offset = torch.as_tensor(spec.tau * np.log(priors), dtype=torch.float32)

    def loss(logits: torch.Tensor, targets: torch.Tensor,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        return _multiclass_ce(logits, targets, spec, offset, rows)

    return loss


@register_loss("logit_adjusted", MULTILABEL)
def logit_adjusted_per_label(spec: LossSpec) -> Loss:
    """The same per label: the offset is tau times the log-odds of each label's prior."""
    priors = np.clip(spec.priors, 1e-12, 1.0)
    offset = torch.as_tensor(spec.tau * np.log(priors / np.clip(1 - priors, 1e-12, 1)),
                             dtype=torch.float32)

    def loss(logits: torch.Tensor, targets: torch.Tensor,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        return _multilabel_bce(logits, targets, spec, offset, rows)

    return loss


def with_bootstrap(loss: Loss, mode: str, beta: float, task: Task) -> Loss:
    """Bootstrapping (Reed et al. 2015): train towards (1 - beta) * label + beta * the model's
    own (detached) prediction, `soft` probabilities or the `hard` predicted class."""

    def bootstrapped(logits: torch.Tensor, targets: torch.Tensor,
                     rows: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            predicted = task.predicted_rows(logits, hard=mode == "hard")
            given = task.dense_rows(targets, logits.shape[1])
        return loss(logits, (1.0 - beta) * given + beta * predicted, rows)

    return bootstrapped
