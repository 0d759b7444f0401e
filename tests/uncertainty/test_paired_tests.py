"""Paired comparisons: McNemar by hand, no difference found between equals more often than
not, a planted difference found, the verdict's wording, and runs compared across seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fitclass.target_kinds import MULTICLASS
from fitclass.uncertainty.intervals import Interval
from fitclass.uncertainty.paired import (
    Difference,
    compare_rows,
    compare_runs,
    mcnemar,
    permutation_p_values,
    versus_best,
)
from fitclass.uncertainty.scored import Scored


def predictions(targets: np.ndarray, right: float, rng: np.random.Generator) -> Scored:
    """A model right with probability `right` on each row (else another of 3 classes)."""
    rows = len(targets)
    wrong = (targets + rng.integers(1, 3, size=rows)) % 3
    predicted = np.where(rng.random(rows) < right, targets, wrong)
    probs = np.full((rows, 3), 0.15)
    probs[np.arange(rows), predicted] = 0.7
    probs += rng.random((rows, 3)) * 0.05
    return Scored(targets, probs / probs.sum(1, keepdims=True), predicted, MULTICLASS)


def test_mcnemar_matches_the_hand_computation() -> None:
    # A alone right on 1 row, B alone right on 5, both right on 10, both wrong on 4
    correct_a = np.array([1] * 1 + [0] * 5 + [1] * 10 + [0] * 4, dtype=bool)
    correct_b = np.array([0] * 1 + [1] * 5 + [1] * 10 + [0] * 4, dtype=bool)
    found = mcnemar(correct_a, correct_b)
    assert (found.only_a, found.only_b) == (1, 5)
    # exact: 2 P(X <= 1), X ~ Bin(6, 1/2) = 2 (1 + 6) / 64; mid-p: 2 (P(X=0) + P(X=1) / 2)
    assert found.p_exact == pytest.approx(14 / 64)
    assert found.p_mid == pytest.approx(8 / 64)
    tied = mcnemar(correct_a, correct_a)
    assert (tied.p_exact, tied.p_mid) == (1.0, 1.0)


def test_equal_models_differ_by_noise_more_often_than_not() -> None:
    rng = np.random.default_rng(0)
    detected = 0
    trials = 40
    for trial in range(trials):
        targets = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
        a, b = predictions(targets, 0.8, rng), predictions(targets, 0.8, rng)
        found = compare_rows(a, b, ("accuracy", "macro_f1"), replicates=200,
                             permutations=200, seed=trial)
        detected += any(d.detected for d in found.values())
        assert all(d.verdict().startswith("no detectable difference") for d in found.values()
                   if not d.detected)
    assert detected / trials < 0.2  # each test errs 5% of the time; two per trial


def test_a_planted_difference_is_detected() -> None:
    rng = np.random.default_rng(1)
    targets = rng.choice(3, size=400, p=[0.5, 0.3, 0.2])
    better, worse = predictions(targets, 0.9, rng), predictions(targets, 0.75, rng)
    found = compare_rows(better, worse, ("accuracy", "macro_f1", "log_loss"),
                         lower_is_better={"log_loss"}, replicates=300, permutations=300)
    assert found["accuracy"].test == "McNemar mid-p"
    assert found["macro_f1"].test == "paired permutation"
    for name in ("accuracy", "macro_f1"):
        assert found[name].detected
        assert found[name].verdict("big", "small").startswith(f"big beats small on {name} by")
    reverse = compare_rows(worse, better, ("accuracy",), replicates=300)["accuracy"]
    assert reverse.verdict("small", "big").startswith("big beats small on accuracy by")
    assert reverse.interval.high < 0


def test_verdict_wording() -> None:
    win = Difference("macro_f1", 0.800, 0.782, Interval(0.018, 0.006, 0.030, 0.006, 1000,
                                                         "bootstrap"), 0.003, "paired")
    assert win.verdict() == "A beats B on macro_f1 by 1.8 points [0.6, 3.0] (p=0.003)"
    tie = Difference("macro_f1", 0.800, 0.798, Interval(0.002, -0.009, 0.013, 0.006, 1000,
                                                        "bootstrap"), 0.71, "paired")
    assert tie.verdict() == ("no detectable difference on macro_f1: A - B = 0.2 points "
                             "[-0.9, 1.3] (p=0.71)")
    # log-loss: lower wins, shown as it is (not in points)
    loss = Difference("log_loss", 0.40, 0.45, Interval(-0.05, -0.08, -0.02, 0.01, 1000,
                                                       "bootstrap"), 0.0004, "paired",
                      lower_is_better=True)
    assert loss.verdict("x", "y") == "x beats y on log_loss by 0.0500 [0.0200, 0.0800] (p<0.001)"
    # the test and the interval disagree: borderline, no verdict of a difference
    borderline = Difference("accuracy", 0.8, 0.78, Interval(0.02, -0.001, 0.04, 0.01, 1000,
                                                            "bootstrap"), 0.04, "McNemar")
    assert not borderline.detected
    assert win.to_dict()["detected"] is True and win.to_dict()["verdict"] == win.verdict()


def test_identical_predictions_are_no_difference() -> None:
    rng = np.random.default_rng(2)
    a = predictions(rng.integers(0, 3, size=100), 0.7, rng)
    assert permutation_p_values(a, a, ("macro_f1", "log_loss"), permutations=50) == {
        "macro_f1": 1.0, "log_loss": 1.0}
    with pytest.raises(ValueError, match="different rows"):
        compare_rows(a, predictions(rng.integers(0, 3, size=100), 0.7, rng), ("accuracy",))


def test_runs_across_seeds_paired_when_matched_welch_otherwise() -> None:
    a = {1: 0.80, 2: 0.82, 3: 0.79, 4: 0.83}
    b = {1: 0.78, 2: 0.81, 3: 0.76, 4: 0.80}
    paired = compare_runs(a, b, "macro_f1")
    assert paired.test == "paired t over seeds" and paired.interval.n == 4
    assert paired.p_value == pytest.approx(stats.ttest_rel(list(a.values()),
                                                           list(b.values())).pvalue)
    assert paired.interval.estimate == pytest.approx(0.0225)
    unmatched = compare_runs(a, {7: 0.78, 8: 0.81, 9: 0.76}, "macro_f1")
    assert unmatched.test.startswith("Welch")
    assert unmatched.p_value == pytest.approx(stats.ttest_ind(
        list(a.values()), [0.78, 0.81, 0.76], equal_var=False).pvalue)
    with pytest.raises(ValueError, match="at least 2"):
        compare_runs({1: 0.8}, {1: 0.7}, "macro_f1")


def test_versus_best_marks_the_table() -> None:
    rng = np.random.default_rng(3)
    targets = rng.choice(3, size=400, p=[0.5, 0.3, 0.2])
    best = predictions(targets, 0.9, rng)
    close = Scored(targets, best.probs, best.predictions.copy(), MULTICLASS)
    close.predictions[:2] = (targets[:2] + 1) % 3  # two rows worse: noise
    marks = versus_best([predictions(targets, 0.7, rng), best, close], "accuracy")
    assert [m.best for m in marks] == [False, True, False]
    assert [m.within_noise for m in marks] == [False, True, True]
    assert marks[0].p_value is not None and marks[0].p_value < 0.05
