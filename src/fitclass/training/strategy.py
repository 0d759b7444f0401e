"""What a training path plugs into the one loop (`training/loop.py`): a step strategy says
which batches an epoch has, what one step does with a batch, when to evaluate and what an
evaluation measures. Fine-tuning, co-teaching, head-only stages on cached features and
masked-LM pretraining are the four strategies; everything around the step (selection,
checkpoints, averaging, dynamics, progress) is a callback (`training/callbacks.py`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from fitclass.training.state import LoopState


@dataclass
class StepOutput:
    """One batch's step, as the loop and the callbacks see it."""

    #: The training loss of the batch (detached).
    loss: torch.Tensor
    #: Training rows the step consumed, over all processes.
    rows: int
    #: False while gradients accumulate: the optimiser did not step.
    synced: bool = True
    #: The batch's logits, given labels and row positions (for training dynamics), when the
    #: strategy trains a classifier on labelled rows.
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    positions: torch.Tensor | None = None


@dataclass(frozen=True)
class EvalSchedule:
    """When the loop evaluates: every `every_steps` optimiser steps and after the last step
    (None: never by step count), and/or after every epoch. A stop requested by a callback
    is followed by one evaluation either way, so the stopped run's last state is measured.
    Between evaluations the loop reads the running loss (its non-finite check) every
    `check_every` steps only: each read waits for the accelerator."""

    every_steps: int | None = None
    at_epoch_end: bool = False
    check_every: int = 1

    def due_after_step(self, state: LoopState) -> bool:
        if state.should_stop:
            return True
        if self.every_steps is None:
            return False
        return state.step % self.every_steps == 0 or state.step >= state.total_steps


class StepStrategy(Protocol):
    """One training path's part of the loop."""

    #: The loop runs epochs `state.epoch` up to (not including) `end_epoch`.
    end_epoch: int
    schedule: EvalSchedule

    def batches(self, state: LoopState) -> Iterable[Any]:
        """The batches of epoch `state.epoch` still to train (a resumed epoch skips the
        `state.batches_in_epoch` already seen); also puts the model in training mode."""
        ...

    def step(self, batch: Any, state: LoopState) -> StepOutput:
        """Forward, backward and (when gradients are synced) one optimiser step."""
        ...

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        """Measure the model now; return the history row (its full metrics go to
        `state.metrics`). Leaves the model in training mode."""
        ...
