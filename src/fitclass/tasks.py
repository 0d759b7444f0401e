"""The task as a small strategy object: how outputs become probabilities and how they are
scored. Decisions (thresholds, calibration, priors) live in `decide/` and are passed in, so
the loop, the run and the reports never branch on the task kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from fitclass.decide.decision import Decision
from fitclass.metrics import multiclass_metrics, multilabel_metrics


class Task(ABC):
    """Everything that differs between task kinds, behind one interface."""

    name: ClassVar[str]
    multilabel: ClassVar[bool]
    _metrics: ClassVar[Callable[..., dict[str, Any]]]

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)

    @property
    def num_labels(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Turn model outputs into per-class probabilities."""

    def default_decision(self) -> Decision:
        """Argmax (multi-class) or 0.5 thresholds (multi-label), no calibration."""
        return Decision(multilabel=self.multilabel)

    def decide(self, probs: np.ndarray, decision: Decision | None = None) -> np.ndarray:
        """Predictions (indices or a 0/1 matrix) from raw probabilities."""
        decision = decision or self.default_decision()
        return decision.predict(decision.calibrate(probs))

    def metrics(self, targets: np.ndarray, probs: np.ndarray,
                decision: Decision | None = None) -> dict[str, Any]:
        """The full metrics dict, on calibrated probabilities and the decision's predictions."""
        decision = decision or self.default_decision()
        calibrated = decision.calibrate(probs)
        return type(self)._metrics(targets, calibrated, self.class_names,
                                   decision.predict(calibrated))

    def label_strings(self, predictions: np.ndarray) -> list[str]:
        """Predictions as the `label`/`labels` column of predict's output."""
        if self.multilabel:
            return ["|".join(n for n, on in zip(self.class_names, row, strict=True) if on)
                    for row in predictions]
        return [self.class_names[i] for i in predictions]


class MulticlassTask(Task):
    """One label per row; softmax probabilities."""

    name = "multiclass"
    multilabel = False
    _metrics = staticmethod(multiclass_metrics)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)


class MultilabelTask(Task):
    """Any number of labels per row; independent sigmoid probabilities."""

    name = "multilabel"
    multilabel = True
    _metrics = staticmethod(multilabel_metrics)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())


TASKS: dict[str, type[Task]] = {task.name: task for task in (MulticlassTask, MultilabelTask)}


def make_task(name: str, class_names: Sequence[str]) -> Task:
    return TASKS[name](class_names)
