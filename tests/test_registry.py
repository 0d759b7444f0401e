"""The generic `Registry`: registration by decorator, lookup, claims, and the error that
lists the valid names."""

from __future__ import annotations

import pytest

from fitclass.decide.combiners import METHODS
from fitclass.errors import RecipeError
from fitclass.models.linear_heads import HEADS
from fitclass.registry import Registry
from fitclass.tracking import TRACKERS
from fitclass.training.losses import LOSSES
from fitclass.training.samplers import SAMPLERS


def test_register_get_and_names() -> None:
    shapes: Registry[int] = Registry("shape", "model.shape")

    @shapes.register("square")
    def square() -> int:
        return 4

    shapes.add("triangle", lambda: 3)
    assert shapes.get("square") is square and shapes.get("triangle")() == 3
    assert shapes.names() == ["square", "triangle"] and list(shapes) == shapes.names()
    assert "square" in shapes and "circle" not in shapes


def test_a_wrong_name_lists_the_valid_ones() -> None:
    shapes: Registry[int] = Registry("shape", "model.shape")
    shapes.add("square", 4)
    shapes.add("triangle", 3)
    with pytest.raises(RecipeError, match=r"model\.shape: unknown shape 'circle'; choose one "
                                          r"of \['square', 'triangle'\]"):
        shapes.get("circle")
    assert shapes.find("circle") is None


def test_claims_take_unregistered_names_in_order() -> None:
    sources: Registry[str] = Registry("source", "model.backbone")
    sources.add("timm:exact", "registered")
    sources.claim(lambda name: name.startswith("timm:"))("timm")
    sources.claim(lambda name: name.startswith("t"))("t-anything")
    assert sources.get("timm:resnet") == "timm"
    assert sources.get("timm:exact") == "registered"  # a registered name wins over claims
    assert sources.get("tiny") == "t-anything"
    assert sources.names() == ["timm:exact"]  # claimed sources are not names


def test_the_built_in_registries_are_registries() -> None:
    assert {"ce", "bce", "focal"} <= set(LOSSES.names())
    assert {"none", "weighted", "class_aware"} <= set(SAMPLERS.names())
    assert {"logreg", "linear_svm", "nbsvm"} <= set(HEADS.names())
    assert {"tensorboard", "mlflow"} <= set(TRACKERS.names())
    assert {"mean", "weighted", "greedy", "stacking", "best"} <= set(METHODS.names())
    with pytest.raises(RecipeError, match=r"imbalance\.sampler: unknown sampler 'nope'"):
        SAMPLERS.get("nope")


def test_sweep_samplers_and_pruners_are_registries() -> None:
    from fitclass.sweep import PRUNERS, SWEEP_SAMPLERS

    assert SWEEP_SAMPLERS.names() == ["cmaes", "grid", "random", "tpe"]
    assert PRUNERS.names() == ["hyperband", "median", "none"]
