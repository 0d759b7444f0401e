"""What a backbone's `fit` receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from fitclass.data.table import TextTable
from fitclass.errors import FitclassError
from fitclass.recipe import Recipe
from fitclass.tasks import Task

if TYPE_CHECKING:
    from fitclass.contracts.model import Classifier
    from fitclass.contracts.neural import NeuralClassifier
    from fitclass.training.callbacks import Callback
    from fitclass.training.progress import Reporter

class CheckpointFolder(Protocol):
    """Where training keeps its checkpoints: the run folder (`fitclass.runs.folder.RunDir`)
    as the training layer sees it, so `training/` never imports the run record."""

    @property
    def path(self) -> Path:
        """The run folder (named in error messages)."""
        ...

    def checkpoint(self, name: str) -> Path:
        """The path of checkpoint `name` (a file or folder under the run's checkpoints)."""
        ...


#: Trains a neural kind: given a builder of fresh classifiers (called once per network, after
#: the seed is set) and the context, returns the fitted result. `training.engine.fit_neural`
#: is the one the workflow layer passes in, so `models/` never imports the training loop.
NeuralTrainer = Callable[[Callable[[], "NeuralClassifier"], "FitContext"], "FitResult"]


@dataclass(frozen=True)
class TeacherTargets:
    """A distillation teacher's probabilities of every training row (calibrated, one row per
    training row in table order) and which rows also have a hard label (unlabelled rows the
    teacher scored learn from its probabilities alone). `training/distillation.py` turns
    them into the batches' soft targets."""

    probs: np.ndarray
    labelled: np.ndarray  # bool, one per training row

    def __post_init__(self) -> None:
        if self.probs.ndim != 2 or len(self.probs) != len(self.labelled):
            raise ValueError(f"teacher probabilities {self.probs.shape} for "
                             f"{len(self.labelled)} training rows")


@dataclass
class FitContext:
    """Everything a fit needs: recipe, task, split rows, the run folder and a progress reporter,
    and the trainer that fine-tunes neural kinds."""

    recipe: Recipe
    task: Task
    train: TextTable
    valid: TextTable
    run: CheckpointFolder
    reporter: Reporter
    resume: bool = False
    trainer: NeuralTrainer | None = None
    #: Hooks every training path calls (`training/callbacks.py`), e.g. a step counter.
    callbacks: list[Callback] = field(default_factory=list)
    #: The distillation teacher's probabilities of the training rows (`recipe.distil`).
    teacher: TeacherTargets | None = None

    @property
    def class_names(self) -> list[str]:
        return self.task.class_names

    @property
    def train_targets(self) -> np.ndarray:
        return self.train.targets(self.class_names)

    @property
    def labelled_targets(self) -> np.ndarray:
        """The targets of the rows with a hard label (all but a distillation's unlabelled
        rows, whose table labels are the teacher's): what class statistics count."""
        targets = self.train_targets
        return targets if self.teacher is None else targets[self.teacher.labelled]

    @property
    def valid_targets(self) -> np.ndarray:
        return self.valid.targets(self.class_names)

    def train_neural(self, build: Callable[[], NeuralClassifier]) -> FitResult:
        """Fine-tune the classifiers `build` makes with the context's trainer."""
        if self.trainer is None:
            raise FitclassError("FitContext.trainer is not set: pass "
                                "trainer=fitclass.training.engine.fit_neural to train a "
                                "neural model kind")
        return self.trainer(build, self)


@dataclass
class FitResult:
    """The selected classifier, one history row per evaluation, and training throughput."""

    classifier: Classifier
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    train_samples_per_second: float | None = None
    #: Per-row training dynamics (`training/dynamics.py`), when recorded.
    dynamics: pd.DataFrame | None = None
    #: How training batched its rows (packed or padded, and why); `environment.json` keeps it.
    batching: dict[str, Any] | None = None
