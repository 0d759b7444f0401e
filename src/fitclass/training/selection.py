"""Best-checkpoint selection and early stopping on one named metric.

A later evaluation becomes the best checkpoint when its metric beats the best by more than
`min_delta`, or when it ties: no worse than the best and not better by more than `min_delta`
(with `min_delta` 0, exactly equal), and its validation loss is lower. Without the tie-break
the earliest of tied checkpoints wins, and on small validation sets, where metrics move in
coarse steps, that is often a checkpoint that predicts one class. A tie never moves the
selected metric down, so repeated ties cannot drift below the best value seen.

Early stopping counts evaluations without an improvement larger than `min_delta`; a tie won
on loss is not one (the metric did not improve).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState


@dataclass
class Selector:
    """Tracks the best value of `metric` (validation loss breaking ties); counts evaluations
    without improvement."""

    metric: str
    mode: Literal["max", "min"]
    min_delta: float = 0.0
    best_value: float | None = None
    best_step: int | None = None
    #: Validation loss of the best checkpoint: the tie-break (None: no tie-break yet).
    best_loss: float | None = None
    evals_without_improvement: int = 0

    def update(self, value: float | None, step: int, loss: float | None = None) -> bool:
        """Record one evaluation (its metric `value` and validation `loss`); True when it is
        the new best checkpoint."""
        if value is None:
            self.evals_without_improvement += 1
            return False
        if self.best_value is None:
            self._take(value, step, loss)
            return True
        gain = value - self.best_value if self.mode == "max" else self.best_value - value
        if gain > self.min_delta:
            self._take(value, step, loss)
            return True
        self.evals_without_improvement += 1
        if gain >= 0 and self._lower_loss(loss):
            self.best_value, self.best_step, self.best_loss = value, step, loss
            return True
        return False

    def _take(self, value: float, step: int, loss: float | None) -> None:
        self.best_value, self.best_step, self.best_loss = value, step, loss
        self.evals_without_improvement = 0

    def _lower_loss(self, loss: float | None) -> bool:
        return loss is not None and self.best_loss is not None and loss < self.best_loss

    def state(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_step": self.best_step,
                "best_loss": self.best_loss,
                "evals_without_improvement": self.evals_without_improvement}

    def restore(self, state: dict[str, Any]) -> None:
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        # checkpoints written before the tie-break existed have no best_loss: ties are then
        # broken from the next best checkpoint on
        self.best_loss = state.get("best_loss")
        self.evals_without_improvement = state["evals_without_improvement"]


class Selection(Callback):
    """Feeds every evaluation to the `Selector`: marks the row `is_best` and keeps the
    selector's state in `state.selector` (saved with the resume state)."""

    def __init__(self, selector: Selector) -> None:
        self.selector = selector

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        row["is_best"] = self.selector.update(row.get(self.selector.metric), state.step,
                                              row.get("valid_loss"))
        state.selector = self.selector.state()


class EarlyStopping(Callback):
    """Stops training after `patience` evaluations without an improvement larger than the
    selector's `min_delta`. Runs after `Selection`."""

    def __init__(self, selector: Selector, patience: int,
                 log: Callable[[str], None] | None = None) -> None:
        self.selector, self.patience, self.log = selector, patience, log

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        if self.selector.evals_without_improvement < self.patience:
            return
        state.should_stop = True
        if self.log is not None:
            self.log(f"early stopping: no {self.selector.metric} improvement in "
                     f"{self.patience} evaluations")
