"""The sampler registry: `imbalance.sampler` name to the batch sampler of a training epoch.

- `none`: every row once per epoch, shuffled, length-grouped.
- `weighted`: rows drawn with replacement, probability inverse to their class's frequency
  (multi-label: to their rarest label's), length-grouped; an epoch has as many draws as rows.
- `class_aware`: every batch cycles through the classes evenly, then draws a random row of
  each drawn class (multi-label: a row carrying that label).

The kind's arithmetic (`TargetKind.row_weights`, `rows_by_class`) is asked of the task's
target kind, which the loop passes in. `training_loader` puts the sampler under the
DataLoader every step strategy iterates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fitclass.contracts.neural import TrainingData
from fitclass.data.batching import LengthGroupedBatchSampler
from fitclass.data.packing import TokenBudgetBatchSampler
from fitclass.registry import Registry
from fitclass.target_kinds import TargetKind

if TYPE_CHECKING:
    from fitclass.recipe import Recipe

BatchSampler = torch.utils.data.Sampler[list[int]]
SamplerFactory = Callable[[np.ndarray, np.ndarray, TargetKind, int, int], BatchSampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler", "imbalance.sampler")
register_sampler = SAMPLERS.register


def make_sampler(name: str, lengths: np.ndarray, targets: np.ndarray, batch_size: int,
                 seed: int, *, kind: TargetKind) -> BatchSampler:
    """The registered sampler `name` over rows with these token lengths and targets (of
    the task's target `kind`)."""
    return SAMPLERS.get(name)(lengths, targets, kind, batch_size, seed)


#: Batches each DataLoader worker prepares ahead (only with workers).
PREFETCH_BATCHES = 4


def training_loader(data: TrainingData, sampler: Any) -> torch.utils.data.DataLoader[Any]:
    """The loader of the training rows: the kind's workers kept alive across epochs, each
    preparing `PREFETCH_BATCHES` ahead into pinned memory where the kind asks (images on a
    GPU), so the device never waits on a batch it could have had."""
    workers = data.workers
    return torch.utils.data.DataLoader(
        data.rows, batch_sampler=sampler, collate_fn=data.collate, num_workers=workers,
        pin_memory=data.pin_memory, persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None)


def batch_sampler(recipe: Recipe, data: TrainingData, targets: np.ndarray,
                  kind: TargetKind) -> BatchSampler:
    """The training batches: `train.batch_tokens` per batch (token budget, costed as the
    classifier batches: packed or padded), else `train.batch_size` rows from the recipe's
    `imbalance.sampler`."""
    train = recipe.train
    if train.batch_tokens is None:
        return make_sampler(recipe.imbalance.sampler, data.lengths, targets, train.batch_size,
                            train.seed, kind=kind)
    batching = data.batching
    return TokenBudgetBatchSampler(data.lengths, train.batch_tokens, train.seed,
                                   packed=batching.packed,
                                   group_by_length=batching.group_by_length,
                                   pad_multiple=batching.pad_multiple)


def describe_batching(data: TrainingData, recipe: Recipe) -> dict[str, Any]:
    """What `environment.json` records of the batching: packed or padded and why, and the
    batch size in rows or tokens."""
    size = ({"batch_tokens": recipe.train.batch_tokens} if recipe.train.batch_tokens
            else {"batch_size": recipe.train.batch_size})
    return data.batching.describe() | size




@register_sampler("none")
def shuffled(lengths: np.ndarray, targets: np.ndarray, kind: TargetKind, batch_size: int,
             seed: int) -> BatchSampler:
    return LengthGroupedBatchSampler(list(lengths), batch_size, seed)


@register_sampler("weighted")
def weighted(lengths: np.ndarray, targets: np.ndarray, kind: TargetKind, batch_size: int,
             seed: int) -> BatchSampler:
    probabilities = kind.row_weights(targets)
    probabilities = probabilities / probabilities.sum()
    n = len(lengths)
    return LengthGroupedBatchSampler(list(lengths), batch_size, seed,
                                     row_order=lambda rng: rng.choice(n, n, p=probabilities))


class ClassAwareBatchSampler(BatchSampler):
    """Batches that draw classes evenly (Shen et al. 2016 class-aware sampling)."""

    def __init__(self, targets: np.ndarray, kind: TargetKind, batch_size: int,
                 seed: int) -> None:
        self.groups = [rows for rows in kind.rows_by_class(targets) if len(rows)]
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.num_rows = len(targets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.num_rows + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(len(self)):
            # Whole permutations plus the head of one more, never carried into the next
            # batch: every class appears floor or ceil(batch_size / classes) times per batch.
            classes: list[int] = []
            while len(classes) < self.batch_size:
                classes.extend(rng.permutation(len(self.groups)).tolist())
            yield [int(rng.choice(self.groups[c])) for c in classes[:self.batch_size]]


@register_sampler("class_aware")
def class_aware(lengths: np.ndarray, targets: np.ndarray, kind: TargetKind, batch_size: int,
                seed: int) -> BatchSampler:
    return ClassAwareBatchSampler(targets, kind, batch_size, seed)
