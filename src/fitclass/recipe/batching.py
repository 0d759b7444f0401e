"""Cross-section checks of `train.batch_tokens` and `train.packing`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fitclass.capabilities import capabilities_for

if TYPE_CHECKING:
    from fitclass.recipe import Recipe

#: Padded batches on CUDA round lengths up to this; a budget must hold one such row.
PAD_MULTIPLE = 8


def batching_problems(recipe: Recipe) -> list[str]:
    """Settings of token-budget and packed batches that cannot work together."""
    train, problems = recipe.train, []
    capabilities = capabilities_for(recipe.model.backbone)
    text = recipe.data.images is None
    if train.packing == "on" and capabilities is not None and not capabilities.packing:
        problems.append(f"train.packing: on needs a text transformer backbone; "
                        f"backbone: {recipe.model.backbone} cannot pack rows; set "
                        f"train.packing: auto or off")
    elif train.packing == "on" and not text:
        problems.append("train.packing: on packs text rows; with data.images set "
                        "train.packing: auto or off")
    if train.batch_tokens is None:
        return problems
    if not text or (capabilities is not None and not capabilities.packing):
        problems.append(f"train.batch_tokens sizes batches of text tokens for a transformer "
                        f"backbone (backbone: {recipe.model.backbone}"
                        f"{', with data.images' if not text else ''}); use train.batch_size")
        return problems
    fits = -(-recipe.model.max_length // PAD_MULTIPLE) * PAD_MULTIPLE
    if train.batch_tokens < fits:
        problems.append(f"train.batch_tokens {train.batch_tokens} cannot hold one row of "
                        f"model.max_length {recipe.model.max_length} tokens; set it to at "
                        f"least {fits} (a few thousand is typical, e.g. 4096)")
    if recipe.imbalance.sampler != "none":
        problems.append(f"train.batch_tokens makes its own batches by tokens, and "
                        f"imbalance.sampler {recipe.imbalance.sampler!r} makes batches by "
                        f"rows; use train.batch_size with that sampler, or "
                        f"imbalance.class_weights with train.batch_tokens")
    return problems
