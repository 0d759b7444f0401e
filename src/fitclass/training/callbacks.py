"""Named hooks into training (after transformers' `TrainerCallback`): every training path
runs the one loop (`training/loop.py`), which calls these hooks with its `LoopState`, so a
callback written once (a step counter, a tracker, a profiler) sees fine-tuning, co-teaching,
cached head stages and masked-LM pretraining alike. The built-in parts of training are
callbacks too: selection and early stopping (`selection.py`), best checkpoint and resume
state (`checkpoint.py`), averaging (`averaging.py`), dynamics (`dynamics.py`), progress and
the evaluation report that feeds trackers and a sweep's pruner (`progress.py`). A callback
may set `state.should_stop` to end training after the current step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fitclass.training.state import LoopState
from fitclass.training.strategy import StepOutput


class Callback:
    """Override the hooks you need; each is a no-op here."""

    def on_train_begin(self, state: LoopState) -> None:
        """Before the first step (after a resume restored `state`)."""

    def on_batch_end(self, state: LoopState, output: StepOutput) -> None:
        """After every batch's forward and backward, also while gradients accumulate."""

    def on_step_end(self, state: LoopState) -> None:
        """After each optimiser step; `state.step` already counts it."""

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        """After an evaluation; `row` is the history row it added (built-in callbacks
        before yours add `is_best` and averaging columns to it)."""

    def on_epoch_end(self, state: LoopState) -> None:
        """After the last batch of an epoch (not after an epoch cut short by stopping)."""

    def on_train_end(self, state: LoopState) -> None:
        """After the last step, before the final weights are chosen."""


class CallbackList(Callback):
    """Calls each callback's hook in order (the order is the contract: built-ins first)."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_begin(self, state: LoopState) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(state)

    def on_batch_end(self, state: LoopState, output: StepOutput) -> None:
        for callback in self.callbacks:
            callback.on_batch_end(state, output)

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


class Phase(CallbackList):
    """The user's callbacks in one phase of a fit that runs the loop more than once (head-only
    stages on cached features, then the fine-tune): they hear `on_train_begin` only in the
    first phase and `on_train_end` only in the last, so a fit is one training run to them."""

    def __init__(self, callbacks: Iterable[Callback], *, first: bool, last: bool) -> None:
        super().__init__(callbacks)
        self.first, self.last = first, last

    def on_train_begin(self, state: LoopState) -> None:
        if self.first:
            super().on_train_begin(state)

    def on_train_end(self, state: LoopState) -> None:
        if self.last:
            super().on_train_end(state)
