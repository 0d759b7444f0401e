"""The cross-validation run's own record: OUT is a run whose model is the mean of its fold
runs' raw probabilities (the ensemble kind, `member_output: raw`), so `predict`, `evaluate`,
`report` and `export` use it like any run. Its one decision is fitted on the out-of-fold
probabilities of every labelled row; its
validation metrics are the out-of-fold metrics (cross-fitted decisions, `scores.py`), and
`metrics.json` adds `cv` (every metric's mean over folds with its 95% interval), `folds`
(per fold: rows, best epochs, scores) and `crossval` (K, seeds, fold method)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fitclass.crossval.scores import (
    OutOfFold,
    best_epoch,
    cross_fitted,
    fold_scores,
    intervals,
    scalars,
)
from fitclass.data.fingerprint import data_fingerprint
from fitclass.decide.combiners import Combiner
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.recipe import Recipe
from fitclass.runs import writer
from fitclass.runs.folder import RunDir
from fitclass.runs.run import Run, label_strings
from fitclass.runs.scored_rows import row_intervals
from fitclass.tasks import Task, make_task
from fitclass.uncertainty.scored import Scored

#: Scores of a fold run's own validation (its fold, its own decision) shown per member.
MEMBER_SCORES = ("accuracy", "macro_f1", "log_loss")


def prediction_table(task: Task, oof: OutOfFold, calibrated: np.ndarray,
                     predictions: np.ndarray, with_fold: bool) -> pd.DataFrame:
    """id, text, true label(s), [fold], predicted label(s), calibrated `prob:<class>`: the
    layout of `valid_predictions.csv` (and, with the fold, `oof.csv`)."""
    rows = oof.rows
    frame = pd.DataFrame({rows.id_column: rows.ids,
                          "text": [str(t) for t in rows.texts]})
    column = task.label_column
    frame[f"true_{column}"] = label_strings(rows.labels or [])
    if with_fold:
        frame["fold"] = oof.folds
    frame[column] = task.label_strings(predictions)
    for i, name in enumerate(task.class_names):
        frame[f"prob:{name}"] = calibrated[:, i]
    return frame


def fold_details(oof: OutOfFold, members: dict[int, list[Run]],
                 per_fold: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Per fold: its rows, its runs with their best epoch and own validation scores, and
    the fold's cross-fitted scores."""
    details = []
    for fold, runs in members.items():
        details.append({
            "fold": fold, "rows": int((oof.folds == fold).sum()),
            "runs": [{"path": run.path.name, "seed": run.recipe.train.seed,
                      "best_epoch": best_epoch(run),
                      **{k: run.metrics.get(k) for k in MEMBER_SCORES}} for run in runs],
            "scores": per_fold[fold]})
    return details


def summary(base: Recipe, oof: OutOfFold, members: dict[int, list[Run]], method: str,
            per_fold: list[dict[str, float]]) -> dict[str, Any]:
    """What `cv.json` holds (and `metrics.json` under `cv`, `folds`, `crossval`)."""
    epochs = [best_epoch(run) for runs in members.values() for run in runs]
    seeds = len(next(iter(members.values())))
    return {
        "k": oof.k, "seeds": seeds, "method": method, "seed": base.data.split.seed,
        "rows": len(oof.rows), "metric": base.train.select.metric,
        "cv": intervals(per_fold),
        "folds": fold_details(oof, members, per_fold),
        "best_epochs": epochs, "median_best_epoch": statistics.median(epochs),
        "decision": ("fitted on the out-of-fold probabilities of every labelled row; the "
                     "scores use cross-fitted decisions (each fold's rows decided by the "
                     "decision fitted on the other folds)"),
    }


def write_cv_run(run: RunDir, base: Recipe, oof: OutOfFold, members: dict[int, list[Run]],
                 method: str) -> None:
    """Write OUT's record (the caller marks it finished)."""
    task = make_task(base.task, oof.class_names)
    decision = task.fit_decision(base.decision, oof.targets, oof.probs,
                                 task.class_priors(oof.targets))
    calibrated, predictions, _ = cross_fitted(task, base.decision, oof)
    per_fold = fold_scores(task, oof, calibrated, predictions)
    scores = summary(base, oof, members, method, per_fold)
    metric = base.train.select.metric
    metrics = task.score(oof.targets, calibrated, predictions)
    metrics["before_decision"] = scalars(task.metrics(oof.targets, oof.probs))
    metrics.update(decision.metrics_sections())  # calibration; optimize's offsets and shares
    metrics["select"] = {"metric": metric, "mode": base.train.select.direction,
                         "held_out": True}
    metrics["warnings"] = task.degenerate_reasons(oof.targets, calibrated, predictions,
                                                  metric) + decision.warnings
    # the bootstrap over the out-of-fold rows, as a single run's over its validation rows
    metrics["intervals"] = row_intervals(
        Scored(oof.targets, calibrated, predictions, task.kind), metrics)
    metrics["cv"] = scores["cv"]
    metrics["folds"] = scores["folds"]
    metrics["crossval"] = {k: v for k, v in scores.items() if k not in ("cv", "folds")}
    paths = [run.path for runs in members.values() for run in runs]
    combiner = Combiner("mean", np.full(len(paths), 1.0 / len(paths)))
    ensemble = {"method": "mean", "metric": metric, "methods": {},
                "members": _member_rows(members, float(combiner.weights[0]))}
    frame = prediction_table(task, oof, calibrated, predictions, with_fold=False)
    writer.write_record(run, writer.RunRecord(
        recipe=base, classifier=EnsembleClassifier(oof.class_names, _member_info(run, paths),
                                                   combiner, member_output="raw"),
        classes=oof.class_names, train_counts=task.class_counts(oof.targets),
        decision=decision, metrics=metrics, valid_predictions=frame, valid_probs=oof.probs,
        valid_targets=oof.targets,
        data_fingerprint=data_fingerprint(base.data, oof.rows, oof.class_names),
        ensemble=ensemble | {"combiner": combiner.to_dict()},
        crossval=writer.CrossValRecord(
            predictions=prediction_table(task, oof, calibrated, predictions, with_fold=True),
            arrays={"raw": oof.probs, "targets": oof.targets, "fold": oof.folds.astype(float)},
            scores=scores)))


def _member_rows(members: dict[int, list[Run]], weight: float) -> list[dict[str, Any]]:
    """The report's member table: each fold run scored on its own fold."""
    return [{"path": run.path.name, "backbone": run.recipe.model.backbone, "weight": weight,
             **{k: run.metrics.get(k) for k in MEMBER_SCORES}}
            for runs in members.values() for run in runs]


def _member_info(run: RunDir, paths: Sequence[Any]) -> list[dict[str, str]]:
    """Members as the ensemble kind saves them: relative to OUT (they move with it), and
    absolute."""
    return [{"absolute": str(path.resolve()),
             "relative": os.path.relpath(path.resolve(), run.path.resolve())}
            for path in paths]
