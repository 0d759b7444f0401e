"""Packed collation and token-budget batches (`data/packing.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from fitclass.data.batching import LengthGroupedBatchSampler
from fitclass.data.packing import (
    PackedCollator,
    TokenBudgetBatchSampler,
    batch_cost,
    bin_width,
    first_fit_bins,
)

#: A fixed length distribution: 512 rows of 8 to 64 tokens (19,049 tokens).
LENGTHS = np.random.default_rng(0).integers(8, 65, 512)


def rows_of(lengths: list[int], pairs: bool = False) -> list[dict[str, Any]]:
    rows = []
    for index, length in enumerate(lengths):
        row: dict[str, Any] = {"input_ids": [100 + index] * length, "labels": index % 3,
                               "row": 10 + index}
        if pairs:
            row["token_type_ids"] = [0] * (length // 2) + [1] * (length - length // 2)
        rows.append(row)
    return rows


def test_bins_restart_positions_and_mark_rows() -> None:
    batch = PackedCollator(pad_id=0, width=32)(rows_of([5, 20, 7, 30, 3], pairs=True))
    ids, positions, owners = batch["input_ids"], batch["position_ids"], batch["sequence_ids"]
    assert ids.shape == (3, 32)  # first fit, longest first: [30], [20, 7, 5], [3]
    starts, lengths = batch["row_starts"].tolist(), batch["row_lengths"].tolist()
    assert lengths == [5, 20, 7, 30, 3]
    for row, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        span = slice(start, start + length)
        assert (ids.flatten()[span] == 100 + row).all()
        assert positions.flatten()[span].tolist() == list(range(length))
        assert (owners.flatten()[span] == row).all()
        half = length // 2
        assert batch["token_type_ids"].flatten()[span].tolist() == [0] * half + [1] * (
            length - half)
    assert int((owners == -1).sum()) == ids.numel() - sum(lengths)
    assert (ids[owners == -1] == 0).all()
    assert batch["labels"].tolist() == [0, 1, 2, 0, 1]  # row order, as the padded collator
    assert batch["row"].tolist() == [10, 11, 12, 13, 14]


def test_varlen_is_one_sequence_with_boundaries() -> None:
    batch = PackedCollator(pad_id=0, width=32, varlen=True)(rows_of([5, 20, 7]))
    assert batch["input_ids"].shape == (1, 32)
    assert batch["cu_seq_lens"].tolist() == [0, 5, 25, 32]
    assert batch["cu_seq_lens"].dtype == torch.int32
    assert batch["max_seq_len"] == 20
    assert batch["row_starts"].tolist() == [0, 5, 25]
    assert (batch["sequence_ids"] >= 0).all()


def test_bins_pad_to_the_multiple() -> None:
    batch = PackedCollator(pad_id=0, width=32, pad_multiple=8)(rows_of([5, 9]))
    assert batch["input_ids"].shape == (1, 16)


def test_first_fit_respects_capacity() -> None:
    bins = first_fit_bins(LENGTHS, 128)
    assert sorted(i for b in bins for i in b) == list(range(len(LENGTHS)))
    assert max(int(LENGTHS[b].sum()) for b in bins) <= 128


def test_bin_width_weighs_bin_tails_against_attention() -> None:
    # rows of one length gain nothing from sharing a wider bin, which costs attention
    width, bins = bin_width(np.full(8, 30), 512, hidden_size=384)
    assert (width, len(bins)) == (30, 8)
    # one long row and short ones: one bin of 116 (116 x (6 x 384 + 116) multiply-adds a
    # layer and dimension) beats two of 60 (2 x 60 x (6 x 384 + 60))
    width, bins = bin_width(np.array([60, 8, 8, 8, 8, 8, 8, 8]), 512, hidden_size=384)
    assert (width, len(bins)) == (116, 1)
    # in a narrow model attention weighs more: two bins of 60
    width, bins = bin_width(np.array([60, 8, 8, 8, 8, 8, 8, 8]), 512, hidden_size=4)
    assert (width, len(bins)) == (60, 2)


@pytest.mark.parametrize(("packed", "grouped"), [(True, True), (True, False),
                                                 (False, True)])
def test_token_budget_epochs(packed: bool, grouped: bool) -> None:
    sampler = TokenBudgetBatchSampler(LENGTHS, 1024, seed=3, packed=packed,
                                      group_by_length=grouped, pad_multiple=8)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)  # the same step count every epoch
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        assert max(batch_cost(LENGTHS[b], packed, 8) for b in batches) <= 1024
        epochs.append(batches)
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]  # (seed, epoch) decides the order
    assert epochs[0] != epochs[1]


def test_a_padded_budget_must_group_by_length() -> None:
    with pytest.raises(ValueError, match="grouped by length"):
        TokenBudgetBatchSampler(LENGTHS, 1024, 0, packed=False, group_by_length=False)


def test_a_budget_below_the_longest_row_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold the longest row \\(64 tokens\\)"):
        TokenBudgetBatchSampler(LENGTHS, 60, 0, packed=True)


def computed_tokens(batches: list[list[int]], collate: Any) -> int:
    """Token slots the model computes on (real and padding) over the batches."""
    return sum(collate(rows_of([int(LENGTHS[i]) for i in b]))["input_ids"].numel()
               for b in batches)


def test_padded_tokens_per_step_for_a_fixed_length_distribution() -> None:
    """One epoch over LENGTHS (19,049 real tokens): tokens computed per step."""
    real = int(LENGTHS.sum())
    assert real == 19049
    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * int(LENGTHS[b].max()) for b in batches)

    order = np.random.default_rng(0).permutation(len(LENGTHS))
    random = [order[i:i + 16].tolist() for i in range(0, len(order), 16)]
    grouped = list(LengthGroupedBatchSampler(list(LENGTHS), 16, seed=0))
    assert (len(random), len(grouped)) == (32, 32)
    # 16 random rows padded to their longest: 66% more than the real tokens
    assert padded(random) == 31664
    # 16 rows of similar length (fitclass's default sampler): 2.2% padding
    assert padded(grouped) == 19472
    # a 1,024-token budget, padded (rows x longest): 4.8% padding, 20 steps
    padded_budget = list(TokenBudgetBatchSampler(LENGTHS, 1024, 0, packed=False))
    assert (padded(padded_budget), len(padded_budget)) == (19966, 20)
    # packed, one varlen sequence per step: the real tokens exactly, 20 steps
    varlen = list(TokenBudgetBatchSampler(LENGTHS, 1024, 0, packed=True,
                                          group_by_length=False))
    assert computed_tokens(varlen, PackedCollator(0, 1024, varlen=True)) == real
    assert len(varlen) == 20
    # packed into bins under a block mask (MiniLM's width 384): 3.2% in bin tails, 19 steps
    bins = list(TokenBudgetBatchSampler(LENGTHS, 1024, 0, packed=True))
    assert computed_tokens(bins, PackedCollator(0, 256, hidden_size=384)) == 19651
    assert len(bins) == 19
    # the default row batches, packed into bins: fewer slots than padding them
    assert computed_tokens(grouped, PackedCollator(0, 256, hidden_size=384)) == 19423
