"""Metrics: one function from (targets, probabilities, predictions) to the metrics dict.

Plain numpy in, plain JSON-ready Python out, so every consumer (training loop, `evaluate`,
reports, sweeps) reads the same keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from fitclass.count_metrics import confusion_counts, count_metric, macro_average


def _safe(value: float) -> float | None:
    """JSON has no NaN: undefined metrics (e.g. AUC with one class present) become None."""
    return None if value is None or not np.isfinite(value) else float(value)


def _ranking_metrics(onehot: np.ndarray, probs: np.ndarray) -> tuple[float | None, float | None]:
    """Macro PR-AUC and ROC-AUC over the classes that occur in `onehot` (others are undefined)."""
    present = onehot.sum(axis=0) > 0
    absent = ~present
    if present.sum() == 0 or absent.all():
        return None, None
    pr_auc = skm.average_precision_score(onehot[:, present], probs[:, present], average="macro")
    usable = present & (onehot.sum(axis=0) < len(onehot))  # ROC needs both outcomes
    roc_auc = (
        skm.roc_auc_score(onehot[:, usable], probs[:, usable], average="macro")
        if usable.any()
        else float("nan")
    )
    return _safe(pr_auc), _safe(roc_auc)


def multiclass_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    predictions: np.ndarray | None = None,
) -> dict[str, Any]:
    """All multi-class metrics fitclass reports, keyed as in `metrics.json`."""
    targets = np.asarray(targets, dtype=int)
    probs = np.asarray(probs, dtype=float)
    preds = probs.argmax(axis=1) if predictions is None else np.asarray(predictions, dtype=int)
    labels = list(range(len(class_names)))
    onehot = np.eye(len(class_names))[targets]
    pr_auc, roc_auc = _ranking_metrics(onehot, probs)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets, preds, labels=labels, zero_division=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy warns when a class is absent
        balanced = skm.balanced_accuracy_score(targets, preds)
    clipped = np.clip(probs, 1e-12, 1.0)
    return {
        "n": len(targets),
        "accuracy": float(skm.accuracy_score(targets, preds)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(macro_average(f1, support, np.bincount(preds,
                                                                 minlength=len(labels)))),
        "micro_f1": float(skm.f1_score(targets, preds, labels=labels, average="micro",
                                       zero_division=0)),
        "weighted_f1": float(skm.f1_score(targets, preds, labels=labels, average="weighted",
                                          zero_division=0)),
        "pr_auc_macro": pr_auc,
        "roc_auc_macro": roc_auc,
        "log_loss": float(-np.log(clipped[np.arange(len(targets)), targets]).mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(targets, preds, labels=labels).tolist(),
        "label_distribution": _distribution(targets, class_names),
        "predicted_distribution": _distribution(preds, class_names),
    }


def macro_f1(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Macro-F1 of class indices or 0/1 label matrices, over the classes that occur in
    either (`count_metrics.counted_in_macro`): the value `metrics.json` reports."""
    targets, predictions = np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)
    if targets.ndim == 1:
        classes = int(max(targets.max(initial=-1), predictions.max(initial=-1))) + 1
        return float(count_metric("macro_f1", *confusion_counts(targets, predictions, classes)))
    _, _, f1, support = skm.precision_recall_fscore_support(targets, predictions,
                                                            zero_division=0)
    predicted = predictions.sum(axis=0)
    return float(macro_average(f1, support, predicted))


def _distribution(indices: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(indices, minlength=len(class_names))
    return {name: int(counts[i]) for i, name in enumerate(class_names)}


def headline(metrics: dict[str, Any], first: str) -> dict[str, float | None]:
    """The scalar metrics, the selection metric first: what logs and summaries print."""
    keys = [first] + [k for k in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")
                      if k != first]
    return {k: metrics.get(k) for k in keys if k in metrics}


def multilabel_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    predictions: np.ndarray,
) -> dict[str, Any]:
    """All multi-label metrics: targets, probabilities and predictions are (rows, labels)."""
    targets = np.asarray(targets, dtype=int)
    preds = np.asarray(predictions, dtype=int)
    probs = np.asarray(probs, dtype=float)
    pr_auc, roc_auc = _ranking_metrics(targets, probs)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets, preds, zero_division=0)
    clipped = np.clip(probs, 1e-12, 1 - 1e-12)
    has_labels = targets.sum(axis=1) > 0

    def f1_avg(average: str) -> float:
        # A row with no true and no predicted label is a perfect row for samples-F1.
        zero = 1.0 if average == "samples" else 0.0
        return float(skm.f1_score(targets, preds, average=average, zero_division=zero))

    return {
        "n": len(targets),
        "micro_f1": f1_avg("micro"),
        "macro_f1": float(macro_average(f1, support, preds.sum(axis=0))),
        "weighted_f1": f1_avg("weighted"),
        "samples_f1": f1_avg("samples"),
        "subset_accuracy": float(skm.accuracy_score(targets, preds)),
        "hamming_loss": float(skm.hamming_loss(targets, preds)),
        "lrap": _safe(skm.label_ranking_average_precision_score(targets[has_labels],
                                                                probs[has_labels]))
        if has_labels.any() else None,
        "pr_auc_macro": pr_auc,
        "roc_auc_macro": roc_auc,
        "log_loss": float(-(targets * np.log(clipped)
                            + (1 - targets) * np.log(1 - clipped)).mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.multilabel_confusion_matrix(targets, preds).tolist(),
        "label_distribution": {n: int(c) for n, c in zip(class_names, targets.sum(0),
                                                          strict=True)},
        "predicted_distribution": {n: int(c) for n, c in zip(class_names, preds.sum(0),
                                                              strict=True)},
    }


#: Metrics where lower is better; `loss` (the loop's validation loss) compares as log-loss.
LOWER_IS_BETTER = {"log_loss", "hamming_loss", "loss"}
#: The advice of `Task.degenerate_reasons`' warnings.
DEGENERATE_HINT = ("it has learned nothing useful from its inputs: check the labels and the "
                   "training settings (train.lr, train.epochs; model.C for tfidf) and see "
                   "`imbalance` in docs/recipe.md")
