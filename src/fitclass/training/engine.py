"""The one entry point that trains a neural model kind: the loop, or co-teaching when the
recipe asks for it. The workflow layer passes `fit_neural` in `FitContext.trainer`, so model
kinds build their networks without importing the training loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fitclass.contracts.fit import FitContext, FitResult
    from fitclass.contracts.neural import NeuralClassifier


def fit_neural(build: Callable[[], NeuralClassifier], context: FitContext) -> FitResult:
    """Build the network(s) under `train.seed` (the new head's initial weights follow it) and
    fine-tune them."""
    # imported here, not at the top: accelerate and the loop cost seconds, and `fitclass.api`
    # (which names this function) must stay quick to import for tfidf runs and the CLI
    from accelerate.utils import set_seed

    from fitclass.training.coteaching import fit_coteaching
    from fitclass.training.finetune import fit_transformer

    seed = context.recipe.train.seed
    set_seed(seed)
    first = build()
    coteaching = context.recipe.noise.coteaching
    if coteaching is not None:
        set_seed(seed + 1)  # the peer network starts from a different head
        return fit_coteaching(first, build(), context, coteaching)
    return fit_transformer(first, context)
