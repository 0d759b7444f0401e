"""A distillation's teacher: a finished run, its probabilities of the student's rows
(computed once through the run's own prediction path and cached in the student's run
folder), the unlabelled rows it scores, and its agreement with the student.

Probabilities are cached raw (the teacher model's own, before its decision) with a key over
the teacher run (path, status, labels) and the texts scored, so a resumed or rerun student
reuses them and any change to either scores again; the students of one `distil --seeds N`
call share them in memory (`shared_scores`), so the teacher scores each row set once. The
student learns from the teacher's calibrated probabilities (its decision's temperature and
prior correction applied): what `fitclass predict` reports as the teacher's probabilities.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fitclass.contracts.fit import TeacherTargets
from fitclass.data.fingerprint import texts_digest
from fitclass.data.prepare import PreparedData, read_inputs
from fitclass.data.readers import read_data_table
from fitclass.data.table import Label, TextTable
from fitclass.errors import DataError, RunError
from fitclass.recipe import DistilConfig, Recipe
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import STATUS, TEACHER_PROBS, is_run
from fitclass.runs.run import Run
from fitclass.tasks import Task
from fitclass.training.progress import Reporter

#: The row sets the teacher scores, as named in the cache file.
PARTS = ("train", "unlabelled", "valid")
#: The teacher probabilities scored or read while `shared_scores` is open, by cache key.
_SHARED: ContextVar[dict[str, dict[str, np.ndarray]] | None] = ContextVar(
    "fitclass_teacher_scores", default=None)


@contextmanager
def shared_scores() -> Iterator[None]:
    """While open, a student whose run folder lacks the teacher's probabilities takes them
    from an earlier student of the same call with the same cache key (the same teacher and
    texts), instead of scoring again: `distil --seeds N` scores the teacher once."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def open_teacher(path: Path) -> Run:
    """The teacher run; a folder that is not a finished run is refused, naming it."""
    if not path.exists():
        raise RunError(f"distil.teacher: {path} does not exist; give the folder `fitclass "
                       f"train`, `fitclass ensemble` or `fitclass train --folds` wrote (the "
                       f"teacher)")
    if not is_run(path):
        raise RunError(f"distil.teacher: {path} is not a fitclass run folder (no {STATUS}); "
                       f"give the folder `fitclass train`, `fitclass ensemble` or `fitclass "
                       f"train --folds` wrote (the teacher)")
    try:
        return Run(path)
    except RunError as error:
        raise RunError(f"distil.teacher: {error}") from None


def check_teacher(teacher: Run, recipe: Recipe, class_names: list[str]) -> None:
    """The student must learn the teacher's task over the teacher's classes."""
    if teacher.recipe.task != recipe.task:
        raise RunError(f"distil.teacher: {teacher.path} is a {teacher.recipe.task} run but the "
                       f"student's recipe says task: {recipe.task}; distil with the teacher's "
                       f"task")
    if teacher.class_names != class_names:
        raise DataError(f"distil.teacher: {teacher.path} predicts the classes "
                        f"{teacher.class_names} but the student's data ({recipe.data.train}) "
                        f"has {class_names}; distil on the data the teacher learned (drop "
                        f"--set data.* overrides), or train a teacher on this data first")


def read_unlabelled(path: Path, recipe: Recipe, valid_texts: set[Any]) -> TextTable:
    """The unlabelled table (its labels, if any, are ignored); rows whose text is also a
    validation row's are left out, so the student never learns a validation row."""
    if not path.is_file():
        raise DataError(f"distil.unlabelled: {path} does not exist; give a table (CSV, TSV, "
                        f"JSONL or Parquet) with the text column {recipe.data.text!r}")
    columns = list(read_data_table(path, recipe.data, limit=1).columns)
    missing = [c for c in recipe.data.text_columns if c not in columns]
    if missing:
        raise DataError(f"distil.unlabelled: {path} has no column {missing[0]!r} (its columns: "
                        f"{columns}); the teacher reads the text from data.text "
                        f"{recipe.data.text!r}: rename the file's text column to "
                        f"{missing[0]!r}")
    table = read_inputs(path, recipe.data, optional_id=True)
    keep = [i for i, text in enumerate(table.texts) if _key(text) not in valid_texts]
    return table.subset(np.asarray(keep, dtype=int))


def _key(text: Any) -> Any:
    return text if isinstance(text, str) else tuple(text)


def with_unlabelled(train: TextTable, unlabelled: TextTable,
                    labels: list[Label]) -> TextTable:
    """The training rows, then the unlabelled ones labelled `labels` (the teacher's
    predictions, which only class statistics and dynamics read: the loss gives these rows
    the distillation term alone), their ids marked `unlabelled:`."""
    return train.concat(unlabelled, labels=labels, id_prefix="unlabelled:")


@dataclass
class Teacher:
    """The teacher run, its raw probabilities of each row set and the settings."""

    run: Run
    config: DistilConfig
    probs: dict[str, np.ndarray]
    #: whether the probabilities came from the run folder's cache
    cached: bool = False
    #: the unlabelled rows scored (`distil.unlabelled`), validation texts left out
    unlabelled_table: TextTable | None = None

    def calibrated(self, part: str) -> np.ndarray:
        return self.run.decision.calibrate(self.probs[part])

    def predictions(self, part: str) -> np.ndarray:
        return self.run.task.decide(self.probs[part], self.run.decision)

    def labels_of(self, part: str) -> list[Label]:
        """The teacher's predicted labels of a row set, as table labels."""
        predicted = self.predictions(part)
        names = self.run.class_names
        if not self.run.task.multilabel:
            return [names[int(i)] for i in predicted]
        return [tuple(n for n, on in zip(names, row, strict=True) if on) for row in predicted]

    def fit_rows(self, train: TextTable) -> tuple[TextTable, TeacherTargets]:
        """The rows the student trains on (labelled, then unlabelled) with the teacher's
        calibrated probabilities of each and which have a hard label."""
        table, probs = train, self.calibrated("train")
        if self.unlabelled_table is not None and len(self.unlabelled_table):
            table = with_unlabelled(train, self.unlabelled_table, self.labels_of("unlabelled"))
            probs = np.concatenate([probs, self.calibrated("unlabelled")])
        labelled = np.arange(len(table)) < len(train)
        return table, TeacherTargets(probs=probs.astype(np.float32), labelled=labelled)

    def summary(self, task: Task, targets: np.ndarray, student: np.ndarray,
                student_metrics: dict[str, Any]) -> dict[str, Any]:
        """`metrics.json` `distillation`: the settings, the teacher's metrics on the same
        validation rows (its own decision), the agreement (share of rows where the student
        predicts the teacher's label, or label set) and the gap (student - teacher)."""
        teacher = self.predictions("valid")
        same = (student == teacher) if student.ndim == 1 else (student == teacher).all(1)
        measured = task.metrics(targets, self.probs["valid"], self.run.decision)
        scalars = {k: float(v) for k, v in measured.items()
                   if isinstance(v, float) and k != "n"}
        gap = {k: float(student_metrics[k]) - v for k, v in scalars.items()
               if isinstance(student_metrics.get(k), float)}
        return {"teacher": str(self.run.path), "alpha": self.config.alpha,
                "temperature": self.config.temperature,
                "unlabelled": None if self.config.unlabelled is None
                else str(self.config.unlabelled),
                "unlabelled_rows": len(self.probs["unlabelled"]),
                "teacher_probabilities": "cached" if self.cached else "computed",
                "agreement": float(same.mean()) if len(same) else None,
                "teacher_metrics": scalars, "gap": gap}


def cache_key(teacher: Run, texts: dict[str, list[Any]], class_names: list[str]) -> str:
    """sha256 over the teacher run (path, status record, labels) and the texts scored."""
    record = {"teacher": str(teacher.path.resolve()),
              "status": readers.read_status(teacher.dir),
              "labels": readers.read_labels(teacher.dir), "classes": class_names,
              "texts": {part: texts_digest(rows) for part, rows in texts.items()}}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _key_array(key: str) -> np.ndarray:
    """The key's bytes as numbers, stored beside the probabilities in one safetensors file
    (written atomically, so key and probabilities never disagree)."""
    return np.frombuffer(bytes.fromhex(key), dtype=np.uint8).astype(np.float32)


def cached_probs(run: RunDir, key: str, sizes: dict[str, int]) -> dict[str, np.ndarray] | None:
    """The cached probabilities when the run folder holds them for this key."""
    arrays = run.read_arrays(TEACHER_PROBS)
    stored = arrays.get("key")
    if stored is None or stored.shape != (32,) or not np.array_equal(stored, _key_array(key)):
        return None
    if any(part not in arrays or len(arrays[part]) != n for part, n in sizes.items()):
        return None
    return {part: arrays[part] for part in sizes}


def score(teacher: Run, texts: list[Any], batch_size: int, num_labels: int) -> np.ndarray:
    if not texts:
        return np.zeros((0, num_labels), dtype=np.float32)
    # float32 as cached, so a first run and a rerun from the cache learn the same targets
    return np.asarray(teacher.model_proba(texts, batch_size), dtype=np.float32)


def load_teacher(run: RunDir, recipe: Recipe, prepared: PreparedData,
                 reporter: Reporter) -> Teacher:
    """The teacher of `recipe.distil`, checked against the student's data, with its
    probabilities of the training, unlabelled and validation rows (cached in `run`)."""
    config = recipe.distil
    if config is None:
        raise ValueError("load_teacher needs a recipe with a distil section")
    teacher = open_teacher(config.teacher)
    check_teacher(teacher, recipe, prepared.class_names)
    unlabelled = None
    if config.unlabelled is not None:
        unlabelled = read_unlabelled(config.unlabelled, recipe,
                                     {_key(t) for t in prepared.valid.texts})
    texts = {"train": list(prepared.train.texts),
             "unlabelled": [] if unlabelled is None else list(unlabelled.texts),
             "valid": list(prepared.valid.texts)}
    key = cache_key(teacher, texts, prepared.class_names)
    sizes = {part: len(rows) for part, rows in texts.items()}
    shared = _SHARED.get()
    probs = cached_probs(run, key, sizes)
    if probs is None and shared is not None and key in shared:
        probs = shared[key]  # an earlier student of this call scored the same rows
        run.write_arrays(TEACHER_PROBS, {**probs, "key": _key_array(key)})
    cached = probs is not None
    if probs is None:
        batch, classes = recipe.train.eval_batch_size, len(prepared.class_names)
        probs = {part: score(teacher, rows, batch, classes) for part, rows in texts.items()}
        run.write_arrays(TEACHER_PROBS, {**probs, "key": _key_array(key)})
    if shared is not None:
        shared[key] = probs
    reporter.log(f"distil: teacher {teacher.path} ({teacher.recipe.model.backbone}); "
                 f"probabilities of {sizes['train']} train, {sizes['unlabelled']} unlabelled "
                 f"and {sizes['valid']} validation rows "
                 f"{'read from the cache' if cached else 'computed and cached'}")
    return Teacher(teacher, config, probs, cached=cached, unlabelled_table=unlabelled)
