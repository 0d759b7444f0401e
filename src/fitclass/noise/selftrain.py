"""Self-training: pseudo-label confident unlabelled rows and retrain, round after round."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fitclass.data.prepare import read_inputs
from fitclass.data.table import TextTable
from fitclass.errors import RecipeError
from fitclass.recipe import SelfTrainingConfig
from fitclass.training.context import FitContext, FitResult

if TYPE_CHECKING:
    from fitclass.models.base import Backbone


def thresholds(config: SelfTrainingConfig, class_names: list[str]) -> np.ndarray:
    """Per-class confidence thresholds from `tau` (a number, or a mapping with default 0.9)."""
    if isinstance(config.tau, dict):
        unknown = sorted(set(config.tau) - set(class_names))
        if unknown:
            raise RecipeError(f"self_training.tau: {unknown} are not classes; classes are "
                              f"{class_names}")
        return np.array([float(config.tau.get(name, 0.9)) for name in class_names])
    return np.full(len(class_names), float(config.tau))


def select_confident(probs: np.ndarray, taken: np.ndarray, config: SelfTrainingConfig,
                     class_names: list[str], labelled_counts: np.ndarray) -> np.ndarray:
    """Rows (not yet taken) whose top probability passes its class's `tau`, most confident
    first, capped per class: `max_per_class` rows, or `proportional` (no class grows by more
    than its share of the labelled rows allows, so the majority class cannot swamp)."""
    predicted, confidence = probs.argmax(1), probs.max(1)
    passing = (confidence >= thresholds(config, class_names)[predicted]) & ~taken
    candidates = {c: np.flatnonzero(passing & (predicted == c)) for c in range(len(class_names))}
    if config.max_per_class == "proportional":
        shares = labelled_counts / labelled_counts.sum()
        # the largest total whose quotas the classes with candidates can all meet (a class
        # with no confident row gets none, without blocking the others)
        total = min((len(rows) / shares[c] for c, rows in candidates.items()
                     if shares[c] > 0 and len(rows)), default=0.0)
        caps = {c: int(np.floor(total * shares[c])) for c in candidates}
    else:
        caps = {c: int(config.max_per_class) for c in candidates}
    chosen = [rows[np.argsort(-confidence[rows], kind="stable")[:caps[c]]]
              for c, rows in candidates.items()]
    return np.concatenate(chosen) if chosen else np.array([], dtype=int)


def add_pseudo_labels(train: TextTable, unlabelled: TextTable, rows: np.ndarray,
                      predicted: np.ndarray, class_names: list[str]) -> TextTable:
    """The training table plus the chosen unlabelled rows with their pseudo-labels."""
    extra = unlabelled.subset(rows)
    extra.labels = [class_names[int(c)] for c in predicted[rows]]
    extra.ids = [f"unlabelled:{i}" for i in extra.ids]
    frame = pd.concat([train.frame, extra.frame], ignore_index=True)
    return TextTable(source=train.source, frame=frame, texts=train.texts + extra.texts,
                     labels=(train.labels or []) + extra.labels, ids=train.ids + extra.ids,
                     id_column=train.id_column, positions=train.positions + extra.positions)


def round_record(round_index: int, rows: np.ndarray, predicted: np.ndarray,
                 class_names: list[str]) -> dict[str, object]:
    counts = Counter(class_names[int(c)] for c in predicted[rows])
    return {"round": round_index, "added": len(rows),
            "added_per_class": {name: counts.get(name, 0) for name in class_names}}


def self_train(backbone: Backbone, context: FitContext,
               config: SelfTrainingConfig) -> tuple[FitResult, list[dict[str, object]]]:
    """Fit, pseudo-label, refit: `rounds` rounds of adding confident unlabelled rows, then the
    final fit; returns the final result and a record of what each round added."""
    if context.task.multilabel:
        raise RecipeError("self_training supports task: multiclass")
    unlabelled = read_inputs(config.unlabelled, context.recipe.data)
    if config.limit:
        unlabelled = unlabelled.subset(np.arange(min(config.limit, len(unlabelled))))
    taken = np.zeros(len(unlabelled), dtype=bool)
    records: list[dict[str, object]] = []
    result = backbone.fit(context)
    for round_index in range(1, config.rounds + 1):
        probs = result.classifier.predict_proba(unlabelled.texts)
        counts = context.task.class_counts(context.train_targets)
        rows = select_confident(probs, taken, config, context.class_names, counts)
        taken[rows] = True
        records.append(round_record(round_index, rows, probs.argmax(1), context.class_names))
        context.reporter.log(f"self-training round {round_index}: added {records[-1]}")
        if len(rows) == 0:
            break
        context = replace(context, train=add_pseudo_labels(
            context.train, unlabelled, rows, probs.argmax(1), context.class_names),
            resume=False)
        result = backbone.fit(context)
    return result, records
