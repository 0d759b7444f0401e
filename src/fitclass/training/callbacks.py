"""Named hooks into training (after transformers' `TrainerCallback`): every training path
calls the same hooks with its `LoopState`, so a callback written once (a step counter, a
tracker, a profiler) sees fine-tuning, co-teaching, cached head stages and masked-LM
pretraining alike. A callback may set `state.should_stop` to end training early."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fitclass.training.state import LoopState


class Callback:
    """Override the hooks you need; each is a no-op here."""

    def on_train_begin(self, state: LoopState) -> None:
        """Before the first step (after a resume restored `state`)."""

    def on_step_end(self, state: LoopState) -> None:
        """After each optimiser step; `state.step` already counts it."""

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        """After an evaluation; `row` is the history row it added."""

    def on_epoch_end(self, state: LoopState) -> None:
        """After the last batch of an epoch (not after an epoch cut short by stopping)."""

    def on_train_end(self, state: LoopState) -> None:
        """After the last step, before the final weights are chosen."""


class CallbackList(Callback):
    """Calls each callback's hook in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_begin(self, state: LoopState) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(state)

    def on_step_end(self, state: LoopState) -> None:
        for callback in self.callbacks:
            callback.on_step_end(state)

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.on_evaluate(state, row)

    def on_epoch_end(self, state: LoopState) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(state)

    def on_train_end(self, state: LoopState) -> None:
        for callback in self.callbacks:
            callback.on_train_end(state)
