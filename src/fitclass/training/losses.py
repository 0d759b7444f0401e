"""The loss registry: a recipe's `imbalance.loss` name to a loss on (logits, targets).

Targets are class indices (multi-class) or a 0/1 matrix (multi-label); every loss handles
both, takes class weights, and composes with label smoothing. A factory gets a `LossSpec`
with the training class statistics, so priors and alphas need no special cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fitclass.errors import RecipeError
from fitclass.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LossSpec:
    """What a loss may need: task kind, class statistics and the recipe's loss settings."""

    multilabel: bool
    priors: np.ndarray  # class shares (multi-class) or positive rates (multi-label)
    weights: np.ndarray | None = None  # per-class loss weights
    pos_weight: np.ndarray | None = None  # multi-label positive weights
    label_smoothing: float = 0.0
    gamma: float = 2.0
    alpha: float | list[float] | str | None = None
    tau: float = 1.0


LossFactory = Callable[[LossSpec], Loss]
LOSSES: Registry[LossFactory] = Registry("loss", "imbalance.loss")
register_loss = LOSSES.register


def loss_names() -> list[str]:
    return LOSSES.names()


def make_loss(name: str, spec: LossSpec) -> Loss:
    """The registered loss `name` built for `spec`."""
    return LOSSES.get(name)(spec)


def _tensor(values: np.ndarray | None) -> torch.Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float32)


def soft_targets(targets: torch.Tensor, num_classes: int, smoothing: float,
                 multilabel: bool) -> torch.Tensor:
    """Targets as probabilities, with label smoothing towards uniform (or 0.5 per label).
    Multi-class targets are class indices, or already rows of probabilities."""
    if multilabel:
        return targets.float() * (1.0 - smoothing) + 0.5 * smoothing
    dense = targets.float() if is_soft(targets) else one_hot(targets, num_classes)
    return dense * (1.0 - smoothing) + smoothing / num_classes


def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float one-hot rows of class indices. Not `F.one_hot`, which checks the indices' range
    on the host (reading the device twice per batch)."""
    dense = torch.zeros((len(targets), num_classes), device=targets.device)
    return dense.scatter_(1, targets.long()[:, None], 1.0)


def is_soft(targets: torch.Tensor) -> bool:
    """Multi-class targets given as probability rows (bootstrapping, MixUp) not indices."""
    return targets.ndim == 2 and targets.is_floating_point()


def _weighted_sum(per_class: torch.Tensor, targets: torch.Tensor,
                  weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over rows of per-class terms; with weights, torch's weighted-mean convention
    (divided by the summed weight of the rows' classes; soft rows weigh by their shares)."""
    if weights is None:
        return per_class.sum(1).mean()
    weights = weights.to(per_class.device)
    row_weights = targets.float() @ weights if is_soft(targets) else weights[targets.long()]
    return (per_class * weights).sum() / row_weights.sum()


def _multiclass_ce(logits: torch.Tensor, targets: torch.Tensor, spec: LossSpec,
                   offset: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-target cross-entropy, equal to `torch.nn.CrossEntropyLoss(weight, label_smoothing)`:
    each class term is scaled by its weight, the sum divided by the true classes' weights."""
    logits = logits.float() if offset is None else logits.float() + offset.to(logits.device)
    q = soft_targets(targets, logits.shape[1], spec.label_smoothing, multilabel=False)
    return _weighted_sum(-q * F.log_softmax(logits, dim=1), targets, _tensor(spec.weights))


def _multilabel_bce(logits: torch.Tensor, targets: torch.Tensor, spec: LossSpec,
                    offset: torch.Tensor | None = None) -> torch.Tensor:
    logits = logits.float() if offset is None else logits.float() + offset.to(logits.device)
    q = soft_targets(targets, logits.shape[1], spec.label_smoothing, multilabel=True)
    pos_weight, weights = _tensor(spec.pos_weight), _tensor(spec.weights)
    return F.binary_cross_entropy_with_logits(
        logits, q, weight=None if weights is None else weights.to(logits.device),
        pos_weight=None if pos_weight is None else pos_weight.to(logits.device))


@register_loss("ce")
@register_loss("bce")
def plain(spec: LossSpec) -> Loss:
    """Cross-entropy (multi-class) or binary cross-entropy with logits (multi-label)."""
    if spec.multilabel:
        return lambda logits, targets: _multilabel_bce(logits, targets, spec)
    return lambda logits, targets: _multiclass_ce(logits, targets, spec)


def focal_alpha(spec: LossSpec) -> np.ndarray | None:
    """Per-class alpha: a scalar, a list, or `auto` (multi-class: inverse square-root share,
    mean 1 over rows; multi-label: 1 - positive rate, the weight of positives)."""
    if spec.alpha is None:
        return None
    if spec.alpha == "auto":
        if spec.multilabel:
            return 1.0 - spec.priors
        raw = 1.0 / np.sqrt(np.maximum(spec.priors, 1e-12))
        return raw / (raw * spec.priors).sum()
    if isinstance(spec.alpha, str):
        raise RecipeError(f"imbalance.alpha: {spec.alpha!r} is not a number, list or 'auto'")
    alpha = np.asarray(spec.alpha, dtype=float)
    return np.full(len(spec.priors), float(alpha)) if alpha.ndim == 0 else alpha


@register_loss("focal")
def focal(spec: LossSpec) -> Loss:
    """Focal loss (Lin et al. 2017): down-weights easy rows by (1 - p)^gamma."""
    alpha = _tensor(focal_alpha(spec))
    gamma = spec.gamma

    def multiclass(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        q = soft_targets(targets, logits.shape[1], spec.label_smoothing, multilabel=False)
        per_class = -q * (1.0 - log_p.exp()).pow(gamma) * log_p
        if alpha is not None:
            per_class = per_class * alpha.to(logits.device)
        return _weighted_sum(per_class, targets, _tensor(spec.weights))

    def multilabel(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        q = soft_targets(targets, logits.shape[1], spec.label_smoothing, multilabel=True)
        bce = F.binary_cross_entropy_with_logits(logits, q, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * q + (1 - p) * (1 - q)
        loss = bce * (1.0 - p_t).pow(gamma)
        if alpha is not None:
            a = alpha.to(logits.device)
            loss = loss * (a * q + (1 - a) * (1 - q))
        return loss.mean()

    return multilabel if spec.multilabel else multiclass


@register_loss("logit_adjusted")
def logit_adjusted(spec: LossSpec) -> Loss:
    """Logit-adjusted loss (Menon et al. 2021): train on logits + tau * log prior, predict on
    raw logits, which then estimate balanced (not prior-weighted) class scores."""
    priors = np.clip(spec.priors, 1e-12, 1.0)
    if spec.multilabel:
        offset = torch.as_tensor(spec.tau * np.log(priors / np.clip(1 - priors, 1e-12, 1)),
                                 dtype=torch.float32)
        return lambda logits, targets: _multilabel_bce(logits, targets, spec, offset)
    offset = torch.as_tensor(spec.tau * np.log(priors), dtype=torch.float32)
    return lambda logits, targets: _multiclass_ce(logits, targets, spec, offset)


def with_bootstrap(loss: Loss, mode: str, beta: float, multilabel: bool) -> Loss:
    """Bootstrapping (Reed et al. 2015): train towards (1 - beta) * label + beta * the model's
    own (detached) prediction, `soft` probabilities or the `hard` predicted class."""

    def bootstrapped(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if multilabel:
                predicted = torch.sigmoid(logits.float())
                if mode == "hard":
                    predicted = (predicted > 0.5).float()
                given = targets.float()
            else:
                predicted = torch.softmax(logits.float(), dim=1)
                if mode == "hard":
                    predicted = F.one_hot(predicted.argmax(1), logits.shape[1]).float()
                given = (targets.float() if is_soft(targets)
                         else F.one_hot(targets.long(), logits.shape[1]).float())
        return loss(logits, (1.0 - beta) * given + beta * predicted)

    return bootstrapped
