"""Best-checkpoint selection and early stopping on one named metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class Selector:
    """Tracks the best value of `metric`; counts evaluations without improvement."""

    metric: str
    mode: Literal["max", "min"]
    min_delta: float = 0.0
    best_value: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0

    def update(self, value: float | None, step: int) -> bool:
        """Record one evaluation; True when it is the new best."""
        if value is None:
            self.evals_without_improvement += 1
            return False
        if self.best_value is None:
            better = True
        elif self.mode == "max":
            better = value > self.best_value + self.min_delta
        else:
            better = value < self.best_value - self.min_delta
        if better:
            self.best_value, self.best_step = value, step
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return better

    def state(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement}

    def restore(self, state: dict[str, Any]) -> None:
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        self.evals_without_improvement = state["evals_without_improvement"]
