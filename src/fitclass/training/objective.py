"""The training objective a recipe asks for: the loss with its class weights and priors."""

from __future__ import annotations

import numpy as np

from fitclass.data.class_weights import class_weights, positive_weights
from fitclass.recipe import Recipe
from fitclass.tasks import Task, make_task
from fitclass.training.distillation import distillation_loss
from fitclass.training.losses import Loss, LossSpec, make_loss, with_bootstrap


def loss_spec(recipe: Recipe, train_targets: np.ndarray, task: Task) -> LossSpec:
    """Everything the loss needs from the recipe, the task and the training targets."""
    imbalance = recipe.imbalance
    pos_weight = None  # multi-label only: the recipe refuses it for multi-class tasks
    if imbalance.pos_weight == "auto":
        pos_weight = positive_weights(train_targets, imbalance.pos_weight_cap)
    elif isinstance(imbalance.pos_weight, list):
        pos_weight = np.asarray(imbalance.pos_weight, dtype=float)
    return LossSpec(
        task=task,
        priors=task.class_priors(train_targets),
        weights=class_weights(imbalance.class_weights, task.class_counts(train_targets),
                              task.class_names, imbalance.beta),
        pos_weight=pos_weight,
        label_smoothing=recipe.noise.label_smoothing,
        gamma=imbalance.gamma,
        alpha=imbalance.alpha,
        tau=imbalance.tau,
    )


def build_loss(recipe: Recipe, train_targets: np.ndarray, class_names: list[str]) -> Loss:
    """The recipe's loss for its task; with `noise.bootstrap`, on bootstrapped targets; with
    `distil`, mixed with the KL to the teacher's softened probabilities (on the packed
    targets `training/distillation.py` builds; the hard loss alone on plain targets)."""
    task = make_task(recipe.task, class_names)
    loss = make_loss(recipe.imbalance.loss, loss_spec(recipe, train_targets, task))
    bootstrap = recipe.noise.bootstrap
    if bootstrap is not None:
        loss = with_bootstrap(loss, bootstrap.mode, bootstrap.beta, task)
    distil = recipe.distil
    if distil is not None:
        loss = distillation_loss(loss, task, distil.alpha, distil.temperature)
    return loss


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
