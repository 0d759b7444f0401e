"""Is A better than B? Paired comparisons of two prediction sets on the same rows, and of
two sets of runs (seeds, folds).

On rows: the difference A - B of each metric with a paired bootstrap interval (the same
resamples for both, so what the rows share cancels) and a paired test: McNemar's for
accuracy (multi-label: subset accuracy), mid-p (Fagerland, Lydersen & Laake 2013: the exact
test's size without its conservatism); a paired permutation test for every other metric
(each row's two predictions swapped with probability 1/2, `PERMUTATIONS` times).

Across runs: matched by key (the seed) both sides, a paired t interval and test on the
per-key differences (runs of the same seed share a split and data order); otherwise Welch's
t, which assumes neither pairing nor equal spreads.

A difference is *detected* when the test rejects at `ALPHA` and the interval excludes zero;
when the two disagree (a borderline case) the verdict says no detectable difference.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from fitclass.uncertainty.bootstrap import REPLICATES, percentile_interval, replicate_scores
from fitclass.uncertainty.intervals import LEVEL, Interval, t_interval
from fitclass.uncertainty.scored import Scored, stacked
from fitclass.uncertainty.weighted import Fallback, scores, weighted_scores

ALPHA = 0.05
PERMUTATIONS = 1000
#: Metrics not on a 0-1 scale: shown as they are, not in points.
UNSCALED = frozenset({"log_loss", "loss"})


@dataclass(frozen=True)
class Difference:
    """A - B on `metric`: both values, the interval of the difference (`interval.estimate`
    is A - B), the p-value of the `test` of no difference."""

    metric: str
    a: float
    b: float
    interval: Interval
    p_value: float
    test: str
    lower_is_better: bool = False

    @property
    def detected(self) -> bool:
        return self.p_value < ALPHA and not self.interval.covers(0.0)

    def verdict(self, name_a: str = "A", name_b: str = "B") -> str:
        """"A beats B on macro_f1 by 1.8 points [0.6, 3.0] (p=0.003)" or "no detectable
        difference on macro_f1: A - B = 0.2 points [-0.9, 1.3] (p=0.71)"."""
        show, unit = _shown(self.metric)
        estimate, low, high = self.interval.estimate, self.interval.low, self.interval.high
        if not self.detected:
            return (f"no detectable difference on {self.metric}: {name_a} - {name_b} = "
                    f"{show(estimate)}{unit} [{show(low)}, {show(high)}] "
                    f"({p_text(self.p_value)})")
        # orient the interval as the winner's gain (for losses, lower wins)
        sign = -1.0 if self.lower_is_better else 1.0
        if sign * estimate < 0:
            name_a, name_b, sign = name_b, name_a, -sign
        gain_low, gain_high = sorted((sign * low, sign * high))
        return (f"{name_a} beats {name_b} on {self.metric} by {show(sign * estimate)}{unit} "
                f"[{show(gain_low)}, {show(gain_high)}] ({p_text(self.p_value)})")

    def to_dict(self, name_a: str = "A", name_b: str = "B") -> dict[str, Any]:
        return {"metric": self.metric, "a": self.a, "b": self.b,
                "difference": self.interval.to_dict(), "p_value": self.p_value,
                "test": self.test, "detected": self.detected,
                "lower_is_better": self.lower_is_better,
                "verdict": self.verdict(name_a, name_b)}


def _shown(metric: str) -> tuple[Any, str]:
    """How a difference of `metric` is written, and its unit: points (x100) for metrics on
    a 0-1 scale, the value itself otherwise."""
    if metric in UNSCALED:
        return (lambda value: f"{value:.4f}"), ""
    return (lambda value: f"{100 * value:.1f}"), " points"


def p_text(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


@dataclass(frozen=True)
class McNemar:
    """Rows only A gets right, rows only B gets right, and the two-sided p-values of
    McNemar's exact test and its mid-p version."""

    only_a: int
    only_b: int
    p_exact: float
    p_mid: float


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's test on per-row correctness: under no difference, each discordant row is
    A's with probability 1/2."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    discordant = only_a + only_b
    if discordant == 0:
        return McNemar(only_a, only_b, 1.0, 1.0)
    fewer = min(only_a, only_b)
    exact = float(stats.binomtest(fewer, discordant, 0.5).pvalue)
    tail = stats.binom.cdf(fewer, discordant, 0.5) - 0.5 * stats.binom.pmf(fewer, discordant,
                                                                          0.5)
    return McNemar(only_a, only_b, exact, float(min(1.0, 2 * tail)))


def permutation_p_values(a: Scored, b: Scored, names: Sequence[str], *,
                         permutations: int = PERMUTATIONS, seed: int = 0,
                         fallback: Fallback | None = None) -> dict[str, float]:
    """Two-sided paired permutation p-values of A - B: each row's A and B predictions are
    swapped at random; p = (1 + permutations at least as extreme) / (1 + permutations)."""
    names = tuple(names)
    if not names:
        return {}
    both, rows = stacked(a, b), len(a)
    ones, zeros = np.ones((1, rows)), np.zeros((1, rows))
    observed = {n: float(v[0]) for n, v in _difference(
        both, np.hstack([ones, zeros]), np.hstack([zeros, ones]), names, fallback).items()}
    rng = np.random.default_rng(seed)
    extreme = dict.fromkeys(names, 0)
    done = 0
    while done < permutations:
        size = min(100, permutations - done)
        swap = rng.integers(0, 2, size=(size, rows)).astype(float)
        diffs = _difference(both, np.hstack([1 - swap, swap]), np.hstack([swap, 1 - swap]),
                            names, fallback)
        for name, values in diffs.items():
            extreme[name] += int(np.sum(np.abs(values) >= abs(observed[name]) - 1e-12))
        done += size
    return {n: (1 + extreme[n]) / (1 + permutations) for n in observed
            if np.isfinite(observed[n])}


def _difference(both: Scored, first: np.ndarray, second: np.ndarray, names: tuple[str, ...],
                fallback: Fallback | None) -> dict[str, np.ndarray]:
    scores_first = weighted_scores(both, first, names, fallback)
    scores_second = weighted_scores(both, second, names, fallback)
    return {n: scores_first[n] - scores_second[n] for n in scores_first}


def compare_rows(a: Scored, b: Scored, names: Sequence[str], *,
                 lower_is_better: Collection[str] = (), replicates: int = REPLICATES,
                 permutations: int = PERMUTATIONS, seed: int = 0, level: float = LEVEL,
                 fallback: Fallback | None = None) -> dict[str, Difference]:
    """A - B on each metric of `names` over the same rows (metrics undefined on these rows
    are left out)."""
    if not a.same_rows(b):
        raise ValueError("compare_rows: A and B score different rows or targets")
    names = tuple(names)
    est_a, est_b = scores(a, names, fallback), scores(b, names, fallback)
    draws_a = replicate_scores(a, names, replicates=replicates, seed=seed, fallback=fallback)
    draws_b = replicate_scores(b, names, replicates=replicates, seed=seed, fallback=fallback)
    exact = "subset_accuracy" if a.kind.multilabel else "accuracy"
    p_values = permutation_p_values(a, b, [n for n in names if n != exact],
                                    permutations=permutations, seed=seed, fallback=fallback)
    tests = dict.fromkeys(p_values, "paired permutation")
    if exact in names:
        p_values[exact] = mcnemar(a.correct(), b.correct()).p_mid
        tests[exact] = "McNemar mid-p"
    out = {}
    for name in names:
        if name not in draws_a or not math.isfinite(est_a.get(name, math.nan) - est_b.get(
                name, math.nan)) or name not in p_values:
            continue
        interval = percentile_interval(est_a[name] - est_b[name],
                                       draws_a[name] - draws_b[name], level)
        if interval is not None:
            out[name] = Difference(name, est_a[name], est_b[name], interval, p_values[name],
                                   tests[name], name in lower_is_better)
    return out


def compare_runs(scores_a: dict[Any, float], scores_b: dict[Any, float], metric: str, *,
                 lower_is_better: bool = False, level: float = LEVEL) -> Difference:
    """A - B of the mean score of two sets of runs, each keyed (by seed): a paired t
    interval and test when both hold the same keys, Welch's otherwise. Needs 2 runs a side.
    A Welch interval's `std` is that of one A run minus one B run."""
    if len(scores_a) < 2 or len(scores_b) < 2:
        raise ValueError("compare_runs: needs at least 2 runs on each side")
    mean_a = math.fsum(scores_a.values()) / len(scores_a)
    mean_b = math.fsum(scores_b.values()) / len(scores_b)
    if set(scores_a) == set(scores_b):
        interval = t_interval([scores_a[k] - scores_b[k] for k in sorted(scores_a, key=str)],
                              level)
        p_value = _t_p_value(interval.estimate, interval.std / math.sqrt(interval.n),
                             interval.n - 1)
        interval = Interval(interval.estimate, interval.low, interval.high, interval.std,
                            interval.n, "paired t", level)
        return Difference(metric, mean_a, mean_b, interval, p_value, "paired t over seeds",
                          lower_is_better)
    var_a = float(np.var(list(scores_a.values()), ddof=1))
    var_b = float(np.var(list(scores_b.values()), ddof=1))
    share_a, share_b = var_a / len(scores_a), var_b / len(scores_b)
    error = math.sqrt(share_a + share_b)
    freedom = ((share_a + share_b) ** 2
               / (share_a ** 2 / (len(scores_a) - 1) + share_b ** 2 / (len(scores_b) - 1))
               if error > 0 else 1.0)
    estimate = mean_a - mean_b
    half = float(stats.t.ppf(0.5 + level / 2, freedom)) * error
    interval = Interval(estimate, estimate - half, estimate + half,
                        math.sqrt(var_a + var_b), len(scores_a) + len(scores_b), "welch t",
                        level)
    return Difference(metric, mean_a, mean_b, interval, _t_p_value(estimate, error, freedom),
                      "Welch t (runs not matched by seed)", lower_is_better)


def _t_p_value(estimate: float, error: float, freedom: float) -> float:
    """Two-sided p of estimate / error under Student's t; no spread at all is certain."""
    if error == 0 or not math.isfinite(error):
        return 1.0 if estimate == 0 else 0.0
    return float(2 * stats.t.sf(abs(estimate) / error, freedom))


@dataclass(frozen=True)
class Mark:
    """An entry of a table against the table's best on one metric: its p-value (None for
    the best itself) and whether its difference from the best is within noise."""

    best: bool
    within_noise: bool
    p_value: float | None = None


def versus_best(entries: Sequence[Scored], metric: str, *, lower_is_better: bool = False,
                seed: int = 0) -> list[Mark]:
    """Each entry (all on the same rows) against the best one on `metric`."""
    values = [scores(e, (metric,))[metric] for e in entries]
    worst = math.inf if lower_is_better else -math.inf
    finite = [v if math.isfinite(v) else worst for v in values]
    best = int(np.argmin(finite) if lower_is_better else np.argmax(finite))
    return [Mark(True, True) if i == best else
            against_best(entry, entries[best], metric, lower_is_better=lower_is_better,
                         seed=seed)
            for i, entry in enumerate(entries)]


def against_best(entry: Scored, best: Scored, metric: str, *, lower_is_better: bool = False,
                 seed: int = 0) -> Mark:
    """`entry` against the best entry on the same rows, by `compare_rows`'s paired test (a
    500-replicate interval: enough to tell a clear difference, cheap over a long table)."""
    found = compare_rows(entry, best, (metric,), replicates=500, seed=seed,
                         lower_is_better=(metric,) if lower_is_better else ())
    difference = found.get(metric)
    if difference is None:  # undefined on these rows: nothing tells them apart
        return Mark(False, True)
    return Mark(False, not difference.detected, difference.p_value)


def mark_text(row: dict[str, Any]) -> str:
    """A table row's mark (`within_noise`, `p_vs_best`) as text: `best`, `within noise
    (p=0.41)` or `worse (p=0.003)`; blank for a row without marks (older tables)."""
    if row.get("within_noise") is None:
        return ""
    p = row.get("p_vs_best")
    if p is None:
        return "best" if row.get("noise_rule", "best") == "best" else (
            "within noise" if row["within_noise"] else "worse")
    return f"{'within noise' if row['within_noise'] else 'worse'} ({p_text(p)})"


def overlaps(first: Interval, second: Interval) -> bool:
    """Whether two intervals share a value: the rule for entries without per-row
    predictions on common rows (conservative: overlapping 95% intervals can still differ)."""
    return first.low <= second.high and second.low <= first.high
