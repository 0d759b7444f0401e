"""The one training loop: every training path (fine-tuning, co-teaching, head-only stages
on cached features, masked-LM pretraining) runs this body with its own step strategy
(`training/strategy.py`), and everything else (selection, checkpoints, averaging, dynamics,
progress, your own hooks) is a callback (`training/callbacks.py`).

Time spent evaluating is not training time: `state.train_seconds` and so the recorded
samples/s count steps only.
"""

from __future__ import annotations

import math
import time

from fitclass.errors import FitclassError
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.strategy import StepStrategy


def run_loop(strategy: StepStrategy, state: LoopState, callbacks: Callback) -> LoopState:
    """Train from `state` (fresh, or restored by a resume) to `strategy.end_epoch` or until a
    callback sets `state.should_stop` (a stopped state trains nothing); return the state."""
    callbacks.on_train_begin(state)
    tick = time.perf_counter()
    for epoch in range(state.epoch, strategy.end_epoch):
        if state.should_stop:
            break
        state.epoch = epoch
        for batch in strategy.batches(state):
            output = strategy.step(batch, state)
            state.batches_in_epoch += 1
            state.train_samples += output.rows
            _count_loss(state, float(output.loss))
            callbacks.on_batch_end(state, output)
            if not output.synced:
                continue
            state.step += 1
            now = time.perf_counter()
            state.train_seconds, tick = state.train_seconds + now - tick, now
            callbacks.on_step_end(state)
            if strategy.schedule.due_after_step(state):
                _evaluate(strategy, state, callbacks)
                tick = time.perf_counter()
            if state.should_stop:
                break
        if state.should_stop:
            break
        if strategy.schedule.at_epoch_end:
            _evaluate(strategy, state, callbacks)
            tick = time.perf_counter()
        callbacks.on_epoch_end(state)
        # the next epoch starts with none of its batches seen (a resume skips none of it)
        state.epoch, state.batches_in_epoch = epoch + 1, 0
    callbacks.on_train_end(state)
    return state


def _count_loss(state: LoopState, value: float) -> None:
    if not math.isfinite(value):
        raise FitclassError(f"training diverged: loss is {value} at step {state.step + 1}; "
                            f"lower train.lr or use train.grad_clip")
    state.loss_sum += value
    state.loss_batches += 1


def _evaluate(strategy: StepStrategy, state: LoopState, callbacks: Callback) -> None:
    """One evaluation: the strategy measures, the row joins the history, the callbacks hear
    it (selection first), and the running training loss starts again."""
    row = strategy.evaluate(state)
    state.history.append(row)
    callbacks.on_evaluate(state, row)
    state.loss_sum, state.loss_batches = 0.0, 0
