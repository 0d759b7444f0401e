"""Splits: stratified keeps class shares; group never puts a group on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitclass.data.prepare import prepare_data
from fitclass.data.splits import group_split, multilabel_split, split_rows, stratified_split
from fitclass.errors import DataError
from fitclass.recipe import DataConfig, SplitConfig
from fitclass.target_kinds import MULTICLASS, MULTILABEL

TARGETS = np.repeat([0, 1, 2], [60, 40, 20])


def check_partition(train: np.ndarray, valid: np.ndarray, n: int) -> None:
    assert len(set(train) & set(valid)) == 0
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(n))
    assert (np.diff(train) > 0).all() and (np.diff(valid) > 0).all()  # sorted positions


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_stratified_split_keeps_class_shares(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = rng.permutation(TARGETS)
    train, valid = stratified_split(targets, SplitConfig(valid_size=0.25, seed=seed))
    check_partition(train, valid, len(targets))
    assert np.bincount(targets[valid], minlength=3).tolist() == [15, 10, 5]
    assert np.bincount(targets[train], minlength=3).tolist() == [45, 30, 15]


def test_stratified_split_is_seeded() -> None:
    first = stratified_split(TARGETS, SplitConfig(valid_size=0.2, seed=3))
    again = stratified_split(TARGETS, SplitConfig(valid_size=0.2, seed=3))
    other = stratified_split(TARGETS, SplitConfig(valid_size=0.2, seed=4))
    assert np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_stratified_split_with_a_two_row_class() -> None:
    targets = np.array([0] * 20 + [1] * 2)
    train, valid = stratified_split(targets, SplitConfig(valid_size=0.5, seed=0))
    check_partition(train, valid, len(targets))
    assert np.bincount(targets[valid]).tolist() == [10, 1]


def test_stratified_split_refuses_too_few_validation_rows() -> None:
    with pytest.raises(DataError, match=r"data\.split\.valid_size=0\.01 gives 2 validation rows"):
        stratified_split(TARGETS, SplitConfig(valid_size=0.01))


@pytest.mark.parametrize(("valid_size", "seed"), [(0.2, 0), (0.25, 1), (0.5, 7)])
def test_group_split_never_puts_a_group_on_both_sides(valid_size: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 25, size=len(TARGETS)).astype(str)
    config = SplitConfig(method="group", valid_size=valid_size, seed=seed)
    train, valid = group_split(MULTICLASS.strata(TARGETS), groups, config)
    check_partition(train, valid, len(TARGETS))
    assert set(groups[train]).isdisjoint(groups[valid])
    assert abs(len(valid) / len(TARGETS) - valid_size) < 0.15


def test_group_split_refuses_too_few_groups() -> None:
    groups = np.array(["a", "b", "c"] * 40)
    message = r"needs at least 4 distinct groups in data\.group, found 3"
    with pytest.raises(DataError, match=message):
        group_split(MULTICLASS.strata(TARGETS), groups,
                    SplitConfig(method="group", valid_size=0.25))


def test_split_rows_group_needs_groups() -> None:
    with pytest.raises(DataError, match=r"data\.group names no column"):
        split_rows(TARGETS, MULTICLASS, None, SplitConfig(method="group"))


def test_group_split_through_prepare_data(tmp_path: Path, rows_maker, table_writer) -> None:
    rows = rows_maker()
    for i, row in enumerate(rows):
        row["user"] = f"user{i % 17}"
    path = table_writer(rows, tmp_path / "train.csv")
    prepared = prepare_data(DataConfig(train=path, id="id", group="user",
                                       split={"method": "group", "valid_size": 0.2}))
    assert prepared.train.groups is not None and prepared.valid.groups is not None
    assert set(prepared.train.groups).isdisjoint(prepared.valid.groups)
    assert len(prepared.train) + len(prepared.valid) == len(rows)
    # positions point back at the file's rows, so messages can name them
    by_id = {row["id"]: i for i, row in enumerate(rows)}
    assert prepared.valid.positions == [by_id[i] for i in prepared.valid.ids]
    assert "(validation split)" in prepared.valid.source


def test_stratified_split_through_prepare_data(tmp_path: Path, synthetic_rows,
                                               table_writer) -> None:
    path = table_writer(synthetic_rows, tmp_path / "train.csv")
    prepared = prepare_data(DataConfig(train=path, split={"valid_size": 0.25}))
    assert prepared.class_names == ["food", "sports", "tech"]
    assert prepared.report.class_counts == {
        "train": {"sports": 45, "tech": 30, "food": 15},
        "valid": {"sports": 15, "tech": 10, "food": 5},
    }


def test_multilabel_split_keeps_every_label_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(np.float32)
    train, valid = multilabel_split(targets, SplitConfig(valid_size=0.2, seed=0))
    check_partition(train, valid, len(targets))
    shares = targets[valid].sum(0) / targets.sum(0)
    assert ((shares > 0.1) & (shares < 0.3)).all()


def test_split_rows_stratifies_by_the_targets_kind() -> None:
    rng = np.random.default_rng(3)
    config = SplitConfig(valid_size=0.2, seed=0)
    matrix = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(np.float32)
    for got, expected in [(split_rows(matrix, MULTILABEL, None, config),
                           multilabel_split(matrix, config)),
                          (split_rows(TARGETS, MULTICLASS, None, config),
                           stratified_split(TARGETS, config))]:
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_group_split_of_multilabel_rows_stratifies_by_rarest_label() -> None:
    rng = np.random.default_rng(5)
    matrix = (rng.random((240, 3)) < [0.6, 0.3, 0.1]).astype(np.float32)
    groups = rng.integers(0, 30, size=len(matrix)).astype(str)
    config = SplitConfig(method="group", valid_size=0.25, seed=2)
    train, valid = split_rows(matrix, MULTILABEL, groups, config)
    expected = group_split(MULTILABEL.strata(matrix), groups, config)
    np.testing.assert_array_equal(train, expected[0])
    np.testing.assert_array_equal(valid, expected[1])
    assert set(groups[train]).isdisjoint(groups[valid])
