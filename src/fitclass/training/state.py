"""The loop's typed state (after transformers' `TrainerState`): counters, history and stop flag
that every training path (fine-tuning, co-teaching, cached head stages, masked-LM pretraining)
keeps and its callbacks read. `to_json`/`from_json` keep the keys of `loop_state.json`, so
runs checkpointed before this class existed still resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class LoopState:
    """Where training is. `step` counts optimiser steps (after gradient accumulation),
    `batches_in_epoch` the batches of the current epoch already seen (resume skips them)."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_samples: int = 0
    #: `Selector.state()` after the last evaluation (None before the first).
    selector: dict[str, Any] | None = None
    #: Planned optimiser steps of the whole run (not saved: recomputed from the recipe).
    total_steps: int = 0
    #: Set by early stopping (or any callback) to end training after this step.
    should_stop: bool = False
    #: Training loss summed over the batches since the last evaluation (a tensor on the
    #: accelerator while training: adding to it never waits for the device), and their count.
    loss_sum: torch.Tensor | float = 0.0
    loss_batches: int = 0
    #: The optimiser step the running loss starts after (the last evaluation's step).
    loss_since_step: int = 0
    #: The full metrics of the last evaluation (the history row keeps only the scalars).
    metrics: dict[str, Any] = field(default_factory=dict)

    def add_loss(self, loss: torch.Tensor) -> None:
        """Add one batch's loss to the running sum, on its device (no host sync)."""
        self.loss_sum = loss.detach().float() + self.loss_sum
        self.loss_batches += 1

    def reset_loss(self) -> None:
        self.loss_sum, self.loss_batches, self.loss_since_step = 0.0, 0, self.step

    @property
    def train_loss(self) -> float:
        """Mean training loss of the batches since the last evaluation. Reading it waits
        for the accelerator (a host sync): the loop does so every `train.log_every` steps
        and at evaluations only."""
        return float(self.loss_sum) / max(self.loss_batches, 1)

    @property
    def samples_per_second(self) -> float:
        """Training rows per second of training time (evaluations excluded)."""
        return self.train_samples / max(self.train_seconds, 1e-9)

    def to_json(self) -> dict[str, Any]:
        """The resumable part, as `loop_state.json` holds it."""
        data: dict[str, Any] = {"step": self.step, "epoch": self.epoch,
                                "batches_in_epoch": self.batches_in_epoch,
                                "history": self.history, "train_seconds": self.train_seconds,
                                "train_samples": self.train_samples}
        if self.selector is not None:
            data["selector"] = self.selector
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        return cls(step=int(data["step"]), epoch=int(data["epoch"]),
                   batches_in_epoch=int(data["batches_in_epoch"]),
                   history=list(data["history"]),
                   train_seconds=float(data["train_seconds"]),
                   train_samples=int(data["train_samples"]), selector=data.get("selector"))
