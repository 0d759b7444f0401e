"""Per-class log-probability offsets fitted to a metric (`decide/offsets.py`)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import softmax

from fitclass.decide.offsets import (
    METRICS,
    _coordinate_scores,
    cross_fitted_predictions,
    fit_for_metric,
    fit_offsets,
    fold_count,
    predict_with_offsets,
    score,
)
from fitclass.metrics import multiclass_metrics
from fitclass.recipe import DECISION_METRICS

NAMES = ["a", "b", "c", "d"]


def draw(rng: np.random.Generator, shares: list[float], n: int, signal: float,
         bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Targets drawn with `shares`; logits: `signal` on the true class plus N(0, 1) noise,
    plus a per-class `bias` (the miscalibration offsets should undo)."""
    classes = len(shares)
    targets = rng.choice(classes, size=n, p=shares)
    logits = signal * np.eye(classes)[targets] + rng.normal(size=(n, classes))
    if bias is not None:
        logits = logits + bias
    return softmax(logits, axis=1), targets


def test_the_metrics_are_the_ones_the_recipe_accepts() -> None:
    assert set(METRICS) == set(DECISION_METRICS)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_score_from_counts_matches_the_reported_metrics(metric: str) -> None:
    rng = np.random.default_rng(3)
    targets = rng.choice(3, size=50, p=[0.6, 0.4, 0.0])  # class 2 absent among targets
    predictions = rng.choice(4, size=50)                 # class 3 predicted but never true
    expected = multiclass_metrics(targets, np.eye(4)[predictions], NAMES, predictions)[metric]
    assert score(targets, predictions, metric, 4) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", ["macro_f1", "balanced_accuracy", "weighted_f1"])
def test_the_scan_scores_every_offset_exactly(metric: str) -> None:
    """Each state of the sorted-breakpoint scan equals the metric of the real argmax with
    the offset set inside that state's interval."""
    rng = np.random.default_rng(1)
    probs, targets = draw(rng, [0.5, 0.3, 0.2], 80, 1.0)
    scores = np.log(probs)
    offsets = np.array([0.2, -0.1, -0.1])
    for c in range(3):
        breakpoints, totals = _coordinate_scores(scores, targets, offsets, c, metric)
        for s in (0, 1, 17, 40, 79, 80):
            low = breakpoints[s - 1] if s > 0 else breakpoints[0] - 1.0
            high = breakpoints[s] if s < 80 else breakpoints[-1] + 1.0
            trial = offsets.copy()
            trial[c] = (low + high) / 2
            real = score(targets, (scores + trial).argmax(axis=1), metric, 3)
            assert totals[s] == pytest.approx(real, abs=1e-12)


def test_recovers_planted_biases() -> None:
    """Classes of equal size and equal noise: argmax of the clean logits is the optimum.
    Biases planted in the scores are subtracted back (up to a constant)."""
    rng = np.random.default_rng(0)
    bias = np.array([1.5, -1.0, 0.5, -1.0])
    probs, targets = draw(rng, [0.25] * 4, 4000, 3.0, bias)
    fitted = fit_offsets(probs, targets, "macro_f1")
    planted = -(bias - bias.mean())
    np.testing.assert_allclose(fitted.offsets, planted, atol=0.25)
    assert fitted.offsets.sum() == pytest.approx(0.0, abs=1e-9)
    at_planted = score(targets, predict_with_offsets(probs, planted), "macro_f1", 4)
    assert fitted.score_after >= at_planted - 1e-9
    assert fitted.score_before < at_planted - 0.05  # the biases really hurt


def test_reaches_the_best_offsets_a_brute_force_grid_finds() -> None:
    rng = np.random.default_rng(5)
    probs, targets = draw(rng, [0.6, 0.3, 0.1], 150, 1.2)
    fitted = fit_offsets(probs, targets, "macro_f1")
    grid = np.arange(-3.0, 3.01, 0.1)
    best = max(score(targets, predict_with_offsets(probs, np.array([0.0, b1, b2])),
                     "macro_f1", 3) for b1, b2 in itertools.product(grid, grid))
    assert fitted.score_after >= best - 1e-9
    assert fitted.score_after == pytest.approx(
        score(targets, predict_with_offsets(probs, fitted.offsets), "macro_f1", 3))


def test_keeps_argmax_when_nothing_beats_it() -> None:
    """Perfectly separated rows: every offset near 0 is optimal, and 0 is kept."""
    targets = np.array([0, 1, 2] * 10)
    probs = np.full((30, 3), 0.1)
    probs[np.arange(30), targets] = 0.8
    fitted = fit_offsets(probs, targets, "macro_f1")
    assert fitted.score_before == 1.0
    np.testing.assert_array_equal(fitted.offsets, np.zeros(3))


def test_improves_macro_f1_on_unseen_rows_where_rare_classes_are_under_predicted() -> None:
    rng = np.random.default_rng(2)
    shares = [0.03, 0.07, 0.36, 0.54]  # movie4's class shares
    prior = np.log(shares)  # a model that leans on the class prior
    probs, targets = draw(rng, shares, 6000, 1.5, prior)
    test_probs, test_targets = draw(rng, shares, 20000, 1.5, prior)
    before = score(test_targets, test_probs.argmax(axis=1), "macro_f1", 4)
    fitted = fit_offsets(probs, targets, "macro_f1")
    predicted = predict_with_offsets(test_probs, fitted.offsets)
    after = score(test_targets, predicted, "macro_f1", 4)
    assert after > before + 0.03
    true_counts = np.bincount(test_targets, minlength=4)
    before_counts = np.bincount(test_probs.argmax(axis=1), minlength=4)
    after_counts = np.bincount(predicted, minlength=4)
    assert before_counts[0] < 0.5 * true_counts[0]  # the rare class was under-predicted
    assert after_counts[0] > 2 * before_counts[0]
    assert fitted.offsets[0] > fitted.offsets[3]


def test_cross_fitted_gain_on_pure_noise_is_near_zero() -> None:
    """Probabilities unrelated to the targets: any decision's balanced accuracy is 1/K in
    expectation. In-sample offsets still find a gain; cross-fitted ones must not."""
    in_sample, crossed = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        targets = rng.choice(4, size=400, p=[0.1, 0.2, 0.3, 0.4])
        probs = rng.dirichlet(np.ones(4), size=400)
        before = score(targets, probs.argmax(axis=1), "balanced_accuracy", 4)
        fitted = fit_offsets(probs, targets, "balanced_accuracy")
        held = cross_fitted_predictions(probs, targets, "balanced_accuracy", NAMES, seed=seed)
        assert held.folds == 5 and held.note is None
        in_sample.append(fitted.score_after - before)
        crossed.append(score(targets, held.predictions, "balanced_accuracy", 4) - before)
    assert np.mean(in_sample) > 0.03
    assert abs(np.mean(crossed)) < 0.02
    assert np.mean(crossed) < np.mean(in_sample) - 0.03


def test_cross_fitting_never_scores_a_row_with_offsets_fitted_on_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fitclass.decide import offsets as module

    rng = np.random.default_rng(4)
    probs, targets = draw(rng, [0.5, 0.5], 100, 1.0)
    fitted_on: list[set[int]] = []
    real_fit = module.fit_offsets

    def spy(p: np.ndarray, t: np.ndarray, metric: str = "macro_f1") -> module.OffsetFit:
        fitted_on.append({int(i) for i in np.flatnonzero(np.isin(probs[:, 0], p[:, 0]))})
        return real_fit(p, t, metric)

    monkeypatch.setattr(module, "fit_offsets", spy)
    held = module.cross_fitted_predictions(probs, targets, "macro_f1", ["x", "y"], folds=4)
    assert held.folds == 4 and len(fitted_on) == 4
    held_rows = [set(range(100)) - rows for rows in fitted_on]
    assert all(len(rows) == 25 for rows in held_rows)
    assert set().union(*held_rows) == set(range(100))


def test_few_rows_fall_back_clearly() -> None:
    assert fold_count(np.array([0] * 10 + [1] * 10), 5, ["x", "y"]) == (5, None)
    folds, note = fold_count(np.array([0] * 10 + [1] * 3), 5, ["x", "rare"])
    assert folds == 3 and note is not None
    assert "'rare'" in note and "3 folds instead of 5" in note
    folds, note = fold_count(np.array([0] * 10 + [2] * 1), 5, ["x", "absent", "lone"])
    assert folds == 5 and note is not None  # plain folds: honest, never in-sample
    assert "'lone'" in note and "not in-sample" in note and "data.split.valid_size" in note
    folds, note = fold_count(np.array([0]), 5, ["x"])
    assert folds == 1 and note is not None and "in-sample" in note

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=11)
    fitted = fit_for_metric(probs, np.array([0] * 10 + [2]), "macro_f1", ["x", "absent", "lone"])
    report = fitted.report
    assert report["folds"] == 5
    assert isinstance(report["warnings"], list) and len(report["warnings"]) == 1
    assert str(report["warnings"][0]).startswith("decision.optimize: 1 class(es) have one")


def test_lone_rows_are_scored_by_offsets_fitted_without_them() -> None:
    """A long tail with one validation row for many classes (TREC fine: 50 classes, 436
    rows): the reported score must be the cross-fitted one, below the in-sample score that
    offsets free to memorise those rows reach."""
    rng = np.random.default_rng(3)
    classes = 20
    targets = np.concatenate([np.repeat(np.arange(4), 40), np.arange(4, classes)])
    probs = rng.dirichlet(np.ones(classes), size=len(targets))  # uninformative model
    names = [f"c{i}" for i in range(classes)]
    fitted = fit_for_metric(probs, targets, "macro_f1", names)
    score = fitted.report["score"]
    assert isinstance(score, dict)
    assert fitted.report["folds"] == 5
    assert score["cross_fitted"] < score["in_sample"] - 0.1


def test_report_has_scores_offsets_and_shares() -> None:
    rng = np.random.default_rng(2)
    shares = [0.1, 0.2, 0.7]
    probs, targets = draw(rng, shares, 600, 1.5, np.log(shares))
    fitted = fit_for_metric(probs, targets, "macro_f1", ["x", "y", "z"])
    report = fitted.report
    assert report["metric"] == "macro_f1" and report["folds"] == 5
    assert report["warnings"] == []
    counts = report["shares"]
    assert isinstance(counts, dict)
    assert counts["true"] == {n: int(c) for n, c in zip("xyz", np.bincount(targets),
                                                        strict=True)}
    assert counts["after"] == {n: int(c) for n, c in zip(
        "xyz", np.bincount(fitted.held_out, minlength=3), strict=True)}
    assert counts["after"]["x"] > counts["before"]["x"]
    assert sum(counts["after_in_sample"].values()) == 600
    scores = report["score"]
    assert isinstance(scores, dict)
    assert scores["cross_fitted"] == pytest.approx(
        score(targets, fitted.held_out, "macro_f1", 3))
    assert scores["in_sample"] >= scores["cross_fitted"] - 0.05
    assert scores["in_sample"] > scores["before"]


def test_the_scan_is_exact_when_a_class_is_never_true() -> None:
    """Macro-F1 counts a never-true class only while it is predicted (docs/metrics.md): the
    scan's denominator follows it state by state."""
    rng = np.random.default_rng(4)
    probs, targets = draw(rng, [0.5, 0.3, 0.2, 0.0], 60, 1.0)
    scores = np.log(probs)
    offsets = np.zeros(4)
    for c in range(4):
        breakpoints, totals = _coordinate_scores(scores, targets, offsets, c, "macro_f1")
        for s in (0, 1, 30, 59, 60):
            low = breakpoints[s - 1] if s > 0 else breakpoints[0] - 1.0
            high = breakpoints[s] if s < 60 else breakpoints[-1] + 1.0
            trial = offsets.copy()
            trial[c] = (low + high) / 2
            real = score(targets, (scores + trial).argmax(axis=1), "macro_f1", 4)
            assert totals[s] == pytest.approx(real, abs=1e-12)
