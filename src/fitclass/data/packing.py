"""Padding-free (packed) batches, and batches sized by tokens instead of rows.

A packed batch lays its rows side by side (transformers' `DataCollatorWithFlattening` idea)
with per-row boundaries, so no step computes on padding. The model keeps attention within
each row (`models/packed.py`) and pools each row over its own tokens (`models/pooling.py`),
so a packed batch gives the same logits as a padded one. Two layouts:

- varlen (flash attention): all rows in one sequence of shape (1, total tokens) plus the
  cumulative row boundaries `cu_seq_lens` and the longest row `max_seq_len`.
- bins (SDPA / eager with a block-diagonal mask): rows first-fit into sequences of at most
  `width` tokens, shape (bins, longest bin). A dense mask makes attention cost grow with the
  bin's width: one sequence of thousands of tokens would be quadratic in the whole batch.
  Given the model's hidden size, the collator picks the bin width (from the longest row,
  doubling while within `width`) whose bins cost the least: per token slot a layer costs
  about 12 d^2 multiply-adds in its projections and feed-forward and 2 W d in attention, so
  short rows of similar length stay one to a bin (as padded) and mixed lengths share wider
  bins.

Either way a batch holds `input_ids`, `position_ids` (restarting at 0 in every row),
`token_type_ids` when the rows have them, `sequence_ids` (the row each token belongs to, -1
for the padding at the end of a bin), `row_starts` (each row's first token in the flattened
batch: its CLS) and `row_lengths`, with `labels` and `row` in row order as the padded
collator gives them.

`TokenBudgetBatchSampler` cuts an epoch into batches by a token budget: summed real tokens
(packed) or rows x longest row, rounded up to the pad multiple (padded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: What padded batches round their length up to on CUDA (tensor cores work in tiles of 8).
CUDA_PAD_MULTIPLE = 8

#: The keys a packed batch holds besides `input_ids` and `token_type_ids`; the model's
#: forward takes them (`models/text.py`), and their presence marks a batch as packed.
PACKED_KEYS = ("position_ids", "sequence_ids", "row_starts", "row_lengths", "cu_seq_lens",
               "max_seq_len")


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def first_fit_bins(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Rows (by position) into bins of at most `capacity` tokens, longest row first, each
    into the first bin it fits (first-fit decreasing: within 22% of the fewest bins)."""
    free = np.empty(0, dtype=np.int64)
    bins: list[list[int]] = []
    for index in np.argsort(-lengths, kind="stable").tolist():
        fits = np.flatnonzero(free >= lengths[index])
        if len(fits):
            bins[fits[0]].append(index)
            free[fits[0]] -= lengths[index]
        else:
            bins.append([index])
            free = np.append(free, capacity - lengths[index])
    return bins


def bin_width(lengths: np.ndarray, width: int, hidden_size: int,
              pad_multiple: int = 1) -> tuple[int, list[list[int]]]:
    """The bin width (the longest row, doubling while within `width`) and bins that cost
    the fewest multiply-adds, counted as bins x W x (6 d + W): each of W token slots pays
    12 d^2 in projections and feed-forward and 2 W d in attention (halved)."""
    candidates = [int(lengths.max())]
    while candidates[-1] * 2 <= width:
        candidates.append(candidates[-1] * 2)
    options = []
    for candidate in candidates:
        bins = first_fit_bins(lengths, candidate)
        slots = round_up(max(int(lengths[b].sum()) for b in bins), pad_multiple)
        options.append((len(bins) * slots * (6 * hidden_size + slots), slots, bins))
    _, slots, bins = min(options, key=lambda option: option[0])
    return slots, bins


@dataclass
class PackedCollator:
    """Packs tokenized rows (each a dict with an `input_ids` sequence of ints, optionally
    `token_type_ids`, `labels` and `row`) into one padding-free batch.

    `varlen`: one sequence with `cu_seq_lens` (flash attention); otherwise bins of at most
    `width` tokens (a row longer than `width` gets a bin of its own length), each padded to
    the fullest bin rounded up to `pad_multiple`; with `hidden_size`, bins of the cheapest
    width up to `width` (`bin_width`).
    """

    pad_id: int
    width: int
    varlen: bool = False
    pad_multiple: int = 1
    hidden_size: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [np.asarray(row["input_ids"], dtype=np.int64) for row in rows]
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        if self.varlen:
            bins = [list(range(len(rows)))]
        elif self.hidden_size is None:
            bins = first_fit_bins(lengths, max(self.width, int(lengths.max())))
        else:
            bins = bin_width(lengths, self.width, self.hidden_size, self.pad_multiple)[1]
        fills = [int(lengths[members].sum()) for members in bins]
        width = max(fills) if self.varlen else round_up(max(fills), self.pad_multiple)
        starts = self._row_starts(bins, lengths, width)
        # every token's place in the flattened (bins x width) batch, in row order
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        within = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        where = np.repeat(starts, lengths) + within
        size = len(bins) * width
        batch: dict[str, Any] = {
            "input_ids": _scatter(np.concatenate(ids), where, size, self.pad_id, width),
            "position_ids": _scatter(within, where, size, 0, width),
            "sequence_ids": _scatter(np.repeat(np.arange(len(rows)), lengths), where, size,
                                     -1, width),
            "row_starts": torch.from_numpy(starts),
            "row_lengths": torch.from_numpy(lengths),
        }
        if "token_type_ids" in rows[0]:
            types = np.concatenate([np.asarray(row["token_type_ids"], dtype=np.int64)
                                    for row in rows])
            batch["token_type_ids"] = _scatter(types, where, size, 0, width)
        if self.varlen:
            bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            batch["cu_seq_lens"] = torch.from_numpy(bounds)
            batch["max_seq_len"] = int(lengths.max())  # an int: flash takes it as one
        for key in ("labels", "row"):
            if key in rows[0]:  # labels: int64 ids or float32 rows; row: table position
                batch[key] = torch.as_tensor(np.asarray([row[key] for row in rows]))
        return batch

    @staticmethod
    def _row_starts(bins: list[list[int]], lengths: np.ndarray, width: int) -> np.ndarray:
        """The flat position of each row's first token, rows laid out bin by bin."""
        starts = np.zeros(len(lengths), dtype=np.int64)
        for number, members in enumerate(bins):
            offset = number * width
            for index in members:
                starts[index] = offset
                offset += int(lengths[index])
        return starts


def _scatter(values: np.ndarray, where: np.ndarray, size: int, fill: int,
             width: int) -> torch.Tensor:
    out = np.full(size, fill, dtype=np.int64)
    out[where] = values
    return torch.from_numpy(out.reshape(-1, width))


def batch_cost(lengths: np.ndarray, packed: bool, pad_multiple: int = 1) -> int:
    """Tokens a batch of rows with these lengths costs: the real tokens (packed), or rows x
    the longest row rounded up to `pad_multiple` (padded)."""
    if packed:
        return int(lengths.sum())
    return len(lengths) * round_up(int(lengths.max()), pad_multiple)


class TokenBudgetBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of at most `budget` tokens; the order depends only on (seed, epoch).

    Cost: summed real tokens (`packed`), or rows x longest row rounded up to `pad_multiple`.
    Order: `group_by_length` sorts rows by length (ties in random order) before cutting, as
    padded batches and bins need (a bin of similar rows wastes little); one varlen sequence
    wastes nothing whatever its rows, so its rows come in random order. Batches are cut
    greedily and yielded in random order.

    Every epoch has the same number of batches (the schedule, stages and evaluation
    intervals count steps): sorted epochs share one length profile, so the cut is the same;
    a random epoch that comes out short splits its largest batches up to a bound no epoch
    exceeds (every batch but the last is within one row of the budget). Under DDP the budget
    is per process; accelerate hands whole batches to processes, and with no fixed row count
    there is no short batch to keep last.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, budget: int, seed: int,
                 packed: bool, group_by_length: bool = True, pad_multiple: int = 1) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.budget, self.seed, self.packed = budget, seed, packed
        self.group_by_length, self.pad_multiple = group_by_length, pad_multiple
        self.epoch = 0
        if not (packed or group_by_length):
            raise ValueError("padded token-budget batches are grouped by length (random rows "
                             "padded to the longest would waste most of the budget)")
        longest = batch_cost(self.lengths.max(keepdims=True), packed, pad_multiple)
        if longest > budget:
            raise ValueError(f"a batch budget of {budget} tokens cannot hold the longest row "
                             f"({longest} tokens)")
        self.num_batches = self._batch_count()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._fill(self._cut(self._order(rng)))
        for index in rng.permutation(len(batches)).tolist():
            yield batches[index].tolist()

    def _batch_count(self) -> int:
        if self.group_by_length:  # the same length profile every epoch: epoch 0's count
            return len(self._cut(self._order(np.random.default_rng([self.seed, 0]))))
        spare = self.budget - int(self.lengths.max()) + 1
        bound = (int(self.lengths.sum()) - 1) // spare + 1
        return min(bound, len(self.lengths))

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        if self.group_by_length:  # longest first: a padded batch's first row is its longest
            return np.lexsort((rng.random(len(self.lengths)), -self.lengths))
        return rng.permutation(len(self.lengths))

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        """Consecutive rows of `order` while the batch stays within the budget."""
        batches: list[np.ndarray] = []
        start, spent, longest = 0, 0, 0
        for position, index in enumerate(order.tolist()):
            length = int(self.lengths[index])
            if self.packed:
                cost = spent + length
            else:
                cost = (position - start + 1) * round_up(max(longest, length),
                                                         self.pad_multiple)
            if position > start and cost > self.budget:
                batches.append(order[start:position])
                start, spent, longest = position, 0, 0
            spent += length
            longest = max(longest, length)
        batches.append(order[start:])
        return batches

    def _fill(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Split the costliest batches in two until the epoch has `num_batches`."""
        if len(batches) > self.num_batches:
            raise RuntimeError(f"token budget sampler: an epoch cut into {len(batches)} "
                               f"batches, more than the {self.num_batches} it promised")
        while len(batches) < self.num_batches:
            costs = [batch_cost(self.lengths[b], self.packed, self.pad_multiple)
                     if len(b) > 1 else -1 for b in batches]
            largest = batches.pop(int(np.argmax(costs)))
            half = len(largest) // 2
            batches += [largest[:half], largest[half:]]
        return batches
