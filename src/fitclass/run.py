"""A finished run, loaded: predict and evaluate with the saved model and recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitclass import rundir
from fitclass.data import checks
from fitclass.data.prepare import read_inputs, read_labelled, scoring_config
from fitclass.data.table import Label, TextInput, TextTable, build_table
from fitclass.decide.decision import Decision
from fitclass.errors import RecipeError, RunError
from fitclass.models.base import MODEL_INFO, Classifier
from fitclass.models.loading import read_model_info
from fitclass.models.registry import load_classifier
from fitclass.recipe import Recipe, load_recipe
from fitclass.tasks import Task, make_task

Inputs = Sequence[TextInput] | pd.DataFrame | str | Path


class Run:
    """A run directory with its recipe, classes, metrics and (lazily loaded) model."""

    def __init__(self, path: str | Path) -> None:
        self.dir = rundir.RunDir(path)
        self.path = self.dir.path
        if not self.dir.file(rundir.STATUS).is_file():
            raise RunError(f"{self.path}: not a fitclass run directory (no status.json)")
        status = rundir.read_status(self.dir)["status"]
        if status != "finished":
            raise RunError(f"{self.path}: not a finished run (status: {status}); "
                           f"finish it with `fitclass train --resume {self.path}`")
        self.recipe: Recipe = self._read_recipe()
        self.class_names: list[str] = rundir.read_labels(self.dir)["classes"]
        # labels.json and the model's own saved names must agree before anything predicts
        # (a run without model/, such as a DDP worker's scratch copy, is checked on use)
        if self.dir.model_dir.exists():
            model_info = read_model_info(self.dir.model_dir)
            rundir.check_same_classes(self.dir.file(rundir.LABELS), self.class_names,
                                      self.dir.model_dir / MODEL_INFO, model_info["class_names"])
        self.task: Task = make_task(self.recipe.task, self.class_names)
        self.decision: Decision = self._read_decision()
        self._classifier: Classifier | None = None

    def _read_recipe(self) -> Recipe:
        """The run's own recipe: it loaded when the run was trained, so failing now means
        the file changed since (a damaged run, not a recipe to fix)."""
        path = self.dir.file(rundir.RECIPE)
        if not path.is_file():
            raise rundir.damaged(path, "is missing")
        try:
            return load_recipe(path)
        except RecipeError as error:
            raise rundir.damaged(path, f"no longer loads ({error})") from None

    def _read_decision(self) -> Decision:
        path = self.dir.file(rundir.DECISION)
        if not path.is_file():
            return self.task.default_decision()
        return rundir.read_decision(path, len(self.class_names))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            self._classifier = load_classifier(self.dir.model_dir, self.class_names,
                                               self.dir.file(rundir.LABELS))
        return self._classifier

    @property
    def metrics(self) -> dict[str, Any]:
        """Validation metrics of the selected model (`metrics.json`)."""
        return rundir.read_metrics(self.dir)

    def _table(self, inputs: Inputs, *, need_labels: bool) -> TextTable:
        if isinstance(inputs, str | Path):
            path = Path(inputs)
            # a file to score need not carry the recipe's id column (row index instead)
            read = read_labelled if need_labels else read_inputs
            return read(path, self.recipe.data, optional_id=True)
        if isinstance(inputs, pd.DataFrame) and self.recipe.data.images is not None:
            raise RunError(f"{self.path}: an image run predicts on an image folder, a table "
                           f"file of image paths, or a list of image paths; not a DataFrame")
        if isinstance(inputs, pd.DataFrame):
            config = scoring_config(list(inputs.columns), self.recipe.data)
            checks.check_columns(inputs, "frame", config, need_labels=need_labels)
            report = checks.CheckReport()
            report.add(checks.check_texts(inputs, "frame", config.text_columns))
            if need_labels and isinstance(config.label, list):
                report.add(checks.check_binary_labels(inputs, "frame", config.label))
            elif need_labels and not config.multilabel:
                report.add(checks.check_labels(inputs, "frame", config.label_columns[0]))
            report.raise_errors()
            with_labels = all(c in inputs.columns for c in config.label_columns)
            return build_table(inputs.reset_index(drop=True), "frame", config,
                               with_labels=with_labels)
        texts = list(inputs)
        return TextTable(source="texts", frame=pd.DataFrame({"text": texts}), texts=texts,
                         labels=None, ids=[str(i) for i in range(len(texts))])

    def predict_proba(self, inputs: Inputs, batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities (the run's temperature and prior correction applied)."""
        texts = self._table(inputs, need_labels=False).texts
        return self.decision.calibrate(self.classifier.predict_proba(texts, batch_size))

    def engine(self, name: str = "torch") -> Classifier:
        """The model for `name`: `torch` (the saved run) or `onnx` (its exported graph, int8
        when exported so; see `fitclass export`)."""
        if name == "torch":
            return self.classifier
        if name in ("onnx", "onnx-fp32", "onnx-int8"):
            from fitclass.export import onnx_classifier

            quantized = {"onnx": None, "onnx-fp32": False, "onnx-int8": True}[name]
            return onnx_classifier(self, quantized)
        raise RunError(f"engine {name!r}: choose torch, onnx, onnx-fp32 or onnx-int8")

    def predict(self, inputs: Inputs, batch_size: int = 64,
                engine: str = "torch") -> pd.DataFrame:
        """One row per input: its id (or row index), the predicted `label` (multi-label:
        `labels`, names joined with '|'), and `prob:<class>` per class."""
        table = self._table(inputs, need_labels=False)
        probs = self.engine(engine).predict_proba(table.texts, batch_size)
        return prediction_frame(table, probs, self.task, self.decision)

    def evaluate(self, inputs: Inputs, batch_size: int = 64,
                 use_decision: bool = True) -> dict[str, Any]:
        """The metrics dict (same keys as `metrics.json`) on a labelled file or frame;
        `use_decision=False` scores argmax / 0.5 thresholds on uncalibrated probabilities."""
        table = self._table(inputs, need_labels=True)
        probs = self.classifier.predict_proba(table.texts, batch_size)
        decision = self.decision if use_decision else self.task.default_decision()
        return self.task.metrics(table.targets(self.class_names), probs, decision)


def prediction_frame(table: TextTable, probs: np.ndarray, task: Task,
                     decision: Decision) -> pd.DataFrame:
    """The predict output layout, shared by `predict` and `valid_predictions.csv`."""
    return predictions_for(table.ids, table.id_column, table.labels, probs, task, decision)


def predictions_for(ids: list[str], id_column: str, labels: list[Label] | None,
                    probs: np.ndarray, task: Task, decision: Decision) -> pd.DataFrame:
    """id, true label(s) when known, predicted label(s), then calibrated `prob:<class>`."""
    calibrated = decision.calibrate(probs)
    frame = pd.DataFrame({id_column: ids})
    column = "labels" if task.multilabel else "label"
    if labels is not None:
        frame[f"true_{column}"] = [label if isinstance(label, str) else "|".join(label)
                                   for label in labels]
    frame[column] = task.label_strings(decision.predict(calibrated))
    for i, name in enumerate(task.class_names):
        frame[f"prob:{name}"] = calibrated[:, i]
    return frame


def load_run(path: str | Path) -> Run:
    """Open a finished run directory."""
    if not Path(path).is_dir():
        raise RunError(f"{path}: no such run directory")
    return Run(path)
