"""`train.compile`: the training forward compiles without graph breaks (the `aot_eager`
backend traces through dynamo and AOT autograd without generating code) and recompiles at
most once, when the first batch of another length arrives (then dynamic); training still
converges to the same kind of run and the saved module is the plain one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_compiler

import fitclass
from fitclass.recipe import load_recipe
from fitclass.training import compiling


class GraphCounter:
    """An aot_eager-like backend that counts the graphs dynamo hands it."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, inputs: list[Any]) -> Any:
        self.graphs += 1

        def run(module: torch.fx.GraphModule, _inputs: list[Any]) -> Any:
            return module.forward

        return aot_autograd(fw_compiler=make_boxed_compiler(run))(graph, inputs)


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> GraphCounter:
    torch._dynamo.reset()
    counting = GraphCounter()
    monkeypatch.setattr(compiling, "BACKEND", counting)
    return counting


def test_compiled_training_has_no_graph_breaks_and_recompiles_at_most_once(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        counter: GraphCounter) -> None:
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16,
                                                      "compile": True, "precision": "fp32"})
    run = fitclass.train(recipe, out=tmp_path / "run")
    stats = torch._dynamo.utils.counters
    assert not stats["graph_break"], dict(stats["graph_break"])
    # one graph for the first batch's shapes, one dynamic graph after a new length
    assert 1 <= counter.graphs <= 2, counter.graphs
    assert run.metrics["accuracy"] is not None
    loaded = fitclass.load_run(run.path)
    assert not hasattr(loaded.classifier.module, "_orig_mod")  # type: ignore[attr-defined]


def test_packed_token_budget_batches_compile_without_graph_breaks(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        counter: GraphCounter) -> None:
    """Packed batches (bins of varying count and width, a block-diagonal mask, per-row
    pooling by index) trace as one graph and become dynamic at the first other shape: at
    most one recompile, not one per bin layout."""
    recipe = recipe_for("tiny_bert", train_csv, train={
        "epochs": 2, "batch_tokens": 128, "packing": "on", "compile": True,
        "precision": "fp32"})
    run = fitclass.train(recipe, out=tmp_path / "run")
    stats = torch._dynamo.utils.counters
    assert not stats["graph_break"], dict(stats["graph_break"])
    assert 1 <= counter.graphs <= 2, counter.graphs
    environment = json.loads((run.path / "environment.json").read_text())
    assert environment["batching"]["mode"] == "packed"


def test_image_models_compile_under_the_same_policy(
        tmp_path: Path, image_folder_writer: Callable[..., Path], counter: GraphCounter) -> None:
    """An image run goes through the same loop: its forward (evaluation geometry,
    normalisation, encoder, head) compiles without graph breaks under `train.compile`."""
    image_folder_writer(tmp_path / "images" / "train", per_class=6)
    image_folder_writer(tmp_path / "images" / "valid", per_class=2, seed=1)
    run = fitclass.train({
        "data": {"train": str(tmp_path / "images"), "images": True},
        "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": 16},
        "train": {"epochs": 1, "batch_size": 8, "compile": True, "precision": "fp32"}},
        out=tmp_path / "run")
    stats = torch._dynamo.utils.counters
    assert not stats["graph_break"], dict(stats["graph_break"])
    assert 1 <= counter.graphs <= 2, counter.graphs  # 18 rows: batches of 8, 8 and 2
    assert run.metrics["n"] == 6


def test_compile_setting() -> None:
    base = {"data": {"train": "t.csv"}}
    assert load_recipe(base | {"train": {"compile": True}}).train.compile == "on"
    assert load_recipe(base | {"train": {"compile": False}}).train.compile == "off"
    assert compiling.wants_compile("auto", torch.device("cuda"))
    assert not compiling.wants_compile("auto", torch.device("cpu"))
    assert compiling.wants_compile("on", torch.device("cpu"))
