"""Rows per class: imbalance (head and tail shares), multi-label cardinality, and the
very-few-rows regime. Remedies are the ones docs/benchmarks.md measured (issues 3 and 16)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from fitclass.data.table import Label, label_names
from fitclass.diagnosis.findings import Finding, Severity

#: Largest class / smallest class at or above which classes count as imbalanced...
IMBALANCED = 3.0
#: ...and, with 3 classes or more, as a long tail (movie4 is 17, TREC fine labels 100+).
LONG_TAIL = 10.0
#: Fewer rows than this in the smallest class, or in the median class, is "very few".
FEW_IN_SMALLEST, FEW_IN_MEDIAN = 10, 30


def class_counts(labels: list[Label], class_names: list[str]) -> dict[str, int]:
    """Rows per class, or positive rows per label, most frequent first (zero included)."""
    counted = Counter(label_names(labels))
    return dict(sorted(((name, counted.get(name, 0)) for name in class_names),
                       key=lambda item: -item[1]))


def shape(counts: dict[str, int], rows: int) -> dict[str, float | int | str]:
    """Classes, largest / smallest, head share (the largest class) and tail share (rows in
    the smaller half of the classes)."""
    values = np.array(sorted(counts.values(), reverse=True), dtype=float)
    smallest = max(float(values[-1]), 1.0)
    tail = values[(len(values) + 1) // 2:]
    return {"classes": len(values), "rows": rows, "largest": next(iter(counts)),
            "smallest": list(counts)[-1], "ratio": round(float(values[0]) / smallest, 1),
            "head_share": round(float(values[0]) / max(1.0, values.sum()), 4),
            "tail_share": round(float(tail.sum()) / max(1.0, values.sum()), 4),
            "median_rows": int(np.median(values)), "smallest_rows": int(values[-1])}


def imbalance(counts: dict[str, int], rows: int, multilabel: bool,
              neural: bool) -> Finding | None:
    """Skewed classes (or labels): weights (multi-class) or thresholds and `pos_weight`
    (multi-label), with macro-F1 as the metric that sees the rare classes."""
    measured = shape(counts, rows)
    ratio = float(measured["ratio"])
    if ratio < IMBALANCED:
        return None
    long_tail = ratio >= LONG_TAIL and len(counts) >= 3
    title = (f"{'long tail' if long_tail else 'imbalanced'}: the largest "
             f"{'label' if multilabel else 'class'} ({measured['largest']}) has {ratio:g}x "
             f"the rows of the smallest ({measured['smallest']}); head share "
             f"{measured['head_share']:.0%}, tail half {measured['tail_share']:.0%}")
    if multilabel:
        keys: dict[str, object] = {"decision.thresholds": "per_class",
                                   "train.select.metric": "macro_f1"}
        why = ("UnSmile (10 labels), TF-IDF: per-label thresholds fitted on validation took "
               "macro-F1 from 0.608 at 0.5 to 0.733 (+12.5 points); balanced weights do the "
               "same job, so one of the two, not both (docs/benchmarks.md, issue 3)")
        remedy = "fit each label's threshold on validation; select on macro-F1"
        if neural:
            keys["imbalance.pos_weight"] = "auto"
            remedy += "; weigh each label's positives (pos_weight)"
            why += ("; MiniLM on UnSmile predicted no labels at 0.5 with plain BCE "
                    "(macro-F1 0.03); pos_weight made 0.5 usable (0.27)")
    else:
        scheme = "inverse" if ratio >= LONG_TAIL else "sqrt_inverse"
        keys = {"imbalance.class_weights": scheme, "train.select.metric": "macro_f1"}
        remedy = (f"weight the loss by {scheme.replace('_', ' ')} class frequency and select "
                  f"on macro-F1; then decision.optimize: macro_f1 fitted on out-of-fold rows "
                  f"(`fitclass train RECIPE --folds 5`)")
        why = ("TREC fine labels (50 classes), MiniLM: inverse weights +8.4 macro-F1 (0.745 "
               "to 0.829), accuracy unchanged; movie4 (ratio 17), TF-IDF: inverse +4.7 "
               "macro-F1 for -2.4 accuracy, sqrt_inverse +3.8 for -0.7; decisions fitted on "
               "5-fold out-of-fold rows added +0.8 (docs/benchmarks.md, issues 3 and 16)")
    return Finding("imbalance", "warning", title, measured, remedy, why, keys,
                   "long_tail" if long_tail else None)


def few_rows(counts: dict[str, int], rows: int) -> Finding | None:
    """Very few rows per class: one validation split is too small to trust; cross-validate."""
    measured = shape(counts, rows)
    smallest, median = int(measured["smallest_rows"]), int(measured["median_rows"])
    if smallest >= FEW_IN_SMALLEST and median >= FEW_IN_MEDIAN:
        return None
    rare = [name for name, n in counts.items() if n < 2]
    severity: Severity = "error" if rare else "warning"
    title = (f"very few rows per class: the smallest class has {smallest}, the median "
             f"class {median}"
             + (f"; {len(rare)} classes have fewer than 2 rows ({', '.join(rare[:5])}), too "
                f"few to split or fold" if rare else ""))
    remedy = ("cross-validate instead of one validation split, and refit on every row: "
              "`fitclass train RECIPE --folds 5 --refit`"
              + ("; first add rows to (or merge, or drop) the classes under 2 rows" if rare
                 else ""))
    why = ("movie4: one validation split over-stated the test macro-F1 by 0.7 points, the "
           "5-fold mean missed it by 0.3 and its interval covered it; the refit scored as the "
           "fold average (docs/benchmarks.md, issue 16). With few rows a class's F1 moves "
           "by points per row (TREC: 'read differences under 2 points as noise')")
    return Finding("few_rows", severity, title, {**measured, "under_2_rows": rare}, remedy,
                   why, {}, "very_few_rows_per_class")


def cardinality(labels: list[Label]) -> Finding:
    """Labels per row of a multi-label table."""
    per_row = np.array([len(label) if isinstance(label, tuple) else 1 for label in labels])
    empty = float(np.mean(per_row == 0))
    measured = {"mean_labels_per_row": round(float(per_row.mean()), 3),
                "max_labels_per_row": int(per_row.max()),
                "rows_without_label": round(empty, 4),
                "rows_with_several": round(float(np.mean(per_row > 1)), 4)}
    title = (f"multi-label: {measured['mean_labels_per_row']:g} labels per row on average "
             f"(at most {measured['max_labels_per_row']}); {empty:.1%} of rows have none, "
             f"{measured['rows_with_several']:.1%} several")
    remedy = ("nothing to change: the multi-label default fits each label's threshold "
              "(decision.thresholds: auto)")
    why = ("a description, not a problem: it tells which metric reads the table best (with "
           "several labels a row, micro- and samples-F1 beside macro-F1)")
    keys: dict[str, object] = {}
    return Finding("label_cardinality", "info", title, measured, remedy, why, keys)
