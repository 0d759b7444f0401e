"""The loss registry: a recipe's `train.loss` name to a loss on (logits, targets).

A loss factory receives the recipe and the training targets (for class priors), so losses
that need class statistics (focal alpha, logit adjustment) get them without special cases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fitclass.errors import RecipeError
from fitclass.recipe import Recipe

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossFactory = Callable[[Recipe, np.ndarray], Loss]

_LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    def decorate(factory: LossFactory) -> LossFactory:
        _LOSSES[name] = factory
        return factory

    return decorate


def make_loss(recipe: Recipe, train_targets: np.ndarray) -> Loss:
    """The loss named by `recipe.train.loss`, built for these training targets."""
    factory = _LOSSES.get(recipe.train.loss)
    if factory is None:
        raise RecipeError(f"train.loss: unknown loss {recipe.train.loss!r}; "
                          f"choose one of {sorted(_LOSSES)}")
    return factory(recipe, train_targets)


@register_loss("ce")
def cross_entropy(recipe: Recipe, train_targets: np.ndarray) -> Loss:
    """Cross-entropy, with `train.label_smoothing`; computed in float32 under AMP."""
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.train.label_smoothing)
    return lambda logits, targets: criterion(logits.float(), targets)
