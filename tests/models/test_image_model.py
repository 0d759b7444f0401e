"""Image backbones end to end: a tiny ResNet from config trained on pattern images, saved,
reloaded and predicting like a text run; HF image model folders; clear refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from transformers import ResNetConfig, ResNetForImageClassification

import fitclass
from fitclass.errors import RecipeError
from fitclass.models.catalog import get_backbone
from fitclass.models.image import RESNET_TINY, ImageBackbone, ImageClassifier
from fitclass.recipe import ModelConfig, load_recipe


def image_recipe(root: Path, **sections: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "data": {"train": str(root), "images": True},
        "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": 16},
        "augment": {"crop_scale": [0.8, 1.0], "mixup": {"p": 0.5, "alpha": 0.4}},
        "noise": {"label_smoothing": 0.05},
        "train": {"epochs": 4, "batch_size": 8, "lr": 3e-3, "eval_batch_size": 32,
                  "seed": 0, "precision": "fp32"},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory,
               image_folder_writer: Callable[..., Path]) -> Path:
    root = tmp_path_factory.mktemp("images")
    image_folder_writer(root / "train", per_class=16)
    image_folder_writer(root / "valid", per_class=6, seed=1)
    return root


@pytest.fixture(scope="module")
def image_run(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> fitclass.Run:
    return fitclass.train(image_recipe(image_root),
                          out=tmp_path_factory.mktemp("image-run") / "run")


def test_image_run_trains_saves_and_predicts(image_run: fitclass.Run, image_root: Path) -> None:
    metrics = image_run.metrics
    assert metrics["n"] == 18 and metrics["accuracy"] > 0.5  # chance is 1/3
    model_dir = image_run.path / "model"
    assert json.loads((model_dir / "fitclass_model.json").read_text())["kind"] == "image"
    processor = json.loads((model_dir / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 16, "width": 16}
    checks = json.loads((image_run.path / "data_checks.json").read_text())
    assert checks["errors"] == []
    loaded = fitclass.load_run(image_run.path)
    assert isinstance(loaded.classifier, ImageClassifier)
    predicted = loaded.predict(image_root / "valid")
    saved = pd.read_csv(image_run.path / "valid_predictions.csv")
    assert list(predicted["path"]) == list(saved["path"])
    columns = [c for c in saved.columns if c.startswith("prob:")]
    assert np.allclose(predicted[columns].to_numpy(), saved[columns].to_numpy(), atol=1e-5)
    evaluated = loaded.evaluate(image_root / "valid")
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])
    files = [str(p) for p in sorted((image_root / "valid" / "down").glob("*.png"))]
    by_paths = loaded.predict(files)
    assert len(by_paths) == 6 and set(by_paths["label"]) <= {"across", "checks", "down"}


def test_image_recipe_round_trips_through_the_run(image_run: fitclass.Run) -> None:
    recipe = load_recipe(image_run.path / "recipe.yaml")
    assert recipe.data.images is not None and recipe.augment.mixup is not None
    assert recipe.model.backbone == "resnet-tiny"


def test_hf_image_folder_reads_its_preprocessing(tmp_path: Path) -> None:
    folder = tmp_path / "hf-resnet"
    ResNetForImageClassification(ResNetConfig(**RESNET_TINY)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.4, 0.45, 0.5], "image_std": [0.2, 0.25, 0.3],
         "size": {"shortest_edge": 24}, "crop_pct": 0.875}))
    backbone = get_backbone(ModelConfig(backbone=str(folder)))
    assert isinstance(backbone, ImageBackbone)
    classifier = backbone.build(["a", "b"])
    assert classifier.preprocess.size == 24 and classifier.preprocess.crop_pct == 0.875
    assert classifier.preprocess.mean == (0.4, 0.45, 0.5)
    saved = ResNetForImageClassification.from_pretrained(folder)
    first = "embedder.embedder.convolution.weight"
    assert np.allclose(classifier.module.encoder.state_dict()[first].numpy(),
                       saved.resnet.state_dict()[first].numpy())
    resized = get_backbone(ModelConfig(backbone=str(folder), image_size=32))
    assert isinstance(resized, ImageBackbone) and resized.preprocess().size == 32


def test_refusals_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # as here, where torchvision cannot import
    with pytest.raises(RecipeError, match="timm does not import"):
        get_backbone(ModelConfig(backbone="timm:resnet18"))
    with pytest.raises(RecipeError, match=r"set model\.pretrained: false"):
        get_backbone(ModelConfig(backbone="resnet-tiny"))
    with pytest.raises(RecipeError, match=r"reads text; with data\.images use resnet-tiny"):
        load_recipe({"data": {"train": str(tmp_path), "images": True}})
    with pytest.raises(RecipeError, match="augment applies to image inputs"):
        load_recipe({"data": {"train": "x.csv"}, "augment": {"flip": False}})


def test_multilabel_image_table_trains(image_root: Path, tmp_path: Path) -> None:
    files = sorted((image_root / "train").rglob("*.png"))
    pd.DataFrame({"file": [str(f) for f in files],
                  "tags": [f.parent.name + ("|odd" if i % 2 else "")
                           for i, f in enumerate(files)]}).to_csv(tmp_path / "t.csv",
                                                                   index=False)
    recipe = image_recipe(tmp_path / "t.csv",
                          data={"train": str(tmp_path / "t.csv"), "label": "tags",
                                "label_sep": "|", "images": {"column": "file"},
                                "split": {"valid_size": 0.25}},
                          augment={"cutmix": {"p": 0.5}}, train={"epochs": 1})
    recipe["task"] = "multilabel"
    run = fitclass.train(recipe, out=tmp_path / "run")
    assert run.metrics["n"] == 12 and "samples_f1" in run.metrics


def test_cnn_stages_layer_decay_and_swa_with_batchnorm(image_root: Path,
                                                       tmp_path: Path) -> None:
    """Head-only, top-2-blocks and full stages with layer decay, then SWA (whose averaged
    weights need BatchNorm statistics recomputed) on the tiny ResNet."""
    recipe = image_recipe(image_root, train={
        "stages": [{"epochs": 1, "lr": 1e-2, "trainable": "head"},
                   {"epochs": 1, "lr": 3e-3, "trainable": {"top_k_blocks": 2}},
                   {"epochs": 2, "lr": 1e-3, "trainable": "all"}],
        "layer_decay": 0.8})
    recipe["averaging"] = {"swa": {"k": 2, "keep": "always"}}
    run = fitclass.train(recipe, out=tmp_path / "run")
    history = pd.read_csv(run.path / "history.csv")
    assert list(history["stage"]) == [0, 1, 2, 2]
    assert run.metrics["select"]["averaging"]["final"] == "swa"
    assert run.metrics["accuracy"] > 0.4


def test_audit_runs_on_image_folders(image_root: Path, tmp_path: Path) -> None:
    """`fitclass audit` cross-fits image runs like text runs: fold tables of paths."""
    from fitclass.noise.audit import audit

    recipe = image_recipe(image_root, train={"epochs": 1})
    result = audit(recipe, tmp_path / "suspects.csv", folds=2)
    assert result.oof_probs.shape == (48, 3)
    assert np.allclose(result.oof_probs.sum(1), 1.0, atol=1e-5)
    assert (tmp_path / "suspects.csv").is_file()


@pytest.mark.parametrize("family", ["vit", "convnext"])
def test_other_hf_image_families(family: str, tmp_path: Path,
                                 image_root: Path) -> None:
    """ViT pools its class token, ConvNeXt its pooler output; both get our head."""
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ViTConfig,
        ViTForImageClassification,
    )

    folder = tmp_path / family
    if family == "vit":
        ViTForImageClassification(ViTConfig(
            image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    else:
        ConvNextForImageClassification(ConvNextConfig(
            hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1])).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": 0.5, "image_std": 0.5, "size": {"height": 32, "width": 32}}))
    backbone = get_backbone(ModelConfig(backbone=str(folder), image_size=16 if family == "vit"
                                        else None))
    assert isinstance(backbone, ImageBackbone)
    classifier = backbone.build(["a", "b", "c"])
    image = next((image_root / "train" / "down").glob("*.png"))
    probs = classifier.predict_proba([str(image)])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1.0)
    if family == "convnext":
        small = get_backbone(ModelConfig(backbone=str(folder), image_size=8))
        assert isinstance(small, ImageBackbone)
        with pytest.raises(RecipeError, match=r"cannot take 8x8 images.*model\.image_size"):
            small.build(["a", "b"])
