"""The metrics of `fitclass.metrics`, computed for many row weightings at once.

A bootstrap replicate weighs each row by how often it was drawn; a paired permutation
weighs each row of two stacked prediction sets 0 or 1. Every metric fitclass headlines is a
function of weighted sums over rows (per-class true positives, supports and predicted
counts; per-row losses and F1) or a weighted ranking (PR-AUC, ROC-AUC), so a block of
weightings is a sparse matrix product and a few cumulative sums, not a call of scikit-learn
per replicate. `tests/uncertainty/test_weighted_metrics.py` pins every formula to
`fitclass.metrics` at unit weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse

from fitclass.count_metrics import from_counts, macro_average, ratio
from fitclass.uncertainty.scored import Scored

#: Metrics computed here, by kind (multi-label or not).
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1",
                      "log_loss", "pr_auc_macro", "roc_auc_macro")
MULTILABEL_METRICS = ("micro_f1", "macro_f1", "weighted_f1", "samples_f1", "subset_accuracy",
                      "hamming_loss", "lrap", "log_loss", "pr_auc_macro", "roc_auc_macro")
RANKING = ("pr_auc_macro", "roc_auc_macro")
#: Any other metric: the metrics dict of a `Scored` (rows repeated as weighted), called once
#: per weighting.
Fallback = Callable[[Scored], dict[str, Any]]


def supported(scored: Scored) -> tuple[str, ...]:
    return MULTILABEL_METRICS if scored.kind.multilabel else MULTICLASS_METRICS


def weighted_scores(scored: Scored, weights: np.ndarray, names: tuple[str, ...],
                    fallback: Fallback | None = None) -> dict[str, np.ndarray]:
    """Each metric in `names` under each row weighting: `weights` is (weightings, rows) and
    every result is (weightings,), NaN where the metric is undefined (a class absent from a
    resample). Names this module does not compute go to `fallback` (skipped without one)."""
    fast = [n for n in names if n in supported(scored)]
    scores = _sum_metrics(scored, weights, [n for n in fast if n not in RANKING])
    if any(n in RANKING for n in fast):
        pr_auc, roc_auc = _ranking(scored, weights)
        scores |= {"pr_auc_macro": pr_auc, "roc_auc_macro": roc_auc}
    slow = [n for n in names if n not in fast]
    if slow and fallback is not None:
        scores |= _by_fallback(scored, weights, slow, fallback)
    return {n: scores[n] for n in names if n in scores}


def scores(scored: Scored, names: tuple[str, ...],
           fallback: Fallback | None = None) -> dict[str, float]:
    """Each metric on all rows once (NaN where undefined)."""
    found = weighted_scores(scored, np.ones((1, len(scored))), names, fallback)
    return {name: float(values[0]) for name, values in found.items()}


def _by_fallback(scored: Scored, weights: np.ndarray, names: list[str],
                 fallback: Fallback) -> dict[str, np.ndarray]:
    rows = np.arange(weights.shape[1])
    out = {n: np.full(len(weights), np.nan) for n in names}
    for b, row_weights in enumerate(weights):
        metrics = fallback(scored.take(np.repeat(rows, row_weights.astype(int))))
        for name in names:
            value = metrics.get(name)
            if isinstance(value, float | int) and not isinstance(value, bool):
                out[name][b] = float(value)
    return out


def _sums(columns: sparse.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """(weightings, columns): the weighted column sums of a (rows, columns) matrix."""
    return np.asarray((columns.T @ weights.T).T)


def _one_hot(indices: np.ndarray, values: np.ndarray, width: int) -> sparse.csr_matrix:
    rows = np.arange(len(indices))
    return sparse.csr_matrix((values.astype(float), (rows, indices)), shape=(len(indices), width))


def _sum_metrics(scored: Scored, weights: np.ndarray,
                 names: list[str]) -> dict[str, np.ndarray]:
    if not names:
        return {}
    if scored.kind.multilabel:
        return _multilabel_sums(scored, weights)
    return _multiclass_sums(scored, weights)


def _multiclass_sums(scored: Scored, weights: np.ndarray) -> dict[str, np.ndarray]:
    k = scored.columns
    targets = scored.targets.astype(int)
    preds = scored.predictions.astype(int)
    right = (targets == preds).astype(float)
    ones = np.ones(len(targets))
    true_prob = np.clip(scored.probs[np.arange(len(targets)), targets], 1e-12, 1.0)
    columns = sparse.hstack([_one_hot(targets, right, k), _one_hot(targets, ones, k),
                             _one_hot(preds, ones, k),
                             sparse.csr_matrix(-np.log(true_prob)[:, None])]).tocsr()
    sums = _sums(columns, weights)
    tp, support, predicted, loss = sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:3 * k], sums[:, -1]
    return from_counts(tp, support, predicted) | {
        "log_loss": ratio(loss, support.sum(axis=1), np.nan)}


def _multilabel_sums(scored: Scored, weights: np.ndarray) -> dict[str, np.ndarray]:
    targets = scored.targets.astype(int)
    preds = scored.predictions.astype(int)
    n, labels = targets.shape
    clipped = np.clip(scored.probs, 1e-12, 1 - 1e-12)
    cell_loss = -(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped))
    true_count, predicted_count = targets.sum(axis=1), preds.sum(axis=1)
    both = (targets & preds).sum(axis=1)
    row_f1 = ratio(2 * both, (true_count + predicted_count).astype(float), empty=1.0)
    has_labels = (true_count > 0).astype(float)
    per_row = np.column_stack([
        row_f1, np.all(targets == preds, axis=1), (targets != preds).mean(axis=1),
        cell_loss.mean(axis=1), has_labels, has_labels * row_lrap(targets, scored.probs),
        np.ones(n)]).astype(float)
    columns = sparse.hstack([sparse.csr_matrix(targets & preds),
                             sparse.csr_matrix((1 - targets) & preds),
                             sparse.csr_matrix(targets & (1 - preds)),
                             sparse.csr_matrix(per_row)]).tocsr()
    sums = _sums(columns, weights)
    tp, fp, fn = (sums[:, i * labels:(i + 1) * labels] for i in range(3))
    f1_sum, subset, hamming, loss, labelled, lrap, total = sums[:, 3 * labels:].T
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    support = tp + fn
    micro = ratio(2 * tp.sum(axis=1), (2 * tp + fp + fn).sum(axis=1))
    return {"micro_f1": micro, "macro_f1": macro_average(f1, support, tp + fp),
            "weighted_f1": ratio((f1 * support).sum(axis=1), support.sum(axis=1)),
            "samples_f1": ratio(f1_sum, total), "subset_accuracy": ratio(subset, total),
            "hamming_loss": ratio(hamming, total), "log_loss": ratio(loss, total, np.nan),
            "lrap": ratio(lrap, labelled, np.nan)}


def row_lrap(targets: np.ndarray, probs: np.ndarray, block: int = 4_000_000) -> np.ndarray:
    """Each row's label ranking average precision (scikit-learn's definition: a relevant
    label's rank counts every label scored at least as high); 0 for rows without labels."""
    n, labels = targets.shape
    out = np.zeros(n)
    step = max(1, block // max(labels * labels, 1))
    for start in range(0, n, step):
        s, t = probs[start:start + step], targets[start:start + step].astype(float)
        at_least = s[:, None, :] >= s[:, :, None]  # [i, j, k]: label k scores >= label j
        rank = at_least.sum(axis=2)
        relevant_above = (at_least * t[:, None, :]).sum(axis=2)
        per_label = np.where(t > 0, relevant_above / rank, 0.0)
        out[start:start + step] = ratio(per_label.sum(axis=1), t.sum(axis=1))
    return out


def _ranking(scored: Scored, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Macro PR-AUC (average precision) and ROC-AUC over the classes present under each
    weighting, with ties handled as scikit-learn does (one threshold per distinct score)."""
    indicator = scored.kind.indicator(scored.targets.astype(int), scored.columns)
    # rows x weightings: a sorted gather takes whole rows and running sums go down rows
    # (numpy's fast direction); counts and 0/1 weights are exact in float32 to 16M rows
    by_row = np.ascontiguousarray(weights.T, dtype=np.float32)
    buffer = np.zeros((len(by_row) + 1, by_row.shape[1]), dtype=np.float32)
    pr = np.full((len(weights), scored.columns), np.nan)
    roc = np.full_like(pr, np.nan)
    for c in range(scored.columns):
        pr[:, c], roc[:, c] = _column_ranking(scored.probs[:, c], indicator[:, c] > 0, by_row,
                                              buffer)
    with warnings.catch_warnings():  # a weighting with no class present is NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(pr, axis=1), np.nanmean(roc, axis=1)


def _column_ranking(scores: np.ndarray, positive: np.ndarray, by_row: np.ndarray,
                    buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One column's weighted average precision and ROC-AUC (`by_row`: rows x weightings).
    Rows sorted by score (highest first) form tie groups; each positive row counts the
    precision at its group's end and, for the AUC, the negatives below its group plus half
    of those tied with it. Only the total weight is summed over every row; the rest is
    gathered at the positive rows."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    last = np.append(ordered[1:] != ordered[:-1], True)  # the last row of each tie group
    hits = np.flatnonzero(positive[order])  # sorted positions of the positive rows
    if len(hits) == 0:
        return np.full(by_row.shape[1], np.nan), np.full(by_row.shape[1], np.nan)
    w = by_row[order]
    np.cumsum(w, axis=0, out=buffer[1:])  # buffer[j] = weight of the first j sorted rows
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    hit_group = np.concatenate([[0], np.cumsum(last[:-1])])[hits]
    through = buffer[ends[hit_group] + 1].astype(float)  # all weight down to its group's end
    before = buffer[starts[hit_group]].astype(float)  # all weight above its group
    all_weight = buffer[-1].astype(float)
    hit_weight = w[hits].astype(float)
    positives = np.zeros((len(hits) + 1, w.shape[1]))
    np.cumsum(hit_weight, axis=0, out=positives[1:])  # [k] = weight of the first k positives
    tp_through = positives[np.searchsorted(hit_group, hit_group, side="right")]
    tp_before = positives[np.searchsorted(hit_group, hit_group, side="left")]
    all_positive = positives[-1]
    all_negative = all_weight - all_positive
    ap = ratio((hit_weight * ratio(tp_through, through)).sum(axis=0), all_positive, np.nan)
    fp_through, fp_before = through - tp_through, before - tp_before
    pairs = (hit_weight * (all_negative - 0.5 * (fp_through + fp_before))).sum(axis=0)
    return ap, ratio(pairs, all_positive * all_negative, np.nan)
