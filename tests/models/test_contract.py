"""The model-kind contract: one set of tests that every kind of model must pass.

Each kind (tiny text transformer, TF-IDF, tiny image CNN, and a timm model through the
stand-in `timm` of `timm_standin.py`) trains once per module on small synthetic data; the
tests then inspect the run directory, reload it, predict and evaluate. The text kinds also
pass the text-specific checks below (ids, file formats, exact counts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from timm_standin import standin_timm

import fitclass
from fitclass.capabilities import Capabilities
from fitclass.errors import DataError
from fitclass.models.catalog import get_backbone
from fitclass.recipe import load_recipe
from fitclass.runs.run import Run

TEXT_KINDS = ["tiny_bert", "tfidf"]
IMAGE_KINDS = ["resnet-tiny", "timm-standin"]
ALL_KINDS = TEXT_KINDS + IMAGE_KINDS
CLASSES = ["food", "sports", "tech"]
IMAGE_CLASSES = ["across", "checks", "down"]
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1",
               "pr_auc_macro", "roc_auc_macro", "log_loss", "n", "per_class",
               "confusion_matrix", "label_distribution", "predicted_distribution"}
RUN_FILES = ["recipe.yaml", "labels.json", "metrics.json", "history.csv",
             "valid_predictions.csv", "data_checks.json", "environment.json", "status.json",
             "decision.json"]
#: Unseen sentences, one obvious keyword pair each.
NEW_TEXTS = {"the coach said my team will score a goal": "sports",
             "my laptop runs new software and code": "tech",
             "a soup with bread and cheese from the kitchen": "food"}
IMAGES_PER_CLASS, VALID_IMAGES_PER_CLASS = 16, 6


@dataclass
class Trained:
    kind: str
    recipe: dict[str, Any]
    run: Run
    path: Path
    train_csv: Path  # the text kinds' table; the image kinds' data folder
    classes: list[str]
    valid_rows: int
    new_inputs: list[str]  # unseen inputs to predict (texts or image paths)
    valid_source: Path  # what `evaluate` reads to reproduce the validation metrics


def image_recipe(kind: str, root: Path) -> dict[str, Any]:
    backbone = "resnet-tiny" if kind == "resnet-tiny" else "timm:tinynet"
    return {"data": {"train": str(root), "images": True},
            "model": {"backbone": backbone, "pretrained": False, "image_size": 16},
            "train": {"epochs": 4, "batch_size": 8, "lr": 3e-3, "eval_batch_size": 32,
                      "seed": 0, "precision": "fp32"}}


def train_text(kind: str, folder: Path, train_csv: Path,
               recipe_for: Callable[..., dict[str, Any]]) -> Trained:
    recipe = recipe_for(kind, train_csv)
    run = fitclass.train(recipe, out=folder / "run")
    return Trained(kind, recipe, run, folder / "run", train_csv, CLASSES, 30,
                   list(NEW_TEXTS), validation_rows(train_csv, folder / "run", folder))


def train_images(kind: str, folder: Path, write: Callable[..., Path]) -> Trained:
    root = folder / "data"
    write(root / "train", per_class=IMAGES_PER_CLASS)
    write(root / "valid", per_class=VALID_IMAGES_PER_CLASS, seed=1)
    recipe = image_recipe(kind, root)
    run = fitclass.train(recipe, out=folder / "run")
    unseen = write(folder / "unseen", per_class=1, seed=7)
    return Trained(kind, recipe, run, folder / "run", root, IMAGE_CLASSES,
                   3 * VALID_IMAGES_PER_CLASS, [str(p) for p in sorted(unseen.rglob("*.png"))],
                   root / "valid")


@pytest.fixture(scope="module", params=ALL_KINDS)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
            image_folder_writer: Callable[..., Path]) -> Iterator[Trained]:
    kind = request.param
    folder = tmp_path_factory.mktemp(f"contract-{kind}")
    if kind in TEXT_KINDS:
        yield train_text(kind, folder, train_csv, recipe_for)
        return
    with standin_timm():  # the stand-in stays in place while its run is loaded again
        yield train_images(kind, folder, image_folder_writer)


#: The text-specific checks run on the text kinds only.
text_kinds = pytest.mark.parametrize("trained", TEXT_KINDS, indirect=True)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def prob_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("prob:")]


def validation_rows(train_csv: Path, run_path: Path, folder: Path,
                    suffix: str = ".csv") -> Path:
    """The validation rows of a text run, as a file of the training table's format."""
    ids = pd.read_csv(run_path / "valid_predictions.csv", dtype={"id": str})["id"]
    source = pd.read_csv(train_csv, dtype=str)
    rows = source[source["id"].isin(set(ids))]
    path = folder / f"valid{suffix}"
    if suffix == ".jsonl":
        rows.to_json(path, orient="records", lines=True)
    else:
        rows.to_csv(path, index=False)
    return path


# -- every kind ----------------------------------------------------------------------------


def test_train_returns_a_finished_run(trained: Trained) -> None:
    assert isinstance(trained.run, Run)
    assert trained.run.path == trained.path
    assert trained.run.class_names == trained.classes


def test_the_kind_declares_its_capabilities(trained: Trained) -> None:
    backbone = get_backbone(load_recipe(trained.recipe).model)
    declared = type(backbone).__dict__.get("capabilities")
    assert isinstance(declared, Capabilities), type(backbone)  # its own, not inherited
    assert declared.modality == ("text" if trained.kind in TEXT_KINDS else "image")
    assert declared.neural == (trained.kind != "tfidf")
    assert declared.trainable


def test_run_directory_layout(trained: Trained) -> None:
    for name in RUN_FILES:
        assert (trained.path / name).is_file(), name
    model_dir = trained.path / "model"
    assert model_dir.is_dir()
    assert (model_dir / "fitclass_model.json").is_file()
    assert not (trained.path / "checkpoints").exists()  # the best weights live in model/
    assert not list(trained.path.glob(".*staging*"))


def test_status_is_finished(trained: Trained) -> None:
    status = read_json(trained.path / "status.json")
    assert status["status"] == "finished"
    assert status["wall_seconds"] >= 0 and "started" in status and "updated" in status


def test_recipe_yaml_is_the_resolved_recipe(trained: Trained) -> None:
    saved = yaml.safe_load((trained.path / "recipe.yaml").read_text())
    assert saved["model"]["backbone"] == trained.recipe["model"]["backbone"]
    assert saved["train"]["seed"] == 0
    assert Path(saved["data"]["train"]) == trained.train_csv


def test_metrics_json(trained: Trained) -> None:
    metrics = read_json(trained.path / "metrics.json")
    n = trained.valid_rows
    assert set(metrics) >= METRIC_KEYS
    assert metrics["n"] == n
    assert sum(metrics["label_distribution"].values()) == n
    assert sum(metrics["predicted_distribution"].values()) == n
    assert set(metrics["per_class"]) == set(trained.classes)
    assert np.array(metrics["confusion_matrix"]).sum() == n
    assert metrics["select"]["metric"] == "macro_f1" and metrics["select"]["mode"] == "max"
    assert metrics == trained.run.metrics


def test_history_csv(trained: Trained) -> None:
    history = pd.read_csv(trained.path / "history.csv")
    assert len(history) >= 1
    assert {"step", "epoch", "accuracy", "macro_f1", "is_best"} <= set(history.columns)
    assert history["is_best"].any()
    best = read_json(trained.path / "metrics.json")["select"]
    assert best["step"] in history["step"].tolist()


def test_environment_and_data_checks(trained: Trained) -> None:
    environment = read_json(trained.path / "environment.json")
    assert environment["seed"] == 0
    assert environment["packages"]["fitclass"] == fitclass.__version__
    assert read_json(trained.path / "data_checks.json")["errors"] == []


def test_valid_predictions_csv(trained: Trained) -> None:
    frame = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})
    assert {"true_label", "label"} <= set(frame.columns)
    assert prob_columns(frame) == [f"prob:{c}" for c in trained.classes]
    assert len(frame) == trained.valid_rows
    assert np.allclose(frame[prob_columns(frame)].sum(axis=1), 1.0, atol=1e-5)
    accuracy = (frame["label"] == frame["true_label"]).mean()
    assert accuracy == pytest.approx(read_json(trained.path / "metrics.json")["accuracy"])


def test_predict_new_inputs(trained: Trained) -> None:
    frame = fitclass.load_run(trained.path).predict(trained.new_inputs)
    assert prob_columns(frame) == [f"prob:{c}" for c in trained.classes]
    probs = frame[prob_columns(frame)].to_numpy()
    assert probs.shape == (len(trained.new_inputs), len(trained.classes))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert frame["label"].tolist() == [trained.classes[i] for i in probs.argmax(axis=1)]


def test_predictions_survive_reload(trained: Trained) -> None:
    returned = trained.run.predict(trained.new_inputs)
    loaded = fitclass.load_run(trained.path).predict(trained.new_inputs)
    assert returned["label"].tolist() == loaded["label"].tolist()
    assert np.allclose(returned[prob_columns(returned)], loaded[prob_columns(loaded)])


def test_reloaded_model_reproduces_training_time_predictions(trained: Trained) -> None:
    """valid_predictions.csv comes from the in-memory model at the end of training."""
    saved = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})
    again = fitclass.load_run(trained.path).predict(trained.valid_source)
    key = "id" if "id" in saved.columns else "path"
    again = again.astype({key: str}).set_index(key).loc[saved[key].astype(str)]
    assert again["label"].tolist() == saved["label"].tolist()
    assert np.allclose(again[prob_columns(saved)].to_numpy(),
                       saved[prob_columns(saved)].to_numpy(), atol=1e-5)


def test_predict_proba_is_calibrated_like_predict(trained: Trained) -> None:
    run = fitclass.load_run(trained.path)
    frame = run.predict(trained.new_inputs)
    assert np.allclose(run.predict_proba(trained.new_inputs), frame[prob_columns(frame)])


def test_evaluate_on_validation_rows_matches_metrics(trained: Trained) -> None:
    metrics = read_json(trained.path / "metrics.json")
    scored = fitclass.load_run(trained.path).evaluate(trained.valid_source)
    assert scored["n"] == metrics["n"] == trained.valid_rows
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "log_loss"):
        assert scored[key] == pytest.approx(metrics[key], abs=1e-6), key
    assert scored["confusion_matrix"] == metrics["confusion_matrix"]


def test_learns_above_chance(trained: Trained) -> None:
    # the text data's majority class is half the validation rows; the images' a third
    assert trained.run.metrics["accuracy"] > 0.5, trained.run.metrics["accuracy"]


# -- the text kinds ------------------------------------------------------------------------


@text_kinds
def test_labels_json_and_class_counts(trained: Trained) -> None:
    labels = read_json(trained.path / "labels.json")
    assert labels.pop("data_fingerprint").startswith("sha256:")  # what the data was
    assert labels == {"task": "multiclass", "classes": CLASSES, "train_counts": [15, 45, 30]}
    checks = read_json(trained.path / "data_checks.json")
    assert checks["class_counts"]["train"] == {"sports": 45, "tech": 30, "food": 15}
    metrics = read_json(trained.path / "metrics.json")
    assert metrics["label_distribution"] == {"food": 5, "sports": 15, "tech": 10}
    assert trained.run.recipe.data.id == "id"


@text_kinds
def test_valid_predictions_keep_the_ids(trained: Trained) -> None:
    frame = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})
    assert frame.columns[0] == "id"
    source = pd.read_csv(trained.train_csv).set_index("id")
    assert (source.loc[frame["id"], "label"].to_numpy() == frame["true_label"]).all()


@text_kinds
def test_predict_texts_numbers_the_rows(trained: Trained) -> None:
    frame = fitclass.load_run(trained.path).predict(list(NEW_TEXTS))
    assert list(frame.columns) == ["row", "label", *(f"prob:{c}" for c in CLASSES)]
    assert frame["row"].tolist() == ["0", "1", "2"]


@text_kinds
def test_evaluate_a_jsonl_file(trained: Trained, tmp_path: Path) -> None:
    metrics = read_json(trained.path / "metrics.json")
    rows = validation_rows(trained.train_csv, trained.path, tmp_path, ".jsonl")
    scored = fitclass.load_run(trained.path).evaluate(rows)
    assert scored["n"] == 30
    assert scored["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)


@text_kinds
def test_evaluate_a_frame(trained: Trained) -> None:
    frame = pd.read_csv(trained.valid_source, dtype=str)
    scored = fitclass.load_run(trained.path).evaluate(frame)
    assert scored["accuracy"] == pytest.approx(trained.run.metrics["accuracy"])


@text_kinds
def test_predict_a_file_keeps_ids_and_order(trained: Trained) -> None:
    frame = fitclass.load_run(trained.path).predict(trained.valid_source)
    source = pd.read_csv(trained.valid_source, dtype=str)
    assert frame["id"].tolist() == source["id"].tolist()
    assert frame["true_label"].tolist() == source["label"].tolist()  # labels carried along


@text_kinds
def test_evaluate_rejects_labels_the_model_never_saw(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": ["x"], "text": ["a song"], "label": ["music"]}).to_csv(path,
                                                                              index=False)
    with pytest.raises(DataError, match=r"\['music'\] are not among the model's classes"):
        fitclass.load_run(trained.path).evaluate(path)


@text_kinds
def test_learns_the_synthetic_data(trained: Trained) -> None:
    metrics = trained.run.metrics
    # The majority class is half of the validation rows: chance-level accuracy is 0.5.
    assert metrics["accuracy"] >= 0.85, metrics["accuracy"]
    assert metrics["macro_f1"] >= 0.8, metrics["macro_f1"]
    frame = trained.run.predict(list(NEW_TEXTS))
    assert frame["label"].tolist() == list(NEW_TEXTS.values())
