"""Every training path runs the one loop (`training/loop.run_loop`) with its step strategy and
the same named hooks over a typed `LoopState`: a callback that counts steps and batches sees
standard fine-tuning, co-teaching, a head-only stage on cached features and masked-LM
pretraining; the built-in parts of training are callbacks in a fixed order."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fitclass
from fitclass import pretrain as pretrain_module
from fitclass.pretrain import pretrain
from fitclass.training import coteaching, finetune, loop, probe
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.strategy import StepOutput

# 90 training rows (120 minus a 25% validation split), batch 16: 6 steps per epoch.
STEPS_PER_EPOCH = 6


class StepCounter(Callback):
    """Records each hook call: the steps it saw, evaluations, epochs, begin/end."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.batches = 0
        self.evaluations = 0
        self.epochs = 0
        self.calls: list[str] = []

    def on_train_begin(self, state: LoopState) -> None:
        self.calls.append("begin")

    def on_batch_end(self, state: LoopState, output: StepOutput) -> None:
        self.batches += 1

    def on_step_end(self, state: LoopState) -> None:
        self.steps.append(state.step)

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        self.evaluations += 1

    def on_epoch_end(self, state: LoopState) -> None:
        self.epochs += 1

    def on_train_end(self, state: LoopState) -> None:
        self.calls.append("end")


@pytest.fixture
def strategies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The step strategies `run_loop` ran, in order (each training module's `run_loop` is the
    one loop; the spy records what it was given and runs it)."""
    seen: list[str] = []

    def spy(strategy: Any, state: LoopState, callbacks: Callback) -> LoopState:
        seen.append(type(strategy).__name__)
        return loop.run_loop(strategy, state, callbacks)

    for module in (finetune, probe, coteaching, pretrain_module):
        monkeypatch.setattr(module, "run_loop", spy)
    return seen


def tiny(recipe_for: Callable[..., dict[str, Any]], train_csv: Path,
         **train: Any) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv, train={"batch_size": 16, **train})


def test_standard_training(tmp_path: Path, train_csv: Path,
                           recipe_for: Callable[..., dict[str, Any]],
                           strategies: list[str]) -> None:
    counter = StepCounter()
    fitclass.train(tiny(recipe_for, train_csv, epochs=2), out=tmp_path / "run",
                   callbacks=[counter])
    assert strategies == ["FineTuneStep"]
    assert counter.steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert counter.batches == 2 * STEPS_PER_EPOCH
    assert counter.evaluations == 2 and counter.epochs == 2
    assert counter.calls == ["begin", "end"]


def test_coteaching(tmp_path: Path, train_csv: Path,
                    recipe_for: Callable[..., dict[str, Any]], strategies: list[str]) -> None:
    recipe = tiny(recipe_for, train_csv, epochs=1)
    recipe["noise"] = {"coteaching": {"forget_rate": 0.2, "ramp_epochs": 1.0}}
    counter = StepCounter()
    fitclass.train(recipe, out=tmp_path / "run", callbacks=[counter])
    assert strategies == ["CoteachingStep"] and counter.batches == STEPS_PER_EPOCH
    assert counter.steps == list(range(1, STEPS_PER_EPOCH + 1))
    assert counter.evaluations == 1 and counter.calls == ["begin", "end"]


def test_head_stage_on_cached_features(tmp_path: Path, train_csv: Path,
                                       recipe_for: Callable[..., dict[str, Any]],
                                       monkeypatch: pytest.MonkeyPatch,
                                       strategies: list[str]) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    stages = [{"epochs": 1, "lr": 3e-3, "trainable": "head"},
              {"epochs": 1, "lr": 1e-3, "trainable": "all"}]
    counter = StepCounter()
    run = fitclass.train(tiny(recipe_for, train_csv, stages=stages, cache_features=True),
                         out=tmp_path / "run", callbacks=[counter])
    history = pd.read_csv(run.path / "history.csv")
    assert history["cached_features"].iloc[0] == True  # noqa: E712 (numpy bool)
    # the head stage's 6 steps on cached features, then the full stage's 6
    assert strategies == ["CachedHeadStep", "FineTuneStep"]
    assert counter.steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert counter.evaluations == 2 and counter.epochs == 2
    # the two phases are one training run to a callback
    assert counter.calls == ["begin", "end"]


def test_a_stop_in_the_cached_head_stage_ends_the_run(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    stages = [{"epochs": 1, "lr": 3e-3, "trainable": "head"},
              {"epochs": 1, "lr": 1e-3, "trainable": "all"}]
    counter = StepCounter()
    run = fitclass.train(tiny(recipe_for, train_csv, stages=stages, cache_features=True),
                         out=tmp_path / "run", callbacks=[StopAfter(2), counter])
    history = pd.read_csv(run.path / "history.csv")
    assert counter.steps == [1, 2] and counter.calls == ["begin", "end"]
    assert history["cached_features"].tolist() == [True]  # no fine-tune stage after the stop


def test_masked_lm_pretraining(tmp_path: Path, train_csv: Path,
                               recipe_for: Callable[..., dict[str, Any]],
                               strategies: list[str]) -> None:
    counter = StepCounter()
    out = pretrain(recipe_for("tiny_bert", train_csv), tmp_path / "adapted", epochs=1,
                   batch_size=40, lr=1e-3, callbacks=[counter])
    assert strategies == ["MaskedLMStep"] and counter.batches == 3
    assert json.loads((out / "fitclass_pretrain.json").read_text())["texts"] == 120
    assert counter.steps == [1, 2, 3]  # 120 texts, batch 40
    assert counter.evaluations == 1 and counter.epochs == 1


class StopAfter(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state: LoopState) -> None:
        state.should_stop = state.should_stop or state.step >= self.step


def test_a_callback_can_stop_training_and_the_stop_is_evaluated(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    counter = StepCounter()
    run = fitclass.train(tiny(recipe_for, train_csv, epochs=2), out=tmp_path / "run",
                         callbacks=[StopAfter(4), counter])
    assert counter.steps == [1, 2, 3, 4]
    assert pd.read_csv(run.path / "history.csv")["step"].tolist() == [4]


def test_loop_state_reads_the_loop_state_json_written_before_it_existed() -> None:
    """`loop_state.json` of older checkpoints (a plain dict) still resumes."""
    old = {"step": 7, "epoch": 1, "batches_in_epoch": 1, "history": [{"step": 6}],
           "train_seconds": 1.5, "train_samples": 112,
           "selector": {"best_value": 0.5, "best_step": 6}}
    state = LoopState.from_json(old)
    assert (state.step, state.epoch, state.batches_in_epoch) == (7, 1, 1)
    assert state.to_json() == old
    assert "selector" not in LoopState().to_json()
