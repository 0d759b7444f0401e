"""The one loop body (`training/loop.run_loop`) on a fake step strategy: no model, so each
rule of the loop is checked on its own (schedule, accumulation, stops, resume, divergence)
and the built-in callbacks' order is pinned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch
from accelerate import Accelerator

from fitclass.contracts.fit import FitContext
from fitclass.data.table import TextTable
from fitclass.errors import FitclassError
from fitclass.recipe import load_recipe
from fitclass.runs.folder import RunDir
from fitclass.tasks import make_task
from fitclass.training.callbacks import Callback, CallbackList
from fitclass.training.loop import run_loop
from fitclass.training.progress import Reporter
from fitclass.training.state import LoopState
from fitclass.training.strategy import EvalSchedule, StepOutput
from fitclass.training.wiring import Wiring


class FakeStrategy:
    """`batches` batches per epoch; every `accumulate`-th batch is a synced step."""

    def __init__(self, epochs: int, batches: int, schedule: EvalSchedule,
                 accumulate: int = 1, losses: list[float] | None = None) -> None:
        self.end_epoch, self.per_epoch, self.schedule = epochs, batches, schedule
        self.accumulate, self.losses = accumulate, losses
        self.seen: list[tuple[int, int]] = []  # (epoch, batch index)

    def batches(self, state: LoopState) -> Iterator[int]:
        return iter(range(state.batches_in_epoch, self.per_epoch))

    def step(self, batch: int, state: LoopState) -> StepOutput:
        self.seen.append((state.epoch, batch))
        loss = self.losses.pop(0) if self.losses else 1.0
        return StepOutput(loss=torch.tensor(loss), rows=4,
                          synced=(batch + 1) % self.accumulate == 0)

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        return {"step": state.step, "epoch": state.epoch, "train_loss": state.train_loss}


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.events: list[str] = []
        self.stop_at = stop_at

    def on_train_begin(self, state: LoopState) -> None:
        self.events.append("begin")

    def on_step_end(self, state: LoopState) -> None:
        self.events.append(f"step{state.step}")
        if self.stop_at is not None and state.step >= self.stop_at:
            state.should_stop = True

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        self.events.append(f"eval{state.step}")

    def on_epoch_end(self, state: LoopState) -> None:
        self.events.append(f"epoch{state.epoch}")

    def on_train_end(self, state: LoopState) -> None:
        self.events.append("end")


def test_evaluates_on_the_step_schedule_and_after_the_last_step() -> None:
    strategy = FakeStrategy(epochs=2, batches=3, schedule=EvalSchedule(every_steps=4))
    state = run_loop(strategy, LoopState(total_steps=6), Recorder())
    assert [row["step"] for row in state.history] == [4, 6]
    assert state.step == 6 and state.train_samples == 24 and state.epoch == 2


def test_accumulation_counts_steps_only_when_synced() -> None:
    strategy = FakeStrategy(epochs=1, batches=4, schedule=EvalSchedule(every_steps=1),
                            accumulate=2, losses=[1.0, 3.0, 5.0, 7.0])
    recorder = Recorder()
    state = run_loop(strategy, LoopState(total_steps=2), recorder)
    assert recorder.events == ["begin", "step1", "eval1", "step2", "eval2", "epoch0", "end"]
    # the running training loss covers the batches since the last evaluation
    assert [row["train_loss"] for row in state.history] == [2.0, 6.0]


def test_epoch_end_evaluation() -> None:
    strategy = FakeStrategy(epochs=2, batches=2, schedule=EvalSchedule(at_epoch_end=True))
    recorder = Recorder()
    run_loop(strategy, LoopState(total_steps=4), recorder)
    assert recorder.events == ["begin", "step1", "step2", "eval2", "epoch0",
                               "step3", "step4", "eval4", "epoch1", "end"]


def test_a_stop_is_evaluated_once_and_ends_training() -> None:
    strategy = FakeStrategy(epochs=3, batches=3, schedule=EvalSchedule(at_epoch_end=True))
    recorder = Recorder(stop_at=2)
    state = run_loop(strategy, LoopState(total_steps=9), recorder)
    assert recorder.events == ["begin", "step1", "step2", "eval2", "end"]
    assert state.should_stop and len(strategy.seen) == 2


def test_a_stopped_state_trains_nothing() -> None:
    strategy = FakeStrategy(epochs=2, batches=2, schedule=EvalSchedule(every_steps=1))
    recorder = Recorder()
    run_loop(strategy, LoopState(total_steps=4, should_stop=True), recorder)
    assert recorder.events == ["begin", "end"] and strategy.seen == []


def test_resume_skips_the_batches_already_seen() -> None:
    strategy = FakeStrategy(epochs=2, batches=3, schedule=EvalSchedule(every_steps=3))
    state = LoopState(step=4, epoch=1, batches_in_epoch=1, total_steps=6)
    run_loop(strategy, state, CallbackList())
    assert strategy.seen == [(1, 1), (1, 2)] and state.step == 6


def test_a_loss_that_is_not_finite_stops_with_advice() -> None:
    strategy = FakeStrategy(epochs=1, batches=3, schedule=EvalSchedule(every_steps=1),
                            losses=[1.0, float("nan")])
    with pytest.raises(FitclassError,
                       match=r"diverged: the training loss is nan at step 2.*grad_clip"):
        run_loop(strategy, LoopState(total_steps=3), CallbackList())


def test_built_in_callbacks_run_in_their_documented_order(
        train_csv: Path, recipe_for: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    """Selection marks the row before averaging, checkpointing, early stopping and resume
    state use it; the report (trackers, a sweep's pruner) comes after early stopping so it
    knows whether more training follows; the user's callbacks come last."""
    recipe = load_recipe(recipe_for("tiny_bert", train_csv, train={
        "early_stopping": {"patience": 2}}) | {"averaging": {"ema": {"decay": 0.9}}})
    empty = TextTable(source="none", frame=pd.DataFrame(), texts=[], labels=[], ids=[])
    context = FitContext(recipe=recipe, task=make_task("multiclass", ["a", "b"]),
                         train=empty, valid=empty, run=RunDir(tmp_path),
                         reporter=Reporter(enabled=False), callbacks=[Callback()])
    # the wiring asks the classifier only which parameters never train (the averager skips them)
    classifier = SimpleNamespace(fixed_parameters=frozenset)
    wiring = Wiring.for_context(context, classifier, Accelerator(cpu=True),  # type: ignore[arg-type]
                                lambda logits, targets: logits.sum())
    names = [type(c).__name__ for c in wiring.callbacks(cached=False, recorder=None)]
    assert names == ["Selection", "Averaging", "BestCheckpoint", "EarlyStopping",
                     "ResumeState", "ProgressBar", "EvaluationReport", "Phase"]
    cached = [type(c).__name__ for c in wiring.callbacks(cached=True)]
    assert cached == ["Selection", "Averaging", "BestCheckpoint", "EvaluationReport", "Phase"]
