"""The one writer of the run record: `fitclass.train` and `fitclass.ensemble` both start a
run with `write_start` and finish it with `write_record`, so every finished run holds the
same set of files whatever made it (an ensemble adds `ensemble.json`, training adds its
history and dynamics). Every file is written atomically."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fitclass.atomic import follow_umask, replace_dir
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import (
    CHECKPOINTS,
    CV,
    DATA_CHECKS,
    DECISION,
    DYNAMICS,
    ENSEMBLE,
    ENVIRONMENT,
    HISTORY,
    LABELS,
    METRICS,
    NOISE_CHANGES,
    OOF,
    OOF_PROBS,
    RECIPE,
    REFIT_INFO,
    SELF_TRAINING,
    VALID_PREDICTIONS,
    VALID_PROBS,
)

if TYPE_CHECKING:
    from fitclass.decide.decision import Decision
    from fitclass.models.base import Classifier
    from fitclass.recipe import Recipe


@dataclass
class RunRecord:
    """What a finished run holds: the model, its classes, decision, validation metrics and
    predictions, and what was trained on (the data fingerprint, when known)."""

    recipe: Recipe
    classifier: Classifier
    classes: list[str]
    train_counts: np.ndarray
    decision: Decision
    metrics: dict[str, Any]  # holds `warnings` (degenerate model) and `select`
    valid_predictions: pd.DataFrame
    valid_probs: np.ndarray  # uncalibrated validation probabilities
    valid_targets: np.ndarray
    data_fingerprint: str | None = None
    history: pd.DataFrame | None = None  # one row per evaluation (training only)
    dynamics: pd.DataFrame | None = None  # per-row training dynamics (training only)
    ensemble: dict[str, Any] | None = None  # combiner and members (ensembles only)
    crossval: CrossValRecord | None = None  # out-of-fold rows and scores (--folds only)


@dataclass
class CrossValRecord:
    """What a cross-validation run adds: every labelled row's out-of-fold prediction
    (`oof.csv`), its out-of-fold probabilities (`oof_probs.safetensors`) and the scores over
    folds (`cv.json`)."""

    predictions: pd.DataFrame
    arrays: dict[str, np.ndarray]
    scores: dict[str, Any]


def write_recipe(run: RunDir, recipe: Recipe) -> None:
    """The resolved recipe: a run can be reproduced from its own folder."""
    run.write_text(RECIPE, recipe.to_yaml())


def write_environment(run: RunDir, seed: int, precision: str = "fp32") -> None:
    """Package versions, device and compute precision, seed and git revision the run was
    made with."""
    from fitclass.environment import describe_environment

    run.write_json(ENVIRONMENT, describe_environment(seed, precision))


def record_batching(run: RunDir, batching: dict[str, Any] | None) -> None:
    """Add how training batched its rows (packed or padded, and why) to the environment
    record; known only once the model is built, after the run started."""
    if batching is None:
        return
    run.write_json(ENVIRONMENT, {**run.read_json(ENVIRONMENT), "batching": batching})


def write_start(run: RunDir, recipe: Recipe) -> None:
    """The files a run has from its start: its recipe and environment."""
    write_recipe(run, recipe)
    write_environment(run, recipe.train.seed, recipe.train.precision)


def write_data_checks(run: RunDir, report: dict[str, Any]) -> None:
    run.write_json(DATA_CHECKS, report)


def write_noise_changes(run: RunDir, changes: pd.DataFrame) -> str:
    """The rows `noise.action` dropped or relabelled; returns the file's name (for logs)."""
    run.write_csv(NOISE_CHANGES, changes)
    return NOISE_CHANGES


def write_self_training(run: RunDir, rounds: Any) -> None:
    run.write_json(SELF_TRAINING, rounds)


def save_model(run: RunDir, classifier: Classifier) -> None:
    """The model, saved to a staging folder and moved into place whole."""
    staged = run.path / ".model.staging"
    if staged.exists():
        shutil.rmtree(staged)
    classifier.save(staged)
    follow_umask(staged)
    replace_dir(staged, run.model_dir)


def write_record(run: RunDir, record: RunRecord) -> None:
    """Write everything a finished run holds (the caller then marks it finished).
    `metrics.json` comes last: a run that has it wrote all the rest."""
    save_model(run, record.classifier)
    labels: dict[str, Any] = {"task": record.recipe.task, "classes": list(record.classes),
                              "train_counts": np.asarray(record.train_counts).tolist()}
    if record.data_fingerprint is not None:
        labels["data_fingerprint"] = record.data_fingerprint
    run.write_json(LABELS, labels)
    run.write_json(DECISION, record.decision.to_dict())
    if record.history is not None:
        run.write_csv(HISTORY, record.history)
    if record.dynamics is not None:
        run.write_csv(DYNAMICS, record.dynamics)
    if record.ensemble is not None:
        run.write_json(ENSEMBLE, record.ensemble)
    if record.crossval is not None:
        run.write_csv(OOF, record.crossval.predictions)
        run.write_arrays(OOF_PROBS, record.crossval.arrays)
        run.write_json(CV, record.crossval.scores)
    run.write_csv(VALID_PREDICTIONS, record.valid_predictions)
    run.write_arrays(VALID_PROBS, {"raw": record.valid_probs, "targets": record.valid_targets})
    run.write_json(METRICS, record.metrics)


def write_refit_info(run: RunDir, info: dict[str, Any]) -> None:
    """A refit run's `refit.json`, written when it starts: where its schedule, decision and
    expected score come from (it has no validation rows to fit or measure them on)."""
    run.write_json(REFIT_INFO, info)


def drop_checkpoints(run: RunDir) -> None:
    """A finished run's checkpoints are spent: the best is in model/."""
    shutil.rmtree(run.path / CHECKPOINTS, ignore_errors=True)
