"""The training objective a recipe asks for: the loss with its class weights and priors."""

from __future__ import annotations

import numpy as np

from fitclass.data.class_weights import class_counts, class_weights, positive_weights
from fitclass.recipe import Recipe
from fitclass.training.losses import Loss, LossSpec, make_loss, with_bootstrap


def class_priors(targets: np.ndarray, num_labels: int) -> np.ndarray:
    """Class shares (multi-class) or positive rates per label (multi-label)."""
    counts = class_counts(targets, num_labels)
    return counts / (len(targets) if targets.ndim == 2 else max(counts.sum(), 1.0))


def loss_spec(recipe: Recipe, train_targets: np.ndarray, class_names: list[str]) -> LossSpec:
    """Everything the loss needs from the recipe and the training targets."""
    imbalance = recipe.imbalance
    multilabel = train_targets.ndim == 2
    counts = class_counts(train_targets, len(class_names))
    pos_weight = None
    if multilabel and imbalance.pos_weight == "auto":
        pos_weight = positive_weights(train_targets, imbalance.pos_weight_cap)
    elif multilabel and isinstance(imbalance.pos_weight, list):
        pos_weight = np.asarray(imbalance.pos_weight, dtype=float)
    return LossSpec(
        multilabel=multilabel,
        priors=class_priors(train_targets, len(class_names)),
        weights=class_weights(imbalance.class_weights, counts, class_names, imbalance.beta),
        pos_weight=pos_weight,
        label_smoothing=recipe.noise.label_smoothing,
        gamma=imbalance.gamma,
        alpha=imbalance.alpha,
        tau=imbalance.tau,
    )


def build_loss(recipe: Recipe, train_targets: np.ndarray, class_names: list[str]) -> Loss:
    """The recipe's loss; with `noise.bootstrap`, on bootstrapped targets."""
    loss = make_loss(recipe.imbalance.loss, loss_spec(recipe, train_targets, class_names))
    bootstrap = recipe.noise.bootstrap
    if bootstrap is None:
        return loss
    return with_bootstrap(loss, bootstrap.mode, bootstrap.beta, train_targets.ndim == 2)


def stacked_remedies(recipe: Recipe) -> list[str]:
    """Imbalance remedies that each rebalance classes on their own: combined, they
    over-correct and minority classes get over-predicted."""
    imbalance = recipe.imbalance
    active = []
    if imbalance.sampler != "none":
        active.append(f"imbalance.sampler={imbalance.sampler}")
    if imbalance.class_weights != "none":
        active.append("imbalance.class_weights")
    if imbalance.loss == "logit_adjusted":
        active.append("imbalance.loss=logit_adjusted")
    if imbalance.alpha == "auto":
        active.append("imbalance.alpha=auto")
    if len(active) < 2:
        return []
    return [f"{' + '.join(active)} each rebalance the classes; together they usually "
            f"over-correct (minority classes over-predicted): keep one, and compare "
            f"predicted_distribution with label_distribution in metrics.json"]
