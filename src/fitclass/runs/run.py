"""A finished run, loaded: predict and evaluate with the saved model and recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitclass.contracts.model import RunAccess
from fitclass.data import scoring
from fitclass.data.table import Label, TextInput, TextTable
from fitclass.decide.decision import Decision
from fitclass.errors import DataError, RecipeError, RunError
from fitclass.files import check_same_classes, damaged
from fitclass.models.base import MODEL_INFO, Classifier
from fitclass.models.catalog import load_classifier
from fitclass.models.loading import read_model_info
from fitclass.precision import Policy, make_policy
from fitclass.recipe import DataConfig, Recipe, load_recipe
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import RECIPE, is_run, not_a_run
from fitclass.runs.members import check_no_cycle
from fitclass.runs.scored_rows import row_intervals, scored_metrics
from fitclass.tasks import Task, make_task

Inputs = Sequence[TextInput | None] | pd.DataFrame | str | Path


class Run:
    """A run directory with its recipe, classes, metrics and (lazily loaded) model."""

    def __init__(self, path: str | Path, *, device: str | None = None,
                 precision: str | None = None) -> None:
        self.dir = RunDir(path)
        self.path = self.dir.path
        if not is_run(self.path):
            raise not_a_run(self.path)
        status = self.dir.status()  # a `running` run whose process is gone reads `interrupted`
        if status != "finished":
            raise RunError(f"{self.path}: not a finished run (status: {status}); "
                           f"{unfinished_hint(self.dir, status)}")
        self.recipe: Recipe = self._read_recipe()
        self.class_names: list[str] = readers.read_labels(self.dir)["classes"]
        # labels.json and the model's own saved names must agree before anything predicts
        # (a run without model/, such as a DDP worker's scratch copy, is checked on use)
        if self.dir.model_dir.exists():
            model_info = read_model_info(self.dir.model_dir)
            check_same_classes(readers.labels_path(self.dir), self.class_names,
                               self.dir.model_dir / MODEL_INFO, model_info["class_names"])
        self.task: Task = make_task(self.recipe.task, self.class_names)
        self.decision: Decision = self._read_decision()
        self._classifier: Classifier | None = None
        #: Where and how the model runs: `device` (default auto: the accelerator when there
        #: is one) and `precision` (default the run's `train.precision`).
        self.policy: Policy = make_policy(precision or self.recipe.train.precision, device)

    def _read_recipe(self) -> Recipe:
        """The run's own recipe: it loaded when the run was trained, so failing now means
        the file changed since (a damaged run, not a recipe to fix)."""
        path = self.dir.file(RECIPE)
        if not path.is_file():
            raise damaged(path, "is missing")
        try:
            return load_recipe(path)
        except RecipeError as error:
            raise damaged(path, f"no longer loads ({error})") from None

    def _read_decision(self) -> Decision:
        decision = readers.read_decision(self.dir, len(self.class_names))
        return self.task.default_decision() if decision is None else decision

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            classifier = load_classifier(self.dir.model_dir, self.class_names,
                                         readers.labels_path(self.dir), RUNS)
            check_no_cycle(self.path)  # an ensemble would recurse forever into itself
            classifier.use(self.policy)
            self._classifier = classifier
        return self._classifier

    @property
    def model_dir(self) -> Path:
        """The saved model's folder (`model/`)."""
        return self.dir.model_dir

    @property
    def metrics(self) -> dict[str, Any]:
        """Validation metrics of the selected model (`metrics.json`)."""
        return readers.read_metrics(self.dir)

    def scoring_data(self, text_column: str | list[str] | None = None,
                     overrides: Sequence[str] | None = None) -> DataConfig:
        """The recipe's `data` section adapted to a scored file's layout (see `predict`)."""
        if text_column is None and not overrides:
            return self.recipe.data
        return scoring.scoring_data(self.recipe.data, text_column=text_column,
                                    overrides=overrides)

    def _table(self, inputs: Inputs, *, need_labels: bool, keep_unusable: bool = False,
               data: DataConfig | None = None) -> TextTable:
        """Every input row (empty texts included); rows that cannot be predicted (bad images
        under `on_bad_image: skip`) only with `keep_unusable`."""
        data = data or self.recipe.data
        # an image model's side: the checks' scan then decodes the pixels it predicts from
        side = self.classifier.pixel_side() if data.images is not None else None
        table = scoring.scoring_table(inputs, data, need_labels=need_labels, pixel_side=side)
        if keep_unusable:
            return table
        return rows_of(table, scoring.usable_rows(table))

    def _probabilities(self, table: TextTable, classifier: Classifier,
                       batch_size: int) -> np.ndarray:
        """Uncalibrated probabilities, NaN for rows that cannot be predicted."""
        rows = scoring.usable_rows(table)
        probs = np.full((len(table), len(self.class_names)), np.nan)
        if rows:
            probs[rows] = classifier.predict_proba([table.texts[i] for i in rows], batch_size)
        return probs

    def predict_proba(self, inputs: Inputs, batch_size: int = 64, *,
                      text_column: str | list[str] | None = None,
                      overrides: Sequence[str] | None = None,
                      model: Classifier | None = None) -> np.ndarray:
        """Calibrated probabilities (the run's temperature and prior correction applied), one
        row per input; NaN for an input that cannot be predicted (see `predict`). `model`
        predicts in place of the run's own (an ensemble's ONNX engine: a member's graph)."""
        data = self.scoring_data(text_column, overrides)
        table = self._table(inputs, need_labels=False, keep_unusable=True, data=data)
        probs = self._probabilities(table, self.classifier if model is None else model,
                                    batch_size)
        rows = scoring.usable_rows(table)
        probs[rows] = self.decision.calibrate(probs[rows])
        return probs

    def model_proba(self, texts: Sequence[TextInput], batch_size: int = 64,
                    model: Classifier | None = None) -> np.ndarray:
        """The model's own probabilities of `texts` (usable inputs only), before the run's
        decision calibrates them: what a cross-validation run averages over its folds.
        `model` predicts in place of the run's own (as in `predict_proba`)."""
        return (self.classifier if model is None else model).predict_proba(list(texts),
                                                                          batch_size)

    def engine(self, name: str = "torch") -> Classifier:
        """The model for `name`: `torch` (the saved run) or `onnx` (its exported graph, int8
        when exported so; an ensemble's members' graphs, combined as the ensemble does; see
        `fitclass export`)."""
        if name == "torch":
            return self.classifier
        if name in ("onnx", "onnx-fp32", "onnx-int8"):
            from fitclass.runs.onnx_engine import onnx_engine

            quantized = {"onnx": None, "onnx-fp32": False, "onnx-int8": True}[name]
            return onnx_engine(self.path, self.model_dir, lambda: self.classifier, quantized)
        raise RunError(f"engine {name!r}: choose torch, onnx, onnx-fp32 or onnx-int8")

    def predict(self, inputs: Inputs, batch_size: int = 64, engine: str = "torch", *,
                text_column: str | list[str] | None = None,
                overrides: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per input, in input order: its id (or row index), the predicted `label`
        (multi-label: `labels`, names joined with '|'), and `prob:<class>` per class.

        Empty texts are predicted (a `DataWarning` names their rows). Image runs add an
        `error` column: under `data.on_bad_image: skip` an unreadable image keeps its row with
        the reason there, an empty label and NaN probabilities. `text_column` names the text
        column of a file laid out apart from training; `overrides` (`--set` syntax) sets
        `data.text`, `data.id`, `data.label`, `data.quoting`... (see docs/recipe.md)."""
        data = self.scoring_data(text_column, overrides)
        table = self._table(inputs, need_labels=False, keep_unusable=True, data=data)
        probs = self._probabilities(table, self.engine(engine), batch_size)
        rows = scoring.usable_rows(table)
        predicted = prediction_frame(rows_of(table, rows), probs[rows], self.task,
                                     self.decision)
        if data.images is None:
            return predicted
        return with_unpredicted_rows(predicted, table, rows)

    def evaluate(self, inputs: Inputs, batch_size: int = 64, use_decision: bool = True, *,
                 text_column: str | list[str] | None = None,
                 overrides: Sequence[str] | None = None) -> dict[str, Any]:
        """The metrics dict (same keys as `metrics.json`) on a labelled file or frame, plus
        `skipped_rows`: ids of rows without a prediction (bad images under `on_bad_image:
        skip`), which are not scored. Empty texts are scored like any other row.
        `use_decision=False` scores argmax / 0.5 thresholds on uncalibrated probabilities.
        `compute` records the device and precision the model ran in; `intervals` a
        bootstrap 95% interval over the rows for each headline metric."""
        table, skipped = self._labelled_rows(inputs, text_column, overrides)
        probs = self.classifier.predict_proba(table.texts, batch_size)
        decision = self.decision if use_decision else self.task.default_decision()
        targets = table.targets(self.class_names)
        metrics, scored = scored_metrics(self.task, targets, probs, decision)
        intervals = row_intervals(scored, metrics)
        return {**metrics, "intervals": intervals, "skipped_rows": skipped,
                "compute": self.policy.describe()}

    def labelled_probabilities(self, inputs: Inputs, batch_size: int = 64, *,
                               text_column: str | list[str] | None = None,
                               overrides: Sequence[str] | None = None
                               ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Ids, targets and uncalibrated probabilities of a labelled file's predictable
        rows (what `evaluate` scores)."""
        table, _ = self._labelled_rows(inputs, text_column, overrides)
        probs = self.classifier.predict_proba(table.texts, batch_size)
        return table.ids, table.targets(self.class_names), probs

    def _labelled_rows(self, inputs: Inputs, text_column: str | list[str] | None,
                       overrides: Sequence[str] | None) -> tuple[TextTable, list[str]]:
        """The predictable rows of a labelled file, and the ids of those that are not."""
        data = self.scoring_data(text_column, overrides)
        table = self._table(inputs, need_labels=True, keep_unusable=True, data=data)
        rows = scoring.usable_rows(table)
        if not rows:
            raise DataError(f"{table.source}: none of its {len(table)} rows can be predicted "
                            f"(see the warnings above); nothing to score")
        skipped = [table.ids[i] for i in sorted(set(range(len(table))) - set(rows))]
        return rows_of(table, rows), skipped


def rows_of(table: TextTable, rows: list[int]) -> TextTable:
    """The table's `rows` (the table itself when that is every row)."""
    return table if len(rows) == len(table) else table.subset(np.array(rows, dtype=int))


def with_unpredicted_rows(predicted: pd.DataFrame, table: TextTable,
                          rows: list[int]) -> pd.DataFrame:
    """`predicted` (the usable `rows` of `table`) spread back over every row of `table`:
    the others keep their id (and true label), an empty label, NaN probabilities, and their
    reason in `error`."""
    full = predicted.set_axis(rows).reindex(range(len(table)))
    full[table.id_column] = table.ids
    for column in ("label", "labels"):
        if column in full.columns:
            full[column] = full[column].fillna("")
        if f"true_{column}" in full.columns and table.labels is not None:
            full[f"true_{column}"] = label_strings(table.labels)
    full["error"] = scoring.row_errors(table)
    return full.reset_index(drop=True)


def prediction_frame(table: TextTable, probs: np.ndarray, task: Task,
                     decision: Decision) -> pd.DataFrame:
    """The predict output layout, shared by `predict` and `valid_predictions.csv`."""
    return predictions_for(table.ids, table.id_column, table.labels, probs, task, decision)


def predictions_for(ids: list[str], id_column: str, labels: list[Label] | None,
                    probs: np.ndarray, task: Task, decision: Decision) -> pd.DataFrame:
    """id, true label(s) when known, predicted label(s), then calibrated `prob:<class>`."""
    calibrated = decision.calibrate(probs)
    frame = pd.DataFrame({id_column: ids})
    column = task.label_column
    if labels is not None:
        frame[f"true_{column}"] = label_strings(labels)
    frame[column] = task.label_strings(decision.predict(calibrated))
    for i, name in enumerate(task.class_names):
        frame[f"prob:{name}"] = calibrated[:, i]
    return frame


def label_strings(labels: list[Label]) -> list[str]:
    """Class names; a multi-label row's names joined with '|'."""
    return [label if isinstance(label, str) else "|".join(label) for label in labels]


def unfinished_hint(run: RunDir, status: str | None) -> str:
    """What makes an unfinished run usable: only what actually works for its state."""
    if status == "running":
        return "it is still training; wait for it to finish"
    crossval = run.crossval()
    if crossval is not None:
        return run.crossval_hint(crossval)
    if run.has_checkpoint():
        return run.continue_hint()
    error = readers.read_status(run).get("error")
    cause = f" ({error})" if error else ""
    return (f"it stopped before saving a checkpoint{cause}, so there is nothing to resume; "
            f"fix the cause and rerun the same `fitclass train ... --out {run.path}` command, "
            f"which replaces it")


def load_run(path: str | Path, *, device: str | None = None,
             precision: str | None = None) -> Run:
    """Open a finished run directory; its model runs on `device` (auto, cpu, cuda, cuda:N,
    mps; default auto) in `precision` (fp32, bf16, fp16; default its `train.precision`)."""
    if not Path(path).is_dir():
        raise RunError(f"{path}: no such run directory")
    return Run(path, device=device, precision=precision)


#: What classifiers made of runs (ensembles) get of this layer (`Classifier.bind_runs`).
RUNS = RunAccess(load=load_run, is_run=is_run)
