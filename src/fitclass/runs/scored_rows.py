"""A run's scored rows and the intervals of its metrics.

`ScoredRows` pairs the ids of labelled rows with what a run made of them (`Scored`: targets,
calibrated probabilities, its decision's predictions), read back from the run's own
`valid_predictions.csv` or predicted on a labelled file. `metrics.json` records a bootstrap
interval over these rows for every headline metric (`intervals`), and an ensemble the
t interval across its members' own scores (`intervals_across_members`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fitclass.data.table import TextTable
from fitclass.decide.decision import Decision
from fitclass.errors import RunError
from fitclass.files import damaged
from fitclass.runs import readers
from fitclass.runs.layout import VALID_PREDICTIONS
from fitclass.tasks import Task
from fitclass.uncertainty.bootstrap import REPLICATES, metric_intervals
from fitclass.uncertainty.intervals import t_interval
from fitclass.uncertainty.scored import Scored

if TYPE_CHECKING:
    from fitclass.runs.run import Inputs, Run

#: The scalar metrics that get an interval wherever they are shown (those a task has).
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1",
            "samples_f1", "subset_accuracy", "hamming_loss", "lrap", "pr_auc_macro",
            "roc_auc_macro", "log_loss")


@dataclass(frozen=True)
class ScoredRows:
    """Labelled rows by id, as one run scored them; `source` names where they came from."""

    ids: list[str]
    scored: Scored
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def scored_from(task: Task, targets: np.ndarray, raw_probs: np.ndarray,
                decision: Decision) -> Scored:
    """What `metrics.json` is computed from: the decision's calibration and predictions (on
    the rows a `decision.optimize` fit was made on, their cross-fitted predictions, as in
    `Task.metrics`)."""
    calibrated = decision.calibrate(raw_probs)
    return Scored(np.asarray(targets), calibrated, decision.predictions_on(targets, raw_probs),
                  task.kind)


def scored_metrics(task: Task, targets: np.ndarray, raw_probs: np.ndarray,
                   decision: Decision) -> tuple[dict[str, Any], Scored]:
    """`task.metrics(targets, raw_probs, decision)` and the `Scored` rows its intervals
    resample, from one calibration and one set of predictions."""
    calibrated = decision.calibrate(raw_probs)
    predictions = decision.predictions_on(targets, raw_probs)
    metrics = task.score(targets, calibrated, predictions)
    return metrics, Scored(np.asarray(targets), calibrated, predictions, task.kind)


def headline_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline metrics a metrics dict holds a number for."""
    return {k: float(metrics[k]) for k in HEADLINE
            if isinstance(metrics.get(k), float | int) and np.isfinite(metrics[k])}


def row_intervals(scored: Scored, metrics: dict[str, Any], *, replicates: int = REPLICATES,
                  seed: int = 0) -> dict[str, dict[str, Any]]:
    """`metrics.json`'s `intervals`: a percentile bootstrap interval over the rows around
    each headline value of `metrics` (computed on `scored`)."""
    found = metric_intervals(scored, headline_values(metrics), replicates=replicates,
                             seed=seed)
    return {name: interval.to_dict() for name, interval in found.items()}


def across_members(member_metrics: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`metrics.json`'s `intervals_across_members`: the mean and t interval of each headline
    metric over the members' own scores (how much one run of the recipe varies)."""
    values = [headline_values(m) for m in member_metrics]
    shared = [k for k in HEADLINE if values and all(k in v for v in values)]
    if len(values) < 2:
        return {}
    return {k: t_interval([v[k] for v in values]).to_dict() for k in shared}


def label_targets(values: Sequence[Any], task: Task, source: str) -> np.ndarray:
    """Label cells as written in a predictions file (names; multi-label joined with '|') to
    the task's targets; a name outside the classes is an error naming `source`."""
    labels = [task.kind.parse_label(v) for v in values]
    table = TextTable(source=source, frame=pd.DataFrame(), texts=[""] * len(labels),
                      labels=labels, ids=[str(i) for i in range(len(labels))])
    return table.targets(task.class_names)


def saved_rows(run: Run) -> ScoredRows:
    """The run's validation rows as it scored them (`valid_predictions.csv`: true and
    predicted labels, calibrated probabilities)."""
    frame = readers.read_valid_predictions(run.dir)
    path = run.dir.file(VALID_PREDICTIONS)
    column = run.task.label_column
    wanted = [f"true_{column}", column, *(f"prob:{name}" for name in run.class_names)]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise damaged(path, f"lacks the columns {missing[:5]}")
    probs = frame[wanted[2:]].to_numpy(dtype=float)
    scored = Scored(label_targets(frame[wanted[0]].tolist(), run.task, str(path)), probs,
                    label_targets(frame[column].tolist(), run.task, str(path)), run.task.kind)
    return ScoredRows(frame[frame.columns[0]].astype(str).tolist(), scored, str(path))


def file_rows(run: Run, inputs: Inputs, *, text_column: str | list[str] | None = None,
              overrides: Sequence[str] | None = None, batch_size: int = 64) -> ScoredRows:
    """A labelled file's rows as `run` scores them (its decision applied; rows that cannot
    be predicted are left out, as `evaluate` does)."""
    ids, targets, raw = run.labelled_probabilities(inputs, batch_size, text_column=text_column,
                                                   overrides=overrides)
    return ScoredRows(ids, scored_from(run.task, targets, raw, run.decision),
                      str(inputs) if isinstance(inputs, str | Path) else "the given rows")


def aligned(first: ScoredRows, second: ScoredRows, fix: str) -> ScoredRows:
    """`second` in `first`'s row order; refused, naming both and `fix`, unless both hold
    the same ids with the same labels."""
    if len(set(second.ids)) != len(second.ids) or len(set(first.ids)) != len(first.ids):
        raise RunError(f"{first.source} / {second.source}: row ids repeat, so rows cannot "
                       f"be matched; {fix}")
    position = {row_id: i for i, row_id in enumerate(second.ids)}
    unmatched = [row_id for row_id in first.ids if row_id not in position]
    if unmatched or len(first.ids) != len(second.ids):
        raise RunError(f"{second.source} holds different rows than {first.source} "
                       f"({len(first.ids)} vs {len(second.ids)} rows; e.g. id "
                       f"{(unmatched or sorted(set(second.ids) - set(first.ids)))[:1]} is in "
                       f"only one); {fix}")
    order = np.array([position[row_id] for row_id in first.ids], dtype=int)
    reordered = ScoredRows(first.ids, second.scored.take(order), second.source)
    if not first.scored.same_rows(reordered.scored):
        differs = np.flatnonzero(np.any(
            (first.scored.targets != reordered.scored.targets).reshape(len(first), -1), axis=1))
        raise RunError(f"{second.source} labels row {first.ids[int(differs[0])]!r} otherwise "
                       f"than {first.source} ({len(differs)} rows differ); {fix}")
    return reordered
