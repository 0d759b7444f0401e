"""The bootstrap interval over rows: it covers the true value at about its level, is seeded,
works for any statistic, and is fast on a 10,000-row validation set."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fitclass.target_kinds import MULTICLASS, MULTILABEL
from fitclass.uncertainty.bootstrap import (
    bootstrap,
    metric_intervals,
    percentile_interval,
    replicate_scores,
)
from fitclass.uncertainty.scored import Scored
from fitclass.uncertainty.weighted import MULTICLASS_METRICS, MULTILABEL_METRICS, scores

SHARES = [0.5, 0.3, 0.2]


def draw(rows: int, rng: np.random.Generator, right: float = 0.8) -> Scored:
    """A validation set from a known distribution: classes by SHARES, each prediction right
    with probability `right`, otherwise another class at random."""
    targets = rng.choice(3, size=rows, p=SHARES)
    wrong = (targets + rng.integers(1, 3, size=rows)) % 3
    predictions = np.where(rng.random(rows) < right, targets, wrong)
    probs = np.full((rows, 3), 0.1)
    probs[np.arange(rows), predictions] = 0.8
    return Scored(targets, probs, predictions, MULTICLASS)


def test_the_interval_covers_the_true_value_at_about_its_level() -> None:
    rng = np.random.default_rng(0)
    names = ("accuracy", "macro_f1")
    truth = scores(draw(1_000_000, rng), names)  # the population value, to 0.1 points
    covered = dict.fromkeys(names, 0)
    repetitions = 300
    for repetition in range(repetitions):
        scored = draw(300, rng)
        found = metric_intervals(scored, scores(scored, names), replicates=400,
                                 seed=repetition)
        for name in names:
            covered[name] += found[name].covers(truth[name])
    for name in names:
        assert 0.90 <= covered[name] / repetitions <= 0.98, (name, covered[name])


def test_intervals_are_seeded_and_sit_around_the_estimate() -> None:
    scored = draw(500, np.random.default_rng(1))
    estimates = scores(scored, MULTICLASS_METRICS)
    first = metric_intervals(scored, estimates, replicates=300, seed=3)
    assert first == metric_intervals(scored, estimates, replicates=300, seed=3)
    assert first != metric_intervals(scored, estimates, replicates=300, seed=4)
    for name, interval in first.items():
        assert interval.estimate == estimates[name]
        assert interval.low < interval.estimate < interval.high, name
        assert interval.method == "bootstrap" and interval.n == 300


def test_any_statistic_and_undefined_metrics() -> None:
    values = np.random.default_rng(2).normal(10.0, 2.0, size=400)
    interval = bootstrap(lambda rows: float(values[rows].mean()), len(values), seed=0)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert interval.estimate == pytest.approx(values.mean())
    assert interval.low == pytest.approx(values.mean() - half, rel=0.01)
    assert interval.high == pytest.approx(values.mean() + half, rel=0.01)
    assert percentile_interval(0.5, np.array([np.nan] * 9 + [0.5])) is None


def test_ten_thousand_rows_and_every_metric_take_seconds() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=10_000)  # no ties: the rankings' worst case
    multiclass = Scored(rng.integers(0, 4, size=10_000), probs, probs.argmax(1), MULTICLASS)
    targets = (rng.random((10_000, 6)) < 0.2).astype(int)
    probs = np.clip(targets * 0.4 + rng.random((10_000, 6)) * 0.6, 0, 1)
    multilabel = Scored(targets, probs, (probs > 0.5).astype(int), MULTILABEL)
    for scored, names in ((multiclass, MULTICLASS_METRICS), (multilabel, MULTILABEL_METRICS)):
        started = time.perf_counter()
        draws = replicate_scores(scored, names, replicates=1000)
        seconds = time.perf_counter() - started
        assert all(len(v) == 1000 and np.isfinite(v).all() for v in draws.values())
        assert seconds < 15, f"{len(names)} metrics x 1000 replicates took {seconds:.1f}s"


def test_ranking_metrics_get_fewer_resamples_past_their_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import fitclass.uncertainty.bootstrap as bootstrap_module

    scored = draw(400, np.random.default_rng(4))  # 400 rows x 3 classes per resample
    monkeypatch.setattr(bootstrap_module, "RANKING_BUDGET", 400 * 3 * 250)
    draws = replicate_scores(scored, ("accuracy", "roc_auc_macro"), replicates=1000)
    assert (len(draws["accuracy"]), len(draws["roc_auc_macro"])) == (1000, 300)  # whole blocks
    monkeypatch.setattr(bootstrap_module, "RANKING_BUDGET", 400 * 3 * 100)
    assert set(replicate_scores(scored, ("accuracy", "roc_auc_macro"))) == {"accuracy"}
