"""Masked-language-model training (task-adaptive pretraining, `fitclass pretrain`) as a step
strategy of the one loop (`training/loop.py`): each step is the model's own MLM loss on a
masked batch; each epoch ends with a history row of its mean loss."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from accelerate import Accelerator

from fitclass.training.state import LoopState
from fitclass.training.strategy import EvalSchedule, StepOutput


class MaskedLMStep:
    """One optimiser step on the masked-LM loss of a batch the collator masked."""

    def __init__(self, model: torch.nn.Module, optimizer: Any, loader: Any,
                 accelerator: Accelerator, epochs: int, log: Callable[[str], None],
                 check_every: int = 50) -> None:
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.accelerator, self.log = accelerator, log
        self.end_epoch = epochs
        self.schedule = EvalSchedule(at_epoch_end=True, check_every=check_every)

    def batches(self, state: LoopState) -> Iterator[Any]:
        self.model.train()
        return iter(self.loader)

    def step(self, batch: Any, state: LoopState) -> StepOutput:
        loss = self.model(**batch).loss
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepOutput(loss=loss.detach(), rows=len(batch["input_ids"]))

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        """The epoch's mean masked-LM loss (no validation: pretraining has no labels)."""
        row = {"epoch": state.epoch + 1, "mlm_loss": state.train_loss}
        self.log(f"pretrain epoch {row['epoch']}: masked-LM loss {row['mlm_loss']:.4f}")
        return row
