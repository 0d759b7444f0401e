"""Plots as inline SVG strings (matplotlib's SVG backend; no files, no network)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

MAX_CLASSES_DRAWN = 30  # beyond this a heatmap or legend is unreadable


def subplots(**options: Any) -> tuple[Figure, Any]:
    """A figure without pyplot: no global backend or figure registry is touched."""
    squeeze = options.pop("squeeze", True)
    ncols = options.pop("ncols", 1)
    figure = Figure(**options)
    return figure, figure.subplots(1, ncols, squeeze=squeeze)


def to_svg(figure: Figure) -> str:
    """SVG text; labels stay text (the browser's fonts draw Korean and other scripts that
    matplotlib's bundled font lacks)."""
    buffer = io.StringIO()
    with warnings.catch_warnings(), matplotlib.rc_context({"svg.fonttype": "none"}):
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog so it inlines in HTML


def confusion_heatmap(matrix: np.ndarray, names: Sequence[str], normalise: bool) -> str:
    matrix = np.asarray(matrix, dtype=float)
    shown = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None) if normalise else matrix
    size = min(0.45 * len(names) + 2.5, 14)
    figure, axis = subplots(figsize=(size, size * 0.85))
    image = axis.imshow(shown, cmap="Blues")
    axis.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("row-normalised" if normalise else "counts")
    if len(names) <= 12:
        for (i, j), value in np.ndenumerate(shown):
            text = f"{value:.2f}" if normalise else f"{int(value)}"
            axis.text(j, i, text, ha="center", va="center", fontsize=7,
                      color="white" if value > shown.max() / 2 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046)
    return to_svg(figure)


def pr_curves(onehot: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> str:
    figure, axis = subplots(figsize=(6, 4.5))
    for c, name in enumerate(names[:MAX_CLASSES_DRAWN]):
        if onehot[:, c].sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(onehot[:, c], probs[:, c])
        axis.plot(recall, precision, label=name, linewidth=1.2)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
    return to_svg(figure)


def reliability(confidence_before: np.ndarray, correct_before: np.ndarray,
                confidence_after: np.ndarray, correct_after: np.ndarray, bins: int = 15) -> str:
    figure, axis = subplots(figsize=(5, 4.5))
    edges = np.linspace(0, 1, bins + 1)
    for confidence, correct, label in ((confidence_before, correct_before, "before"),
                                       (confidence_after, correct_after, "after")):
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            if (which == b).any():
                xs.append(confidence[which == b].mean())
                ys.append(correct[which == b].mean())
        axis.plot(xs, ys, marker="o", label=f"{label} calibration")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axis.set_xlabel("confidence")
    axis.set_ylabel("observed frequency")
    axis.legend(fontsize=8)
    return to_svg(figure)


def distribution_bars(true_counts: dict[str, int], predicted_counts: dict[str, int]) -> str:
    names = list(true_counts)[:MAX_CLASSES_DRAWN * 2]
    x = np.arange(len(names))
    figure, axis = subplots(figsize=(min(0.4 * len(names) + 3, 14), 3.8))
    axis.bar(x - 0.2, [true_counts[n] for n in names], width=0.4, label="true")
    axis.bar(x + 0.2, [predicted_counts.get(n, 0) for n in names], width=0.4, label="predicted")
    axis.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    axis.set_ylabel("rows")
    axis.legend()
    return to_svg(figure)


def learning_curves(history: pd.DataFrame, metric: str) -> str | None:
    """Loss, the selection metric and the learning rate by epoch; None when the history has
    none of them (a TF-IDF refit: one fit, nothing measured)."""
    panels = [c for c in (("train_loss", "valid_loss"), (metric,), ("lr",))
              if any(k in history.columns for k in c)]
    if not panels:
        return None
    figure, axes = subplots(ncols=len(panels), figsize=(4.2 * len(panels), 3.4),
                            squeeze=False)
    x = history["epoch"] if "epoch" in history.columns else history.index
    for axis, keys in zip(axes[0], panels, strict=True):
        for key in keys:
            if key in history.columns:
                axis.plot(x, history[key], marker="o", label=key)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8)
    return to_svg(figure)


def bar_chart(values: dict[str, float], xlabel: str) -> str:
    names = list(values)
    figure, axis = subplots(figsize=(6, 0.3 * len(names) + 1.2))
    axis.barh(names, [values[n] for n in names])
    axis.set_xlabel(xlabel)
    axis.invert_yaxis()
    return to_svg(figure)


def optimisation_history(history: pd.DataFrame, metric: str, mode: str) -> str:
    """Each trial's value and the best so far."""
    figure, axis = subplots(figsize=(6, 3.6))
    axis.plot(history["trial"], history["value"], "o", label=metric)
    best = history["value"].cummax() if mode == "max" else history["value"].cummin()
    axis.plot(history["trial"], best, "-", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(metric)
    axis.legend(fontsize=8)
    return to_svg(figure)
