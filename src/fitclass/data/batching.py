"""Batching: length-grouped shuffled batches for training, length-sorted ones for inference.

Padding only to the longest row of a batch whose rows have similar lengths wastes little
compute: on short-text data this is most of fitclass's speed over plain random batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

#: Rows shuffled together, then sorted by length, before cutting them into batches.
MEGABATCH_FACTOR = 50


#: Draws one epoch's rows (indices, possibly repeated) from a seeded generator.
RowOrder = Callable[[np.random.Generator], np.ndarray]


class LengthGroupedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Random batches of rows of similar length; the order depends only on (seed, epoch).

    `row_order` decides which rows an epoch visits (default: each row once, shuffled); a
    weighted sampler passes a draw with replacement and keeps the length grouping.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int,
                 row_order: RowOrder | None = None) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.row_order = row_order or (lambda rng: rng.permutation(len(self.lengths)))
        #: Yield the one short batch last (set under DDP: accelerate's shards skip a round
        #: of batches whose last batch is short, which loses rows and steps mid-epoch).
        self.short_batch_last = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self.row_order(rng)
        size = self.batch_size * MEGABATCH_FACTOR
        batches: list[list[int]] = []
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size].tolist()
                           for i in range(0, len(chunk), self.batch_size))
        order = rng.permutation(len(batches)).tolist()
        if self.short_batch_last and batches and len(batches[-1]) < self.batch_size:
            order.remove(len(batches) - 1)  # only the final chunk can end in a short batch
            order.append(len(batches) - 1)
        for index in order:
            yield batches[index]


class Collator:
    """Pads a list of tokenized rows to the longest one (rounded up to `pad_to_multiple_of`,
    when given); keeps `labels` as a tensor."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase,
                 pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        extra = [key for key in ("labels", "row") if key in rows[0]]
        features = [{k: v for k, v in row.items() if k not in extra} for row in rows]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt",
                                        pad_to_multiple_of=self.pad_to_multiple_of))
        for key in extra:  # labels: int64 ids or float32 rows; row: position in the table
            batch[key] = torch.as_tensor(np.asarray([row[key] for row in rows]))
        return batch


def rows_from_encoding(encoded: dict[str, list[list[int]]],
                       labels: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Column-wise tokenizer output to one dict per row (what a DataLoader indexes)."""
    keys = list(encoded)
    rows: list[dict[str, Any]] = [{key: encoded[key][i] for key in keys}
                                  for i in range(len(encoded["input_ids"]))]
    if labels is not None:
        for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
            row["labels"], row["row"] = label, index
    return rows


def iter_sorted_batches(tokenizer: PreTrainedTokenizerBase, encoded: dict[str, list[list[int]]],
                        batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Inference batches in length order; yields the original row positions with each batch."""
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    collate = Collator(tokenizer)
    rows = rows_from_encoding(encoded)
    for start in range(0, len(order), batch_size):
        positions = order[start:start + batch_size]
        yield positions, collate([rows[i] for i in positions])
