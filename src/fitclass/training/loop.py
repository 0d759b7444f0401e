"""The one training loop: every training path (fine-tuning, co-teaching, head-only stages
on cached features, masked-LM pretraining) runs this body with its own step strategy
(`training/strategy.py`), and everything else (selection, checkpoints, averaging, dynamics,
progress, your own hooks) is a callback (`training/callbacks.py`).

Time spent evaluating is not training time: `state.train_seconds` and so the recorded
samples/s count steps only. Nothing in the body waits for the accelerator between
evaluations except the non-finite check every `schedule.check_every` steps: the loss is
summed on the device (`LoopState.add_loss`), so a GPU never idles while Python reads a number.
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
            state.add_loss(output.loss)
            callbacks.on_batch_end(state, output)
            if not output.synced:
                continue
            state.step += 1
            now = time.perf_counter()
            state.train_seconds, tick = state.train_seconds + now - tick, now
            if state.step % strategy.schedule.check_every == 0:
                _check_finite(state)
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


def _check_finite(state: LoopState) -> None:
    """Stop with advice when the running loss is NaN or infinite (one host sync)."""
    value = state.train_loss
    if math.isfinite(value) or state.loss_batches == 0:
        return
    first = state.loss_since_step + 1
    where = f"at step {first}" if first >= state.step else f"in steps {first}-{state.step}"
    raise FitclassError(f"training diverged: the training loss is {value} {where}; lower "
                        f"train.lr or use train.grad_clip")


def _evaluate(strategy: StepStrategy, state: LoopState, callbacks: Callback) -> None:
    """One evaluation: the strategy measures, the row joins the history, the callbacks hear
    it (selection first), and the running training loss starts again."""
    _check_finite(state)
    row = strategy.evaluate(state)
    state.history.append(row)
    callbacks.on_evaluate(state, row)
    state.reset_loss()
