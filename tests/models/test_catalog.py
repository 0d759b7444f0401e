"""Backbone registry and model folders: names, local HF folders, loading saved models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fitclass
from fitclass.errors import RecipeError, RunError
from fitclass.models.catalog import backbone_names, get_backbone, load_classifier
from fitclass.models.text import TransformerBackbone, default_pooling, embedded_minilm_path
from fitclass.recipe import ModelConfig


def test_builtin_backbones_are_registered() -> None:
    assert {"minilm", "tfidf"} <= set(backbone_names())


def test_unregistered_name_is_a_transformer_source(tiny_bert_dir: Path) -> None:
    backbone = get_backbone(ModelConfig(backbone=str(tiny_bert_dir), max_length=16))
    assert isinstance(backbone, TransformerBackbone)
    assert backbone.source == str(tiny_bert_dir)
    assert backbone.max_length == 16
    lengths = backbone.token_lengths(["football team", "a " * 40])
    assert lengths[0] == 4  # [CLS] football team [SEP]
    assert lengths[1] == 42  # never truncated: the truncation check needs full lengths


def test_default_pooling_follows_the_folder(tiny_bert_dir: Path) -> None:
    assert default_pooling(str(tiny_bert_dir)) == "cls"
    assert default_pooling(embedded_minilm_path()) == "mean"


def test_missing_backbone_folder_is_a_recipe_error(tmp_path: Path, train_csv: Path,
                                                   recipe_for) -> None:
    missing = tmp_path / "no-such-model"
    recipe = recipe_for("tiny_bert", train_csv, model={"backbone": str(missing)})
    with pytest.raises(RecipeError) as info:
        fitclass.train(recipe, out=tmp_path / "run")
    assert f"model.backbone {str(missing)!r}" in str(info.value)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "RecipeError" in status["error"]


def test_folder_without_weights_is_refused_not_randomised(tmp_path: Path, tiny_bert_dir: Path,
                                                         train_csv: Path, recipe_for) -> None:
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "model.safetensors").unlink()
    recipe = recipe_for("tiny_bert", train_csv, model={"backbone": str(folder)},
                        train={"epochs": 1})
    with pytest.raises(RecipeError, match=r"model\.pretrained: false"):
        fitclass.train(recipe, out=tmp_path / "run")
    recipe["model"]["pretrained"] = False
    run = fitclass.train(recipe, out=tmp_path / "random-init")
    assert run.predict(["football"]).shape == (1, 5)


def test_saved_transformer_folder_is_self_contained(tmp_path: Path, tiny_bert_dir: Path,
                                                    train_csv: Path, recipe_for) -> None:
    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_bert_dir, backbone)
    recipe = recipe_for("tiny_bert", train_csv, model={"backbone": str(backbone)},
                        train={"epochs": 1})
    run = fitclass.train(recipe, out=tmp_path / "run")
    model_dir = run.path / "model"
    info = json.loads((model_dir / "fitclass_model.json").read_text())
    assert info["kind"] == "transformer" and info["pooling"] == "cls"
    assert info["max_length"] == 32 and info["class_names"] == ["food", "sports", "tech"]
    assert (model_dir / "config.json").is_file() and (model_dir / "model.safetensors").is_file()
    shutil.rmtree(backbone)  # the run must not need the folder it was trained from
    classifier = load_classifier(model_dir)
    probs = classifier.predict_proba(["football team", "pizza and cheese"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(fitclass.load_run(run.path).predict_proba(["football team"]).sum(), 1.0)


def test_saved_tfidf_folder_has_no_pickle(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    run = fitclass.train(recipe_for("tfidf", train_csv), out=tmp_path / "run")
    files = sorted(p.name for p in (run.path / "model").iterdir())
    assert files == ["fitclass_model.json", "vocabulary.json", "weights.safetensors"]
    info = json.loads((run.path / "model" / "fitclass_model.json").read_text())
    assert info["kind"] == "tfidf" and info["vectorizer"]["analyzer"] == "char_wb"


def test_load_classifier_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a saved fitclass model"):
        load_classifier(tmp_path)
    (tmp_path / "fitclass_model.json").write_text(json.dumps({"kind": "xgboost"}))
    with pytest.raises(RunError, match="unknown model kind 'xgboost'"):
        load_classifier(tmp_path)
