"""The interval across runs: Student's t, and one run has no spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitclass.uncertainty.intervals import Interval, t_interval


def test_t_interval_matches_the_textbook() -> None:
    interval = t_interval([0.80, 0.82, 0.84])
    assert interval.estimate == pytest.approx(0.82)
    assert interval.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2)
    assert (interval.low, interval.high) == pytest.approx((0.82 - half, 0.82 + half))
    assert Interval.from_dict(interval.to_dict()) == interval
    assert interval.text(100, 1) == f"82.0 [{(0.82 - half) * 100:.1f}, {(0.82 + half) * 100:.1f}]"


def test_one_run_has_an_unknown_spread() -> None:
    interval = t_interval([0.7])
    assert (interval.low, interval.high, interval.n) == (0.7, 0.7, 1)
    assert math.isnan(interval.std)
    with pytest.raises(ValueError):
        t_interval([])


def test_the_interval_covers_the_true_mean_at_about_its_level() -> None:
    rng = np.random.default_rng(0)
    covered = sum(t_interval(list(rng.normal(0.8, 0.05, size=5))).covers(0.8)
                  for _ in range(2000))
    assert 0.93 <= covered / 2000 <= 0.97
