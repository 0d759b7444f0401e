"""The transfer schedule: blocks and depths from the model's structure, what each stage
trains, layer-wise learning rates, the per-stage schedule, and staged runs on the tiny BERT
(head stages on cached features, then the top block, then everything)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import fitclass
from fitclass import api
from fitclass.models.text import TransformerBackbone, TransformerClassifier
from fitclass.recipe import ModelConfig, StageConfig, TopBlocks, TrainConfig
from fitclass.training.optim import build_stage_optimizer, build_stage_scheduler
from fitclass.training.stages import (
    find_blocks,
    layer_decay_groups,
    parameter_depths,
    resolve_stages,
    set_trainable,
    stage_at,
    stage_schedule,
)

BLOCKS = "encoder.encoder.layer"


@pytest.fixture(scope="module")
def bert(tiny_bert_dir: Path) -> nn.Module:
    """The tiny BERT as a fitclass SequenceClassifier (encoder + head)."""
    source = str(tiny_bert_dir)
    return TransformerBackbone(source, ModelConfig(backbone=source)).build(["a", "b"]).module


def hand_depth(name: str) -> int:
    """Depth by hand for the tiny BERT: embeddings 0, layer i is i + 1, the rest 3."""
    if name.startswith("encoder.embeddings."):
        return 0
    if name.startswith(BLOCKS + "."):
        return int(name.split(".")[3]) + 1
    assert name.startswith(("encoder.pooler.", "head.")), name
    return 3


def names_of(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_parameters()]


# --- blocks and depths --------------------------------------------------------------------


def test_bert_blocks_are_the_encoder_layers(bert: nn.Module) -> None:
    assert find_blocks(bert) == (BLOCKS, 2)
    depths, top = parameter_depths(bert)
    assert top == 3
    assert set(depths) == set(names_of(bert))
    assert depths == {name: hand_depth(name) for name in names_of(bert)}
    assert depths["encoder.embeddings.word_embeddings.weight"] == 0
    assert depths[f"{BLOCKS}.0.attention.self.query.weight"] == 1
    assert depths[f"{BLOCKS}.1.output.dense.bias"] == 2
    assert depths["head.weight"] == depths["head.bias"] == top


class TinyCNN(nn.Module):
    """A stem, a stack of conv blocks under an unusual name, and decoy ModuleLists (one
    before and one after the stack, one called `layers`) that hold fewer parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.aux = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        self.trunk = nn.ModuleList(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            for _ in range(3))
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)])
        self.head = nn.Linear(8, 4)


def test_cnn_blocks_are_the_largest_module_list() -> None:
    cnn = TinyCNN()
    assert find_blocks(cnn) == ("trunk", 3)
    depths, top = parameter_depths(cnn)
    assert top == 4
    for name, depth in depths.items():
        if name.startswith(("stem.", "aux.")):
            assert depth == 0, name
        elif name.startswith("trunk."):
            assert depth == int(name.split(".")[1]) + 1, name
        else:
            assert name.startswith(("layers.", "head.")) and depth == top, name
    trainable = set_trainable(cnn, 1)
    assert set(trainable) == {n for n in names_of(cnn)
                              if n.startswith(("trunk.2.", "layers.", "head."))}
    assert set(set_trainable(cnn, "head")) == {"head.weight", "head.bias"}


def test_no_module_list_puts_everything_but_the_head_at_depth_zero() -> None:
    model = nn.Module()
    model.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    model.head = nn.Linear(3, 2)
    assert find_blocks(model) == ("", 0)
    depths, top = parameter_depths(model)
    assert top == 1
    assert depths == {"body.0.weight": 0, "body.0.bias": 0, "body.2.weight": 0,
                      "body.2.bias": 0, "head.weight": 1, "head.bias": 1}


# --- what a stage trains ------------------------------------------------------------------


@pytest.mark.parametrize(("trainable", "expected"), [
    ("head", lambda n: n.startswith("head.")),
    (0, lambda n: n.startswith(("head.", "encoder.pooler."))),
    (1, lambda n: n.startswith(("head.", "encoder.pooler.", f"{BLOCKS}.1."))),
    (2, lambda n: not n.startswith("encoder.embeddings.")),
    ("all", lambda n: True),
])
def test_set_trainable_freezes_exactly_the_rest(bert: nn.Module, trainable: str | int,
                                                expected: Callable[[str], bool]) -> None:
    want = {name for name in names_of(bert) if expected(name)}
    names = set_trainable(bert, trainable)
    assert set(names) == want
    assert {n for n, p in bert.named_parameters() if p.requires_grad} == want
    if trainable not in ("all", 2):
        assert not any(n.startswith((f"{BLOCKS}.0.", "encoder.embeddings.")) for n in names)
    set_trainable(bert, "all")


def test_top_block_stage_trains_the_last_layer_and_what_follows(bert: nn.Module) -> None:
    names = set(set_trainable(bert, 1))
    assert {"head.weight", "head.bias", "encoder.pooler.dense.weight",
            f"{BLOCKS}.1.attention.self.query.weight"} <= names
    assert f"{BLOCKS}.0.attention.self.query.weight" not in names
    assert "encoder.embeddings.word_embeddings.weight" not in names
    set_trainable(bert, "all")


# --- layer-wise learning rates ------------------------------------------------------------


def test_layer_decay_groups_scale_learning_rates_by_depth(bert: nn.Module) -> None:
    lr, decay, weight_decay = 1e-3, 0.5, 0.01
    groups = layer_decay_groups(bert, lr, weight_decay, decay)
    by_id = {id(p): n for n, p in bert.named_parameters()}
    seen: list[str] = []
    for group in groups:
        for parameter in group["params"]:  # type: ignore[attr-defined]
            name = by_id[id(parameter)]
            seen.append(name)
            assert group["lr"] == pytest.approx(lr * decay ** (3 - hand_depth(name))), name
            assert group["depth"] == hand_depth(name)
            assert group["weight_decay"] == (0.0 if parameter.ndim == 1 else weight_decay), name
    assert sorted(seen) == sorted(names_of(bert))  # every parameter in exactly one group
    rates = {g["depth"]: g["lr"] for g in groups}
    assert rates == pytest.approx({0: lr / 8, 1: lr / 4, 2: lr / 2, 3: lr})


def test_no_layer_decay_gives_every_group_the_base_rate(bert: nn.Module) -> None:
    groups = layer_decay_groups(bert, 2e-4, 0.1, None)
    assert {g["lr"] for g in groups} == {2e-4}
    assert sum(len(g["params"]) for g in groups) == len(names_of(bert))  # type: ignore[arg-type]


def test_stage_optimizer_and_scheduler_keep_the_layer_ratios(bert: nn.Module) -> None:
    config = TrainConfig(lr=1e-3, layer_decay=0.5, warmup_ratio=0.0, stages=[
        StageConfig(epochs=1, lr=1e-3, trainable="head"),
        StageConfig(epochs=1, lr=5e-4, trainable="all")])
    optimizer = build_stage_optimizer(bert, config)
    scheduler = build_stage_scheduler(optimizer, config, steps_per_epoch=4)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [1e-3 * 0.5 ** (3 - g["depth"]) for g in optimizer.param_groups])
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    # the second stage starts at its own peak, half the base rate, with the same ratios
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [5e-4 * 0.5 ** (3 - g["depth"]) for g in optimizer.param_groups])


# --- stages and their schedule ------------------------------------------------------------


def two_stage_config(scheduler: str) -> TrainConfig:
    return TrainConfig(lr=1e-3, warmup_ratio=0.2, scheduler=scheduler, stages=[
        StageConfig(epochs=2, lr=1e-3, trainable="head"),
        StageConfig(epochs=1, lr=2e-4, trainable=TopBlocks(top_k_blocks=1))])


def test_resolve_stages() -> None:
    stages = resolve_stages(two_stage_config("linear"))
    assert [(s.index, s.epochs, s.lr, s.trainable, s.first_epoch) for s in stages] == [
        (0, 2, 1e-3, "head", 0), (1, 1, 2e-4, 1, 2)]
    assert [stage_at(stages, e).index for e in range(3)] == [0, 0, 1]
    single = resolve_stages(TrainConfig(epochs=4, lr=3e-5))
    assert [(s.epochs, s.lr, s.trainable, s.first_epoch) for s in single] == [
        (4, 3e-5, "all", 0)]
    assert two_stage_config("linear").total_epochs == 3


# 5 steps per epoch. Stage 0: steps 0-9, warmup round(0.2 * 10) = 2, peak 1.
# Stage 1: steps 10-14, warmup round(0.2 * 5) = 1, peak 2e-4 / 1e-3 = 0.2.
STEPS = [0, 1, 2, 6, 9, 10, 11, 13, 14, 15]
EXPECTED = {
    "linear": [0.5, 1.0, 1.0, 0.5, 0.125, 0.2, 0.2, 0.1, 0.05, 0.0],
    "cosine": [0.5, 1.0, 1.0, 0.5, 0.5 * (1 + math.cos(math.pi * 7 / 8)), 0.2, 0.2, 0.1,
               0.1 * (1 + math.cos(math.pi * 3 / 4)), 0.0],
    "constant": [0.5, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2, 0.2, 0.2, 0.2],
}


@pytest.mark.parametrize("scheduler", sorted(EXPECTED))
def test_stage_schedule_restarts_warmup_at_each_stage(scheduler: str) -> None:
    config = two_stage_config(scheduler)
    multiplier = stage_schedule(resolve_stages(config), 5, config, base_lr=1e-3)
    assert [multiplier(s) for s in STEPS] == pytest.approx(EXPECTED[scheduler])


def test_stage_schedule_without_warmup_starts_each_stage_at_its_peak() -> None:
    config = two_stage_config("linear").model_copy(update={"warmup_ratio": 0.0})
    multiplier = stage_schedule(resolve_stages(config), 5, config, base_lr=1e-3)
    assert [multiplier(s) for s in (0, 5, 9, 10, 12, 14)] == pytest.approx(
        [1.0, 0.5, 0.1, 0.2, 0.2 * 3 / 5, 0.2 / 5])


# --- staged runs on the tiny BERT ---------------------------------------------------------
# 90 training rows, batch 16: 6 optimiser steps per epoch.


@pytest.fixture
def feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "feature-cache"
    monkeypatch.setenv("FITCLASS_CACHE", str(folder))
    return folder


@pytest.fixture
def keep_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave `checkpoints/` in finished runs, to read the last training state's weights."""
    real = shutil.rmtree

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name != "checkpoints":
            real(path, *args, **kwargs)

    monkeypatch.setattr(api.shutil, "rmtree", rmtree)


def staged_recipe(recipe_for: Callable[..., dict[str, Any]], train_csv: Path,
                  stages: list[dict[str, Any]], **train: Any) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv,
                      train={"batch_size": 16, "stages": stages, **train})


HEAD = {"epochs": 1, "lr": 3e-3, "trainable": "head"}
TOP1 = {"epochs": 1, "lr": 1e-3, "trainable": {"top_k_blocks": 1}}
ALL = {"epochs": 1, "lr": 1e-3, "trainable": "all"}


def pretrained(tiny_bert_dir: Path) -> dict[str, torch.Tensor]:
    """The backbone's weights under the classifier's names."""
    return {f"encoder.{k}": v for k, v in load_file(str(tiny_bert_dir / "model.safetensors"))
            .items()}


def last_weights(run_path: Path) -> dict[str, torch.Tensor]:
    """The weights at the run's last evaluation (the resumable training state)."""
    return load_file(str(run_path / "checkpoints" / "last" / "model.safetensors"))


def unchanged(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
              prefix: str) -> bool:
    keys = [k for k in reference if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(weights[k], reference[k]) for k in keys)


def test_three_stages_cached_head_then_top_block_then_all(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        tiny_bert_dir: Path, feature_cache: Path, keep_checkpoints: None) -> None:
    run = fitclass.train(staged_recipe(recipe_for, train_csv, [HEAD, TOP1, ALL]),
                         out=tmp_path / "run")
    assert json.loads((run.path / "status.json").read_text())["status"] == "finished"
    history = pd.read_csv(run.path / "history.csv")
    assert history["stage"].tolist() == [0, 1, 2]
    assert history["step"].tolist() == [6, 12, 18]
    assert history["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert history["cached_features"].iloc[0] == True  # noqa: E712 (numpy bool)
    assert history["cached_features"].iloc[1:].isna().all()
    assert np.isfinite(history["train_loss"]).all()
    # the head stage's features were written to the cache: train and validation texts
    assert len(list(feature_cache.glob("*.safetensors"))) == 2
    # the `all` stage moved everything, embeddings and the bottom layer included
    weights, reference = last_weights(run.path), pretrained(tiny_bert_dir)
    assert not unchanged(weights, reference, "encoder.embeddings.")
    assert not unchanged(weights, reference, f"{BLOCKS}.0.")
    assert not unchanged(weights, reference, f"{BLOCKS}.1.")


def test_head_and_top_block_stages_leave_lower_layers_untouched(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        tiny_bert_dir: Path, feature_cache: Path, keep_checkpoints: None) -> None:
    run = fitclass.train(staged_recipe(recipe_for, train_csv, [HEAD, TOP1]),
                         out=tmp_path / "run")
    history = pd.read_csv(run.path / "history.csv")
    assert history["stage"].tolist() == [0, 1]
    weights, reference = last_weights(run.path), pretrained(tiny_bert_dir)
    assert unchanged(weights, reference, "encoder.embeddings.")
    assert unchanged(weights, reference, f"{BLOCKS}.0.")
    assert not unchanged(weights, reference, f"{BLOCKS}.1.")
    # the final model (best checkpoint) keeps the pretrained bottom too
    final = load_file(str(run.path / "model" / "model.safetensors"))
    assert unchanged(final, reference, "encoder.embeddings.")
    assert unchanged(final, reference, f"{BLOCKS}.0.")


def test_cache_features_off_trains_the_head_stage_in_the_main_loop(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        tiny_bert_dir: Path, feature_cache: Path, keep_checkpoints: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_encode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("features extracted although cache_features is off")

    monkeypatch.setattr(TransformerClassifier, "encode", no_encode)
    recipe = staged_recipe(recipe_for, train_csv, [HEAD, TOP1], cache_features=False)
    run = fitclass.train(recipe, out=tmp_path / "run")
    history = pd.read_csv(run.path / "history.csv")
    assert "cached_features" not in history.columns
    assert history["stage"].tolist() == [0, 1]
    assert history["step"].tolist() == [6, 12]
    assert not list(feature_cache.glob("*.safetensors"))  # (token ids go to its tokens/)
    weights, reference = last_weights(run.path), pretrained(tiny_bert_dir)
    assert unchanged(weights, reference, "encoder.embeddings.")
    assert unchanged(weights, reference, f"{BLOCKS}.0.")
    assert not unchanged(weights, reference, f"{BLOCKS}.1.")


def test_layer_decay_recipe_trains(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        tiny_bert_dir: Path, feature_cache: Path, keep_checkpoints: None) -> None:
    recipe = staged_recipe(recipe_for, train_csv, [HEAD, ALL], layer_decay=0.5,
                           warmup_ratio=0.0)
    run = fitclass.train(recipe, out=tmp_path / "run")
    history = pd.read_csv(run.path / "history.csv")
    assert history["stage"].tolist() == [0, 1]
    assert np.isfinite(history["train_loss"]).all()
    weights, reference = last_weights(run.path), pretrained(tiny_bert_dir)
    assert not unchanged(weights, reference, "encoder.embeddings.")
    assert not unchanged(weights, reference, f"{BLOCKS}.0.")


def count_encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = TransformerClassifier.encode

    def encode(self: TransformerClassifier, texts: Any, batch_size: int = 64) -> Any:
        calls.append(len(texts))
        return real(self, texts, batch_size)

    monkeypatch.setattr(TransformerClassifier, "encode", encode)
    return calls


def test_second_identical_run_reads_features_from_the_cache(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        feature_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = staged_recipe(recipe_for, train_csv, [{**HEAD, "epochs": 2}])
    calls = count_encode_calls(monkeypatch)
    first = fitclass.train(recipe, out=tmp_path / "first")
    assert calls == [90, 30]  # train and validation texts, once each
    assert len(list(feature_cache.glob("*.safetensors"))) == 2

    def no_encode(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached features were computed again")

    monkeypatch.setattr(TransformerClassifier, "encode", no_encode)
    second = fitclass.train(recipe, out=tmp_path / "second")
    columns = ["step", "stage", "train_loss", "valid_loss", "cached_features"]
    pd.testing.assert_frame_equal(pd.read_csv(first.path / "history.csv")[columns],
                                  pd.read_csv(second.path / "history.csv")[columns])


def test_random_init_backbone_does_not_reuse_pretrained_features(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        feature_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`model.pretrained: false` encodes with random weights: the features cached for the
    pretrained weights of the same folder are not its features."""
    recipe = staged_recipe(recipe_for, train_csv, [HEAD])
    fitclass.train(recipe, out=tmp_path / "pretrained")
    calls = count_encode_calls(monkeypatch)
    scratch = {**recipe, "model": {**recipe["model"], "pretrained": False}}
    fitclass.train(scratch, out=tmp_path / "scratch")
    assert calls == [90, 30]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cached_head_stage_on_gpu(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        feature_cache: Path) -> None:
    """The module is on the GPU when the head trains on (CPU-computed) cached features."""
    run = fitclass.train(staged_recipe(recipe_for, train_csv, [HEAD, TOP1]),
                         out=tmp_path / "run")
    assert pd.read_csv(run.path / "history.csv")["stage"].tolist() == [0, 1]
