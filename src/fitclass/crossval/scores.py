"""Out-of-fold probabilities and the scores over folds.

Each labelled row is predicted by the fold runs that held it out (the mean over seeds of
their models' raw probabilities), so no row is scored by a model that trained on it, nor by a
decision fitted on it: the fold runs' own decisions (fitted on their fold) are not applied.
The cross-validation run averages the same raw outputs (`member_output: raw`), so its one
decision, and a refit's, is fitted on these.

Decisions are cross-fitted for scoring: the rows of fold k are decided by the decision
fitted on the out-of-fold rows of the other folds, so no reported number comes from a
decision fitted on its own rows. The score of every metric over folds is the mean of the K
fold scores with Student's t interval (`uncertainty.intervals.t_interval`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitclass.data.table import TextTable
from fitclass.decide.decision import Decision
from fitclass.errors import RunError
from fitclass.runs import readers
from fitclass.runs.run import Run
from fitclass.tasks import Task
from fitclass.uncertainty.intervals import t_interval


@dataclass
class OutOfFold:
    """Every labelled row's out-of-fold probabilities, its fold and target."""

    rows: TextTable
    class_names: list[str]
    folds: np.ndarray  # the fold of each row
    targets: np.ndarray
    probs: np.ndarray  # the fold runs' raw probabilities, mean over seeds

    @property
    def k(self) -> int:
        return int(self.folds.max()) + 1


def _member_probs(run: Run, expected_ids: list[str], class_names: list[str]) -> np.ndarray:
    """A fold run's raw probabilities of its validation rows, checked to be exactly the rows
    of its fold."""
    if run.class_names != class_names:
        raise RunError(f"{run.path}: classes {run.class_names} differ from the cross-"
                       f"validation's {class_names}; rerun it with --overwrite")
    frame = readers.read_valid_predictions(run.dir)
    ids = frame.iloc[:, 0].astype(str).tolist()
    if ids != expected_ids:
        raise RunError(f"{run.path}: validated on other rows than its fold holds now (the "
                       f"data or data.split changed since it trained); rerun the cross-"
                       f"validation with --overwrite")
    raw = readers.read_valid_arrays(run.dir).get("raw")
    if raw is None or raw.shape != (len(ids), len(class_names)):
        raise RunError(f"{run.path}: its validation probabilities are missing or do not fit "
                       f"its {len(ids)} rows; rerun it with --overwrite")
    return raw.astype(float)


def gather(rows: TextTable, class_names: list[str], folds: np.ndarray,
           members: dict[int, list[Run]]) -> OutOfFold:
    """The out-of-fold probabilities of every row from the fold runs (`members[k]`: fold k's
    runs, one per seed)."""
    probs = np.full((len(rows), len(class_names)), np.nan)
    for fold, runs in members.items():
        held = np.flatnonzero(folds == fold)
        expected = [rows.ids[i] for i in held]
        probs[held] = np.mean([_member_probs(run, expected, class_names) for run in runs],
                              axis=0)
    if np.isnan(probs).any():
        raise RunError("cross-validation: some rows have no out-of-fold prediction; every "
                       "fold needs a finished run")
    return OutOfFold(rows, class_names, folds, rows.targets(class_names), probs)


def cross_fitted(task: Task, config: Any, oof: OutOfFold
                 ) -> tuple[np.ndarray, np.ndarray, list[Decision]]:
    """Calibrated probabilities and predictions of every row, each fold's rows by the
    decision fitted (`Task.fit_decision`) on the other folds' out-of-fold rows."""
    calibrated = np.empty_like(oof.probs)
    predictions: np.ndarray | None = None
    decisions = []
    for fold in range(oof.k):
        held = oof.folds == fold
        others = ~held
        decision = task.fit_decision(config, oof.targets[others], oof.probs[others],
                                     task.class_priors(oof.targets[others]))
        calibrated[held] = decision.calibrate(oof.probs[held])
        decided = decision.predict(calibrated[held])
        if predictions is None:
            predictions = np.empty((len(oof.probs), *decided.shape[1:]), dtype=decided.dtype)
        predictions[held] = decided
        decisions.append(decision)
    assert predictions is not None
    return calibrated, predictions, decisions


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics that are one finite number (not `n`, not per-class tables)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, float | int) and not isinstance(v, bool) and k != "n"
            and math.isfinite(float(v))}


def fold_scores(task: Task, oof: OutOfFold, calibrated: np.ndarray,
                predictions: np.ndarray) -> list[dict[str, float]]:
    """Every scalar metric of each fold's rows (cross-fitted decisions)."""
    return [scalars(task.score(oof.targets[held], calibrated[held], predictions[held]))
            for held in (oof.folds == fold for fold in range(oof.k))]


def intervals(per_fold: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """{metric: mean over folds with its 95% t interval} for metrics every fold has."""
    shared = set.intersection(*(set(scores) for scores in per_fold))
    return {name: t_interval([scores[name] for scores in per_fold]).to_dict()
            for name in sorted(shared)}


def best_epoch(run: Run) -> float:
    """The epoch of the run's selected checkpoint (its last evaluated epoch when none was
    selected, the recipe's epoch count without a history)."""
    history = readers.read_history(run.dir)
    fallback = float(run.recipe.train.total_epochs)
    if history is None or not len(history) or "epoch" not in history.columns:
        return fallback
    step = run.metrics.get("select", {}).get("step")
    chosen = history[history["step"] == step] if step is not None else history.iloc[0:0]
    row = chosen.iloc[-1] if len(chosen) else history.iloc[-1]
    epoch = float(row["epoch"])
    return epoch if math.isfinite(epoch) and epoch > 0 else fallback


def median_epochs(epochs: Sequence[float]) -> int:
    """Whole epochs for a refit: the median best epoch, rounded up, at least 1."""
    return max(1, math.ceil(statistics.median(epochs) - 1e-9))
