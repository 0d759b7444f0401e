"""Class-weight schemes on counts [100, 10, 1], computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitclass.data.class_weights import class_weights, positive_weights
from fitclass.errors import RecipeError

COUNTS = np.array([100.0, 10.0, 1.0])
NAMES = ["big", "mid", "rare"]


def normalised(raw: list[float]) -> list[float]:
    """Scale so the average weight over the training rows is 1."""
    mean_per_row = sum(w * n for w, n in zip(raw, COUNTS, strict=True)) / COUNTS.sum()
    return [w / mean_per_row for w in raw]


def test_none_is_no_weights() -> None:
    assert class_weights("none", COUNTS, NAMES) is None


def test_inverse() -> None:
    got = class_weights("inverse", COUNTS, NAMES)
    # 1/n per class, each class then carries the same total: 111/3 per unit of raw weight
    np.testing.assert_allclose(got, [0.37, 3.7, 37.0])
    np.testing.assert_allclose(got, normalised([1 / 100, 1 / 10, 1.0]))


def test_sqrt_inverse() -> None:
    got = class_weights("sqrt_inverse", COUNTS, NAMES)
    np.testing.assert_allclose(got, normalised([0.1, 1 / math.sqrt(10), 1.0]))
    assert got[2] / got[0] == pytest.approx(10.0)


def test_effective_number() -> None:
    beta = 0.99
    got = class_weights("effective_number", COUNTS, NAMES, beta=beta)
    raw = [(1 - beta) / (1 - beta ** n) for n in (100, 10, 1)]
    np.testing.assert_allclose(got, normalised(raw))
    # effective number lies between no weighting and inverse weighting
    inverse = class_weights("inverse", COUNTS, NAMES)
    assert 1 < got[2] / got[0] < inverse[2] / inverse[0]


@pytest.mark.parametrize("scheme", ["inverse", "sqrt_inverse", "effective_number"])
def test_every_scheme_keeps_the_average_row_weight_at_one(scheme: str) -> None:
    got = class_weights(scheme, COUNTS, NAMES)
    assert float((got * COUNTS).sum() / COUNTS.sum()) == pytest.approx(1.0)
    assert got[0] < got[1] < got[2]


def test_absent_class_gets_weight_zero() -> None:
    got = class_weights("inverse", np.array([10.0, 0.0, 5.0]), NAMES)
    assert got[1] == 0.0
    assert float((got * [10, 0, 5]).sum() / 15) == pytest.approx(1.0)


def test_explicit_list_and_mapping() -> None:
    np.testing.assert_allclose(class_weights([1.0, 2.0, 3.0], COUNTS, NAMES), [1, 2, 3])
    # a mapping gives named classes their weight; the others keep 1
    np.testing.assert_allclose(class_weights({"rare": 5.0}, COUNTS, NAMES), [1, 1, 5])


def test_bad_mapping_key_and_list_length() -> None:
    with pytest.raises(RecipeError, match=r"imbalance\.class_weights") as error:
        class_weights({"rare": 5.0, "nope": 2.0}, COUNTS, NAMES)
    assert "nope" in str(error.value) and "rare" in str(error.value).split("classes are")[1]
    with pytest.raises(RecipeError, match="2 weights given for 3 classes"):
        class_weights([1.0, 2.0], COUNTS, NAMES)
    with pytest.raises(RecipeError, match="unknown scheme"):
        class_weights("squared", COUNTS, NAMES)


def test_positive_weights_negatives_over_positives_with_cap() -> None:
    targets = np.zeros((100, 3))
    targets[:50, 0] = 1   # 50/50 -> 1
    targets[:20, 1] = 1   # 80/20 -> 4
    targets[:1, 2] = 1    # 99/1 -> 99, capped
    np.testing.assert_allclose(positive_weights(targets, cap=10.0), [1.0, 4.0, 10.0])
    np.testing.assert_allclose(positive_weights(targets, cap=3.0), [1.0, 3.0, 3.0])
    # a label without positives does not divide by zero
    np.testing.assert_allclose(positive_weights(np.zeros((4, 1)), cap=10.0), [4.0])
