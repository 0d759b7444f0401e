"""The percentile bootstrap over validation rows: how far a metric would move had other rows
of the same kind been drawn.

Replicates are drawn as per-row counts (a multinomial resample of the rows), seeded, in
blocks, so the same `seed` gives the same resamples for two prediction sets on the same rows
(the paired bootstrap) and memory stays bounded (`BLOCK` replicates x rows at a time). The
headline metrics come from `weighted.py` (sums and rankings, no per-replicate
scikit-learn call); any other statistic goes through `bootstrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from fitclass.uncertainty.intervals import LEVEL, Interval
from fitclass.uncertainty.scored import Scored
from fitclass.uncertainty.weighted import RANKING, Fallback, weighted_scores

REPLICATES = 1000
#: Replicates computed together: BLOCK x rows weights in memory at once.
BLOCK = 100
#: Rows x classes x resamples of the ranking metrics (PR-AUC, ROC-AUC) computed at most
#: (a few seconds); beyond it they get fewer resamples, none under MIN_RANKING.
RANKING_BUDGET = 60_000_000
MIN_RANKING = 200


def resample_counts(rows: int, replicates: int = REPLICATES, seed: int = 0
                    ) -> Iterator[np.ndarray]:
    """Blocks of (replicates, rows) counts: how often each row was drawn in each resample."""
    rng = np.random.default_rng(seed)
    for start in range(0, replicates, BLOCK):
        size = min(BLOCK, replicates - start)
        drawn = rng.integers(0, rows, size=(size, rows))
        flat = (drawn + np.arange(size)[:, None] * rows).ravel()
        yield np.bincount(flat, minlength=size * rows).reshape(size, rows).astype(float)


def replicate_scores(scored: Scored, names: tuple[str, ...], *, replicates: int = REPLICATES,
                     seed: int = 0, fallback: Fallback | None = None
                     ) -> dict[str, np.ndarray]:
    """Each metric of `names` on each resample of `scored`'s rows: (replicates,) arrays.
    Ranking metrics cost rows x classes per resample: past `RANKING_BUDGET` they get fewer
    resamples (the first ones), and none when fewer than `MIN_RANKING` fit (they are then
    left out), so many classes cost seconds, not minutes."""
    ranking = tuple(n for n in names if n in RANKING)
    affordable = RANKING_BUDGET // max(1, len(scored) * scored.columns)
    ranked = min(replicates, affordable) if affordable >= MIN_RANKING else 0
    found: dict[str, list[np.ndarray]] = {}
    for start, counts in zip(range(0, replicates, BLOCK),
                             resample_counts(len(scored), replicates, seed), strict=True):
        wanted = names if start < ranked else tuple(n for n in names if n not in ranking)
        for name, values in weighted_scores(scored, counts, wanted, fallback).items():
            found.setdefault(name, []).append(values)
    return {name: np.concatenate(found[name]) for name in names if name in found}


def percentile_interval(estimate: float, replicates: np.ndarray,
                        level: float = LEVEL) -> Interval | None:
    """The percentile interval of bootstrap `replicates` around `estimate`; None when fewer
    than half the replicates define the metric (e.g. a class present in too few resamples)."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < max(2, len(replicates) // 2):
        return None
    low, high = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(estimate), float(low), float(high), float(finite.std(ddof=1)),
                    len(finite), "bootstrap", level)


def metric_intervals(scored: Scored, estimates: dict[str, float], *,
                     replicates: int = REPLICATES, seed: int = 0, level: float = LEVEL,
                     fallback: Fallback | None = None) -> dict[str, Interval]:
    """A bootstrap interval around each of `estimates` (metric name -> the value reported on
    all rows): the metrics `weighted.py` computes, the others through `fallback` (left out
    without one)."""
    if len(scored) < 2:
        return {}
    draws = replicate_scores(scored, tuple(estimates), replicates=replicates, seed=seed,
                             fallback=fallback)
    intervals = {name: percentile_interval(estimates[name], values, level)
                 for name, values in draws.items()}
    return {name: interval for name, interval in intervals.items() if interval is not None}


def bootstrap(statistic: Callable[[np.ndarray], float], rows: int, *,
              replicates: int = REPLICATES, seed: int = 0, level: float = LEVEL) -> Interval:
    """The percentile interval of any `statistic` of row indices (called with all rows for
    the estimate, then once per resample, indices repeated as drawn)."""
    everything = np.arange(rows)
    values = [statistic(np.repeat(everything, counts.astype(int)))
              for block in resample_counts(rows, replicates, seed) for counts in block]
    interval = percentile_interval(statistic(everything), np.asarray(values, dtype=float),
                                   level)
    if interval is None:
        raise ValueError("bootstrap: the statistic is undefined on most resamples")
    return interval
