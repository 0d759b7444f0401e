"""Samplers over many epochs: class shares, per-batch balance, coverage, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fitclass.errors import RecipeError
from fitclass.target_kinds import MULTICLASS, MULTILABEL
from fitclass.training.samplers import make_sampler

#: 90 / 9 / 1 rows of classes 0 / 1 / 2.
TARGETS = np.array([0] * 90 + [1] * 9 + [2])
LENGTHS = np.random.default_rng(0).integers(3, 40, size=len(TARGETS))


def epochs(sampler: Any, count: int) -> list[list[list[int]]]:
    out = []
    for epoch in range(count):
        sampler.set_epoch(epoch)
        out.append([list(batch) for batch in sampler])
    return out


def test_weighted_gives_roughly_equal_class_shares() -> None:
    sampler = make_sampler("weighted", LENGTHS, TARGETS, 8, seed=1, kind=MULTICLASS)
    drawn = np.array([row for epoch in epochs(sampler, 60) for batch in epoch for row in batch])
    assert len(drawn) == 60 * len(TARGETS)  # as many draws per epoch as rows
    shares = np.bincount(TARGETS[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.04)
    # the single row of class 2 is drawn about a third of the time
    assert (drawn == 99).mean() == pytest.approx(1 / 3, abs=0.04)


@pytest.mark.parametrize("batch_size", [6, 8, 10])
def test_class_aware_balances_every_batch(batch_size: int) -> None:
    sampler = make_sampler("class_aware", LENGTHS, TARGETS, batch_size, seed=3, kind=MULTICLASS)
    assert len(sampler) == -(-len(TARGETS) // batch_size)
    even = batch_size / 3
    for epoch in epochs(sampler, 20):
        assert len(epoch) == len(sampler)
        for batch in epoch:
            assert len(batch) == batch_size
            counts = np.bincount(TARGETS[batch], minlength=3)
            assert np.all(np.abs(counts - even) <= 1), counts
            assert counts.max() - counts.min() <= 1, counts


def test_none_visits_every_row_once_per_epoch() -> None:
    sampler = make_sampler("none", LENGTHS, TARGETS, 7, seed=5, kind=MULTICLASS)
    for epoch in epochs(sampler, 5):
        rows = sorted(row for batch in epoch for row in batch)
        assert rows == list(range(len(TARGETS)))
        assert all(len(batch) <= 7 for batch in epoch)


def test_none_groups_rows_of_similar_length() -> None:
    lengths = np.arange(400) % 97
    sampler = make_sampler("none", lengths, np.zeros(400, dtype=int), 10, seed=0, kind=MULTICLASS)
    sampler.set_epoch(0)
    spread = np.mean([np.ptp(lengths[batch]) for batch in sampler])
    assert spread < 10  # a random batch of 10 would spread over ~80


def test_multilabel_weighted_oversamples_the_rarest_label() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 3), dtype=np.float32)
    targets[:, 0] = 1                 # common label on every row
    targets[rng.choice(200, 40, replace=False), 1] = 1
    rare = np.arange(5)               # five rows carry the rare label
    targets[rare, 2] = 1
    weights = MULTILABEL.row_weights(targets)
    np.testing.assert_allclose(weights[rare], 1 / 5)  # their rarest label's weight
    sampler = make_sampler("weighted", np.full(200, 10), targets, 16, seed=0, kind=MULTILABEL)
    drawn = np.array([row for epoch in epochs(sampler, 20) for batch in epoch for row in batch])
    rare_share = np.isin(drawn, rare).mean()
    assert rare_share > 0.25  # 5/200 = 2.5% of the data, a third or so of the draws
    assert targets[drawn, 2].mean() > 10 * targets[:, 2].mean()


def test_multilabel_class_aware_draws_rows_of_each_label() -> None:
    targets = np.zeros((50, 2), dtype=np.float32)
    targets[:45, 0] = 1
    targets[45:, 1] = 1
    sampler = make_sampler("class_aware", np.full(50, 5), targets, 10, seed=0, kind=MULTILABEL)
    for epoch in epochs(sampler, 3):
        for batch in epoch:
            assert targets[batch, 1].sum() == 5


@pytest.mark.parametrize("name", ["none", "weighted", "class_aware"])
def test_order_depends_only_on_seed_and_epoch(name: str) -> None:
    first = make_sampler(name, LENGTHS, TARGETS, 8, seed=7, kind=MULTICLASS)
    second = make_sampler(name, LENGTHS, TARGETS, 8, seed=7, kind=MULTICLASS)
    a0, a1 = epochs(first, 2)
    b0, b1 = epochs(second, 2)
    assert a0 == b0 and a1 == b1
    assert a0 != a1
    # going back to an epoch replays it
    first.set_epoch(0)
    assert [list(b) for b in first] == a0
    other_seed = make_sampler(name, LENGTHS, TARGETS, 8, seed=8, kind=MULTICLASS)
    assert epochs(other_seed, 1)[0] != a0


def test_unknown_sampler_lists_the_valid_names() -> None:
    with pytest.raises(RecipeError, match=r"imbalance\.sampler") as error:
        make_sampler("oversample", LENGTHS, TARGETS, 8, seed=0, kind=MULTICLASS)
    for name in ("none", "weighted", "class_aware"):
        assert repr(name) in str(error.value)
