"""What a backbone's `fit` receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fitclass.data.table import TextTable
from fitclass.recipe import Recipe
from fitclass.runs.folder import RunDir
from fitclass.tasks import Task
from fitclass.training.progress import Reporter

if TYPE_CHECKING:
    from fitclass.models.base import Classifier


@dataclass
class FitContext:
    """Everything a fit needs: recipe, task, split rows, the run folder and a progress reporter."""

    recipe: Recipe
    task: Task
    train: TextTable
    valid: TextTable
    run: RunDir
    reporter: Reporter
    resume: bool = False

    @property
    def class_names(self) -> list[str]:
        return self.task.class_names

    @property
    def train_targets(self) -> np.ndarray:
        return self.train.targets(self.class_names)

    @property
    def valid_targets(self) -> np.ndarray:
        return self.valid.targets(self.class_names)


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
