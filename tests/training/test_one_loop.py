"""Every training path calls the same named hooks over a typed `LoopState`: a callback that
counts steps sees standard fine-tuning, co-teaching, a head-only stage on cached features and
masked-LM pretraining."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fitclass
from fitclass.pretrain import pretrain
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState

# 90 training rows (120 minus a 25% validation split), batch 16: 6 steps per epoch.
STEPS_PER_EPOCH = 6


class StepCounter(Callback):
    """Records each hook call: the steps it saw, evaluations, epochs, begin/end."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.evaluations = 0
        self.epochs = 0
        self.calls: list[str] = []

    def on_train_begin(self, state: LoopState) -> None:
        self.calls.append("begin")

    def on_step_end(self, state: LoopState) -> None:
        self.steps.append(state.step)

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        self.evaluations += 1

    def on_epoch_end(self, state: LoopState) -> None:
        self.epochs += 1

    def on_train_end(self, state: LoopState) -> None:
        self.calls.append("end")


def tiny(recipe_for: Callable[..., dict[str, Any]], train_csv: Path,
         **train: Any) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv, train={"batch_size": 16, **train})


def test_standard_training(tmp_path: Path, train_csv: Path,
                           recipe_for: Callable[..., dict[str, Any]]) -> None:
    counter = StepCounter()
    fitclass.train(tiny(recipe_for, train_csv, epochs=2), out=tmp_path / "run",
                   callbacks=[counter])
    assert counter.steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert counter.evaluations == 2 and counter.epochs == 2
    assert counter.calls == ["begin", "end"]


def test_coteaching(tmp_path: Path, train_csv: Path,
                    recipe_for: Callable[..., dict[str, Any]]) -> None:
    recipe = tiny(recipe_for, train_csv, epochs=1)
    recipe["noise"] = {"coteaching": {"forget_rate": 0.2, "ramp_epochs": 1.0}}
    counter = StepCounter()
    fitclass.train(recipe, out=tmp_path / "run", callbacks=[counter])
    assert counter.steps == list(range(1, STEPS_PER_EPOCH + 1))
    assert counter.evaluations == 1 and counter.calls == ["begin", "end"]


def test_head_stage_on_cached_features(tmp_path: Path, train_csv: Path,
                                       recipe_for: Callable[..., dict[str, Any]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    stages = [{"epochs": 1, "lr": 3e-3, "trainable": "head"},
              {"epochs": 1, "lr": 1e-3, "trainable": "all"}]
    counter = StepCounter()
    run = fitclass.train(tiny(recipe_for, train_csv, stages=stages, cache_features=True),
                         out=tmp_path / "run", callbacks=[counter])
    history = pd.read_csv(run.path / "history.csv")
    assert history["cached_features"].iloc[0] == True  # noqa: E712 (numpy bool)
    # the head stage's 6 steps on cached features, then the full stage's 6
    assert counter.steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert counter.evaluations == 2 and counter.epochs == 2


def test_masked_lm_pretraining(tmp_path: Path, train_csv: Path,
                               recipe_for: Callable[..., dict[str, Any]]) -> None:
    counter = StepCounter()
    out = pretrain(recipe_for("tiny_bert", train_csv), tmp_path / "adapted", epochs=1,
                   batch_size=40, lr=1e-3, callbacks=[counter])
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
