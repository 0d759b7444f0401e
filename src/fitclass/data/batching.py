"""Batching: length-grouped shuffled batches for training, length-sorted ones by token budget
for inference, and the numpy collator that pads them.

Padding only to the longest row of a batch whose rows have similar lengths wastes little
compute: on short-text data this is most of fitclass's speed over plain random batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from fitclass.data.tokens import TYPE_IDS, TokenArrays

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
        #: Batches per round, the number of DDP processes: accelerate deals batch i to
        #: process i % n, so one optimiser step takes n consecutive batches. They are kept
        #: neighbours in length order (shuffled as a round), so no process waits on a
        #: longer batch of another length group every step.
        self.round_size = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self.row_order(rng)
        size = self.batch_size * MEGABATCH_FACTOR * self.round_size
        rounds: list[list[list[int]]] = []  # per round, its batches (one per process)
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches = [chunk[i:i + self.batch_size].tolist()
                       for i in range(0, len(chunk), self.batch_size)]
            rounds.extend(batches[i:i + self.round_size]
                          for i in range(0, len(batches), self.round_size))
        order = rng.permutation(len(rounds)).tolist()
        last = rounds[-1] if rounds else []
        if self.short_batch_last and last and (len(last) < self.round_size
                                               or len(last[-1]) < self.batch_size):
            order.remove(len(rounds) - 1)  # only the final chunk can end in a short batch
            order.append(len(rounds) - 1)
        for index in order:
            yield from rounds[index]


class Collator:
    """Pads tokenised rows to the longest one (or a multiple of `pad_to_multiple_of`) in
    numpy: one scatter of the rows' ids into a full pad array, not a Python loop over tokens.
    `labels` (int64 ids or float32 rows) and `row` (positions in the table) become tensors.

    Gives what `tokenizer.pad(rows, return_tensors="pt")` gives (int64 ids, attention mask,
    token type ids when the tokenizer uses them; the tokenizer's padding side).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase,
                 pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.pad_type_id = int(tokenizer.pad_token_type_id)
        self.left = tokenizer.padding_side == "left"
        self.type_ids = TYPE_IDS in tokenizer.model_input_names
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = np.fromiter((len(row["input_ids"]) for row in rows), dtype=np.int64,
                              count=len(rows))
        ids = np.concatenate([row["input_ids"] for row in rows])
        types = (np.concatenate([row[TYPE_IDS] for row in rows])
                 if TYPE_IDS in rows[0] else None)
        batch = self.pad(lengths, ids, types)
        for key in ("labels", "row"):
            if key in rows[0]:
                batch[key] = torch.as_tensor(np.asarray([row[key] for row in rows]))
        return batch

    def take(self, tokens: TokenArrays, positions: np.ndarray) -> dict[str, torch.Tensor]:
        """The rows of `tokens` at `positions`, padded (inference: no per-row dicts)."""
        starts = tokens.offsets[positions]
        lengths = tokens.offsets[positions + 1] - starts
        mask = np.arange(lengths.max(initial=0)) < lengths[:, None]
        flat = (starts[:, None] + np.arange(mask.shape[1]))[mask]  # row-major, as `pad` fills
        types = None if tokens.type_ids is None else tokens.type_ids[flat]
        return self.pad(lengths, tokens.ids[flat], types)

    def pad(self, lengths: np.ndarray, ids: np.ndarray,
            types: np.ndarray | None) -> dict[str, torch.Tensor]:
        """Rows given as their lengths and their ids end to end, padded into a batch."""
        width = int(lengths.max(initial=0))
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        columns = np.arange(width)
        mask = (columns >= width - lengths[:, None]) if self.left else (
            columns < lengths[:, None])
        input_ids = np.full(mask.shape, self.pad_id, dtype=np.int64)
        input_ids[mask] = ids  # boolean assignment fills row by row, left to right
        batch = {"input_ids": torch.from_numpy(input_ids)}
        if self.type_ids:
            type_ids = np.full(mask.shape, self.pad_type_id, dtype=np.int64)
            type_ids[mask] = 0 if types is None else types
            batch[TYPE_IDS] = torch.from_numpy(type_ids)
        batch["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
        return batch


def token_budget_batches(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row positions in batches of similar length, longest first, each batch's rows times its
    longest row at most `budget` tokens (at least one row a batch): evaluation pads little
    and fills each forward pass with the same number of tokens."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        size = max(1, budget // max(1, int(lengths[order[start]])))
        batches.append(order[start:start + size])
        start += size
    return batches


def iter_budget_batches(collate: Collator, tokens: TokenArrays, budget: int
                        ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Inference batches by token budget; yields the original row positions with each."""
    for positions in token_budget_batches(tokens.lengths, budget):
        yield positions, collate.take(tokens, positions)
