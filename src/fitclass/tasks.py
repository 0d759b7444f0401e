"""The task as a small strategy object: how labels are encoded, scored and decided.

Only `multiclass` exists now; `multilabel` is a second subclass with the same surface
(labels as a 0/1 matrix, sigmoid probabilities, thresholds), so the loop never branches on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from fitclass.metrics import multiclass_metrics


class Task(ABC):
    """Everything that differs between task kinds, behind one interface."""

    name: ClassVar[str]

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)

    @property
    def num_labels(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Turn model outputs into per-class probabilities."""

    @abstractmethod
    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Turn probabilities into predicted label indices."""

    @abstractmethod
    def metrics(self, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        """The full metrics dict for labelled rows."""


class MulticlassTask(Task):
    """One label per row; softmax probabilities; argmax decision."""

    name = "multiclass"

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        return probs.argmax(axis=1)

    def metrics(self, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        return multiclass_metrics(targets, probs, self.class_names, self.decide(probs))


TASKS: dict[str, type[Task]] = {MulticlassTask.name: MulticlassTask}


def make_task(name: str, class_names: Sequence[str]) -> Task:
    return TASKS[name](class_names)
