"""Every model kind declares its capabilities, the recipe reads them without importing a
model, and callers ask them instead of matching a kind's name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fitclass.capabilities import DECLARED, TEXT_TRANSFORMER, Capabilities, capabilities_for
from fitclass.errors import RecipeError
from fitclass.models.catalog import backbone_kinds, backbone_names, get_backbone
from fitclass.recipe import ModelConfig, load_recipe


def test_every_registered_kind_declares_capabilities() -> None:
    kinds = backbone_kinds()
    assert {cls.kind for cls in kinds} >= {"transformer", "tfidf", "image", "timm-image",
                                           "ensemble"}
    for cls in kinds:
        assert isinstance(cls.__dict__.get("capabilities"), Capabilities), cls


def test_classifiers_carry_their_kinds_capabilities() -> None:
    """A fitted or loaded classifier answers for its kind (ONNX export asks it)."""
    from fitclass.models import classical, ensemble, image, text, timm_image

    assert text.TransformerClassifier.capabilities is text.TransformerBackbone.capabilities
    assert classical.LinearTextClassifier.capabilities is capabilities_for("tfidf")
    assert ensemble.EnsembleClassifier.capabilities is capabilities_for("ensemble")
    assert image.ImageClassifier.capabilities is capabilities_for("resnet-tiny")
    assert timm_image.TimmClassifier.capabilities is capabilities_for("timm:resnet18")
    assert TEXT_TRANSFORMER.masked_lm and TEXT_TRANSFORMER.onnx_export


def test_declared_data_matches_the_kinds() -> None:
    """The cheap declarations the recipe reads are the kinds' own capabilities."""
    for name in backbone_names():
        if name == "resnet-tiny":  # built without weights, so pretrained must be false
            config = ModelConfig(backbone=name, pretrained=False)
        else:
            config = ModelConfig(backbone=name)
        assert capabilities_for(name) is get_backbone(config).capabilities, name
    assert set(DECLARED.names()) == set(backbone_names())
    assert capabilities_for("timm:resnet18") is not None
    assert capabilities_for("some/hub-model") is None  # known once its config is read


def test_the_recipe_reads_capabilities_without_importing_torch() -> None:
    code = ("import sys, fitclass.recipe, fitclass.capabilities; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_kind_keys_are_refused_for_other_kinds_by_capability() -> None:
    recipe = {"data": {"train": "t.csv"}, "model": {"backbone": "minilm", "C": 2.0}}
    with pytest.raises(RecipeError, match=r"model\.C only apply to backbone: tfidf"):
        load_recipe(recipe)
    resolved = load_recipe({"data": {"train": "t.csv"}, "model": {"backbone": "minilm"}})
    assert "C" not in resolved.to_dict()["model"]
    assert "C" in load_recipe({"data": {"train": "t.csv"},
                               "model": {"backbone": "tfidf"}}).to_dict()["model"]


def test_a_classical_kind_is_refused_neural_settings_by_capability() -> None:
    with pytest.raises(RecipeError, match=r"imbalance\.sampler needs a neural backbone"):
        load_recipe({"data": {"train": "t.csv"}, "model": {"backbone": "tfidf"},
                     "imbalance": {"sampler": "weighted"}})
    tfidf = capabilities_for("tfidf")
    assert TEXT_TRANSFORMER.neural and tfidf is not None and not tfidf.neural
