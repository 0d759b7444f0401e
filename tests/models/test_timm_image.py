"""`timm:<name>` backbones. timm does not import on the CPU machines this is tested on
(torchvision does not), so these tests stand a small stand-in `timm` package in its place
with the three entry points fitclass calls (`create_model(name, pretrained, num_classes=0)`,
`data.resolve_model_data_config`, `models.group_parameters`) and check fitclass's wiring:
preprocessing from timm's config, block depths from the model's `group_matcher`, stages,
training, save/load/predict, and the refusals."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from timm_standin import MEAN, STD, standin_timm

import fitclass
from fitclass.errors import RecipeError
from fitclass.models.catalog import get_backbone
from fitclass.models.timm_image import TimmBackbone, TimmClassifier
from fitclass.recipe import ModelConfig
from fitclass.training.stages import set_trainable


@pytest.fixture()
def timm() -> Iterator[types.ModuleType]:
    with standin_timm() as module:
        yield module


def test_preprocessing_and_head_come_from_timm(timm: types.ModuleType) -> None:
    backbone = get_backbone(ModelConfig(backbone="timm:tinynet", pretrained=False))
    assert isinstance(backbone, TimmBackbone)
    classifier = backbone.build(["a", "b", "c"])
    assert timm.created[-1] == {"name": "tinynet", "pretrained": False, "num_classes": 0}
    assert classifier.preprocess.size == 20 and classifier.preprocess.crop_pct == 0.9
    assert classifier.preprocess.mean == MEAN and classifier.preprocess.std == STD
    assert classifier.module.head.in_features == 16 and classifier.module.head.out_features == 3
    resized = get_backbone(ModelConfig(backbone="timm:tinynet", image_size=32))
    assert resized.preprocess().size == 32  # type: ignore[attr-defined]


def test_stages_follow_the_models_group_matcher(timm: types.ModuleType) -> None:
    module = get_backbone(ModelConfig(backbone="timm:tinynet", pretrained=False)).build(
        ["a", "b"]).module
    assert set(set_trainable(module, "head")) == {"head.weight", "head.bias"}
    top_one = set_trainable(module, 1)
    assert {n.split(".")[1] for n in top_one if n.startswith("encoder.")} == {"layer2"}
    assert "head.weight" in top_one
    two = set_trainable(module, 2)
    assert {n.split(".")[1] for n in two if n.startswith("encoder.")} == {"layer1", "layer2"}
    assert len(set_trainable(module, "all")) == len(list(module.parameters()))


def test_timm_run_trains_saves_and_predicts(timm: types.ModuleType, tmp_path: Path,
                                            image_folder_writer: Callable[..., Path]) -> None:
    image_folder_writer(tmp_path / "data" / "train", per_class=12)
    image_folder_writer(tmp_path / "data" / "valid", per_class=4, seed=1)
    recipe = {"data": {"train": str(tmp_path / "data"), "images": True},
              "model": {"backbone": "timm:tinynet", "pretrained": False, "image_size": 16},
              "train": {"stages": [{"epochs": 1, "lr": 1e-2, "trainable": "head"},
                                   {"epochs": 2, "lr": 3e-3, "trainable": "all"}],
                        "layer_decay": 0.8, "batch_size": 8, "seed": 0, "precision": "fp32"},
              "averaging": {"swa": {"k": 2, "keep": "always"}}}
    run = fitclass.train(recipe, out=tmp_path / "run")
    info = json.loads((run.path / "model" / "fitclass_model.json").read_text())
    assert info["kind"] == "timm-image" and info["timm_architecture"] == "tinynet"
    processor = json.loads((run.path / "model" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == list(MEAN) and processor["size"]["height"] == 16
    assert run.metrics["select"]["averaging"]["final"] == "swa"
    loaded = fitclass.load_run(run.path)
    assert isinstance(loaded.classifier, TimmClassifier)
    predicted = loaded.predict(tmp_path / "data" / "valid")
    saved = pd.read_csv(run.path / "valid_predictions.csv")
    columns = [c for c in saved.columns if c.startswith("prob:")]
    assert np.allclose(predicted[columns].to_numpy(), saved[columns].to_numpy(), atol=1e-5)


def test_refusals_name_the_fix(timm: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RecipeError, match=r"timm could not create 'nope'.*timm\.list_models"):
        get_backbone(ModelConfig(backbone="timm:nope")).build(["a", "b"])
    with pytest.raises(RecipeError, match="name the timm model"):
        get_backbone(ModelConfig(backbone="timm:"))
    monkeypatch.setitem(sys.modules, "timm", None)  # as on a machine where it cannot import
    with pytest.raises(RecipeError, match="timm does not import"):
        get_backbone(ModelConfig(backbone="timm:resnet18"))
