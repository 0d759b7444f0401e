"""Per-class log-probability offsets fitted to a metric (multi-class `decision.optimize`).

The decision is `argmax(log p + b)`: one additive offset per class, moving rows towards
classes the metric wants predicted more often (macro-F1 on a long tail: the rare classes).
Offsets are fitted by coordinate ascent. For one class c with every other offset fixed, a
row predicts c exactly when `b_c` exceeds its breakpoint `t = max_{j != c}(log p_j + b_j) -
log p_c`; sorting the breakpoints lists every distinct decision along `b_c`, and the metric
of each one follows from cumulative confusion counts. So each coordinate step is exact and
costs O(n log n + n K) rather than a grid of metric evaluations. Sweeps repeat until none
gains; offsets are centred (sum 0: adding one constant to all changes nothing), and among
equally good values the one nearest 0 (the plain argmax) is kept.

The metrics are those that depend on the predicted labels only, computed from per-class
confusion counts by `fitclass.count_metrics` (one formula for this search and the bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fitclass.count_metrics import COUNT_METRICS, class_terms, confusion_counts, count_metric, ratio
from fitclass.decide.folds import can_stratify, cross_fit_folds
from fitclass.target_kinds import MULTICLASS

EPS = 1e-12
#: Breakpoints closer than this are one breakpoint: no offset could separate them reliably.
GAP = 1e-9
#: How far past the outermost breakpoint an offset is placed when the best decision lies
#: beyond it (every row, or no row, predicts the class).
BEYOND = 1.0


#: The metrics offsets can be fitted for (`decision.optimize`).
METRICS = COUNT_METRICS


def log_scores(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=float), EPS, 1.0))


def predict_with_offsets(probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Class indices: argmax of log-probabilities plus offsets."""
    return (log_scores(probs) + np.asarray(offsets, dtype=float)).argmax(axis=1)


def score(targets: np.ndarray, predictions: np.ndarray, metric: str, classes: int) -> float:
    """`metric` of class-index predictions, from per-class confusion counts."""
    return float(count_metric(metric, *confusion_counts(targets, predictions, classes)))


def _coordinate_scores(scores: np.ndarray, targets: np.ndarray, offsets: np.ndarray,
                       c: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted breakpoints of class `c` and the metric after flipping the first s rows to `c`
    (s = 0..n, every other offset fixed), from each class's terms."""
    rows, classes = scores.shape
    others = scores + offsets
    others[:, c] = -np.inf
    runner_up = others.argmax(axis=1)
    breakpoints = others[np.arange(rows), runner_up] - scores[:, c]
    order = np.argsort(breakpoints, kind="stable")
    y, r = targets[order], runner_up[order]
    supports = np.bincount(targets, minlength=classes)

    def cumulative(flags: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(flags)])

    numerator, denominator = class_terms(metric, cumulative(y == c), np.arange(rows + 1),
                                         supports[c])
    for j in range(classes):  # a flipped row leaves its runner-up's predictions
        if j == c:
            continue
        lost = cumulative(r == j)
        lost_tp = cumulative((r == j) & (y == j))
        j_numerator, j_denominator = class_terms(metric, lost_tp[-1] - lost_tp,
                                                 lost[-1] - lost, supports[j])
        numerator, denominator = numerator + j_numerator, denominator + j_denominator
    total = ratio(numerator, denominator)
    return breakpoints[order], total


def _candidates(breakpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reachable state s (rows flipped), the offset nearest 0 inside its interval
    (the midpoint when 0 is not inside); unreachable states (tied breakpoints) get NaN."""
    rows = len(breakpoints)
    low = np.concatenate([[-np.inf], breakpoints])
    high = np.concatenate([breakpoints, [np.inf]])
    reachable = np.ones(rows + 1, dtype=bool)
    reachable[1:rows] = np.diff(breakpoints) > GAP
    with np.errstate(invalid="ignore"):
        value = (low + high) / 2
    value = np.where(np.isneginf(low), np.minimum(0.0, high - BEYOND), value)
    value = np.where(np.isposinf(high), np.maximum(0.0, low + BEYOND), value)
    inside = (low + GAP < 0) & (high - GAP > 0)
    value = np.where(inside, 0.0, value)
    return np.where(reachable, value, np.nan), reachable


@dataclass
class OffsetFit:
    """Fitted offsets and how the ascent went."""

    offsets: np.ndarray
    score_before: float
    score_after: float
    sweeps: int
    history: list[float] = field(default_factory=list)


def fit_offsets(probs: np.ndarray, targets: np.ndarray, metric: str = "macro_f1",
                max_sweeps: int = 50) -> OffsetFit:
    """Offsets maximising `metric` of `argmax(log probs + offsets)` on these rows, by
    exact coordinate ascent from 0 (plain argmax)."""
    if metric not in METRICS:
        raise ValueError(f"cannot fit offsets for {metric!r}; choose one of {sorted(METRICS)}")
    scores = log_scores(probs)
    targets = np.asarray(targets, dtype=int)
    classes = scores.shape[1]
    offsets = np.zeros(classes)
    current = before = score(targets, scores.argmax(axis=1), metric, classes)
    history, sweeps = [before], 0
    while sweeps < max_sweeps:
        sweeps += 1
        improved = False
        for c in range(classes):
            proposal = _improved_offset(scores, targets, offsets, c, metric, current)
            if proposal is None:
                continue
            trial = offsets.copy()
            trial[c] = proposal
            trial -= trial.mean()
            achieved = score(targets, (scores + trial).argmax(axis=1), metric, classes)
            if achieved > current + EPS:  # checked on real predictions, not just the scan
                offsets, current, improved = trial, achieved, True
        history.append(current)
        if not improved:
            break
    return OffsetFit(offsets, before, current, sweeps, history)


def _improved_offset(scores: np.ndarray, targets: np.ndarray, offsets: np.ndarray, c: int,
                     metric: str, current: float) -> float | None:
    """The best offset for class `c` (nearest 0 among equals), or None when no value of it
    beats `current`."""
    breakpoints, totals = _coordinate_scores(scores, targets, offsets, c, metric)
    values, reachable = _candidates(breakpoints)
    totals = np.where(reachable, totals, -np.inf)
    best = totals.max()
    if best <= current + EPS:
        return None
    ties = np.flatnonzero(totals >= best - EPS)
    return float(values[ties[np.argmin(np.abs(values[ties]))]])


@dataclass
class CrossFit:
    """Predictions for every row from offsets fitted without it."""

    predictions: np.ndarray
    folds: int
    #: Why the rows were not cross-fitted as asked (fewer folds, or in-sample); None if they were.
    note: str | None


def fold_count(targets: np.ndarray, folds: int, class_names: list[str]) -> tuple[int, str | None]:
    """The folds the rows allow, with a note when the offsets cannot be cross-fitted as
    asked: stratified folds need every present class in each, so a class of 2..folds-1 rows
    lowers the count to its rows; a class of one row cannot be stratified at all, so the rows
    get `folds` plain folds, and that row is decided by offsets fitted without its class
    (pessimistic for it, never in-sample). 1 only when there are fewer than 2 rows."""
    if can_stratify(targets, folds):  # the rule `cross_fit_folds` splits by
        return folds, None
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=len(class_names))
    present = np.flatnonzero(counts)
    rarest = int(present[np.argmin(counts[present])])
    smallest = int(counts[rarest])
    name = class_names[rarest]
    if smallest >= 2:
        return smallest, (f"class {name!r} has only {smallest} validation rows, so the "
                          f"offsets were cross-fitted over {smallest} folds instead of {folds} "
                          f"(decision.optimize_folds)")
    used = min(folds, len(targets))
    if used < 2:
        return 1, (f"only {len(targets)} validation row: too few to cross-fit, the score "
                   f"after offsets is in-sample (optimistic); add validation rows "
                   f"(data.split.valid_size) or drop decision.optimize")
    lone = [class_names[i] for i in present if counts[i] == 1]
    return used, (f"{len(lone)} class(es) have one validation row ({', '.join(map(repr, lone[:5]))}"
                  f"{', ...' if len(lone) > 5 else ''}): the offsets were cross-fitted over "
                  f"{used} unstratified folds, so such a row is decided by offsets fitted "
                  f"without its class (its score is pessimistic, not in-sample); add "
                  f"validation rows (data.split.valid_size) or cross-validate (--folds 5)")


def cross_fitted_predictions(probs: np.ndarray, targets: np.ndarray, metric: str,
                             class_names: list[str], folds: int = 5,
                             seed: int = 0) -> CrossFit:
    """Split the rows into stratified folds (seeded), fit offsets on all folds but one and
    predict that one; the assembled predictions score the decision honestly."""
    targets = np.asarray(targets, dtype=int)
    used, note = fold_count(targets, folds, class_names)
    if used < 2:
        fitted = fit_offsets(probs, targets, metric)
        return CrossFit(predict_with_offsets(probs, fitted.offsets), 1, note)
    predictions = np.zeros(len(targets), dtype=int)
    for fit_rows, held_rows in cross_fit_folds(targets, MULTICLASS, used, seed):
        fitted = fit_offsets(probs[fit_rows], targets[fit_rows], metric)
        predictions[held_rows] = predict_with_offsets(probs[held_rows], fitted.offsets)
    return CrossFit(predictions, used, note)


@dataclass
class MetricFit:
    """What `decision.optimize` fits: the offsets to save (fitted on every row), each row's
    cross-fitted prediction (the honest score) and the report for decision.json and
    metrics.json."""

    offsets: np.ndarray
    held_out: np.ndarray
    report: dict[str, object]


def fit_for_metric(calibrated: np.ndarray, targets: np.ndarray, metric: str,
                   class_names: list[str], folds: int = 5, seed: int = 0) -> MetricFit:
    """Offsets for `metric` on calibrated validation probabilities, cross-fitted for the
    reported score, with class shares (true, predicted before, predicted after)."""
    targets = np.asarray(targets, dtype=int)
    classes = len(class_names)
    fitted = fit_offsets(calibrated, targets, metric)
    crossed = cross_fitted_predictions(calibrated, targets, metric, class_names, folds, seed)
    before = calibrated.argmax(axis=1)
    saved = predict_with_offsets(calibrated, fitted.offsets)

    def shares(indices: np.ndarray) -> dict[str, int]:
        counts = np.bincount(indices, minlength=classes)
        return {name: int(counts[i]) for i, name in enumerate(class_names)}

    report: dict[str, object] = {
        "metric": metric,
        "folds": crossed.folds,
        "offsets": {name: float(b) for name, b in zip(class_names, fitted.offsets,
                                                      strict=True)},
        "score": {"before": fitted.score_before,
                  "cross_fitted": score(targets, crossed.predictions, metric, classes),
                  "in_sample": fitted.score_after},
        "shares": {"true": shares(targets), "before": shares(before),
                   "after": shares(crossed.predictions), "after_in_sample": shares(saved)},
        "sweeps": fitted.sweeps,
        "warnings": [] if crossed.note is None else [f"decision.optimize: {crossed.note}"],
    }
    return MetricFit(fitted.offsets, crossed.predictions, report)
