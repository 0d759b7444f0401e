"""The row-weighted metric formulas are `fitclass.metrics`: at unit weights, and at integer
weights (a bootstrap resample) equal to the metrics of the rows repeated."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitclass.metrics import multiclass_metrics, multilabel_metrics
from fitclass.target_kinds import MULTICLASS, MULTILABEL
from fitclass.uncertainty.bootstrap import metric_intervals
from fitclass.uncertainty.scored import Scored
from fitclass.uncertainty.weighted import (
    MULTICLASS_METRICS,
    MULTILABEL_METRICS,
    row_lrap,
    scores,
    weighted_scores,
)

CLASSES = ["a", "b", "c", "d"]


def multiclass_rows(seed: int = 0, n: int = 120) -> Scored:
    """Four classes, one never a target (absent from the rows), probabilities rounded to
    one decimal so that many are tied."""
    rng = np.random.default_rng(seed)
    targets = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), targets] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = np.round(probs, 1)
    return Scored(targets, probs, probs.argmax(1), MULTICLASS)


def multilabel_rows(seed: int = 0, n: int = 120) -> Scored:
    """Four labels, one never on; some rows without any label; tied probabilities."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 4)) < [0.4, 0.2, 0.1, 0.0]).astype(int)
    probs = np.round(np.clip(targets * 0.5 + rng.random((n, 4)) * 0.6, 0, 1), 1)
    return Scored(targets, probs, (probs > 0.5).astype(int), MULTILABEL)


def reference(scored: Scored) -> dict[str, object]:
    compute = multilabel_metrics if scored.kind.multilabel else multiclass_metrics
    return compute(scored.targets, scored.probs, CLASSES, scored.predictions)


def assert_same(found: dict[str, float], expected: dict[str, object]) -> None:
    for name, value in found.items():
        wanted = expected[name]
        if wanted is None:
            assert math.isnan(value), name
        else:
            assert value == pytest.approx(wanted, abs=1e-9), name


@pytest.mark.parametrize(("make", "names"), [(multiclass_rows, MULTICLASS_METRICS),
                                             (multilabel_rows, MULTILABEL_METRICS)])
def test_unit_weights_give_the_metrics_module(make, names) -> None:
    for seed in range(3):
        scored = make(seed)
        found = scores(scored, names)
        assert set(found) == set(names)
        assert_same(found, reference(scored))


@pytest.mark.parametrize(("make", "names"), [(multiclass_rows, MULTICLASS_METRICS),
                                             (multilabel_rows, MULTILABEL_METRICS)])
def test_integer_weights_are_repeated_rows(make, names) -> None:
    scored = make(1)
    rng = np.random.default_rng(5)
    counts = np.bincount(rng.integers(0, len(scored), len(scored)), minlength=len(scored))
    weights = np.stack([counts, np.ones(len(scored))]).astype(float)
    found = weighted_scores(scored, weights, names)
    repeated = reference(scored.take(np.repeat(np.arange(len(scored)), counts)))
    assert_same({n: v[0] for n, v in found.items()}, repeated)
    assert_same({n: v[1] for n, v in found.items()}, reference(scored))


def test_other_metrics_go_to_the_fallback() -> None:
    scored = multiclass_rows()
    calls = []

    def fallback(rows: Scored) -> dict[str, object]:
        calls.append(len(rows))
        return {"rows_seen": float(len(rows))}

    weights = np.array([[2.0] * 10 + [0.0] * 110, [1.0] * 120])
    found = weighted_scores(scored, weights, ("accuracy", "rows_seen"), fallback)
    assert found["rows_seen"].tolist() == [20.0, 120.0] and calls == [20, 120]
    assert "rows_seen" not in weighted_scores(scored, weights, ("accuracy", "rows_seen"))


def test_row_lrap_by_hand() -> None:
    # labels 0 and 2 relevant; scores rank 2 first, then 1, then 0: label 2 has precision
    # 1/1, label 0 has 2 relevant of 3 ranked at or above it
    targets = np.array([[1, 0, 1], [0, 0, 0]])
    probs = np.array([[0.2, 0.5, 0.9], [0.1, 0.2, 0.3]])
    assert row_lrap(targets, probs) == pytest.approx([(1 + 2 / 3) / 2, 0.0])


def test_a_resample_that_misses_a_rare_class_does_not_score_it_zero() -> None:
    """A perfect model on a long tail: every resample's macro-F1 is 1, also those that
    drew no row of the rare class (scikit-learn's label set without labels=)."""
    targets = np.array([0] * 40 + [1] * 40 + [2])
    probs = np.eye(4)[targets]  # class 3 is never true nor predicted
    scored = Scored(targets, probs, targets, MULTICLASS)
    without_rare = np.array([[1.0] * 80 + [0.0], [1.0] * 81])
    found = weighted_scores(scored, without_rare, ("macro_f1",))["macro_f1"]
    assert found.tolist() == [1.0, 1.0]
    intervals = metric_intervals(scored, {"macro_f1": 1.0}, replicates=200)
    assert intervals["macro_f1"].low == 1.0


def test_a_multilabel_resample_that_misses_a_label_does_not_score_it_zero() -> None:
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    scored = Scored(targets, targets.astype(float), targets, MULTILABEL)
    found = weighted_scores(scored, np.array([[1.0, 1.0, 0.0]]), ("macro_f1",))["macro_f1"]
    assert found.tolist() == [1.0]
