"""The backbone contract: one set of tests that every kind of backbone must pass.

Each backbone trains once per module on the synthetic keyword data (120 rows, 3 imbalanced
classes); the tests then inspect the run directory, reload it, predict and evaluate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import fitclass
from fitclass.errors import DataError
from fitclass.runs.run import Run

BACKBONES = ["tiny_bert", "tfidf"]
CLASSES = ["food", "sports", "tech"]
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


@dataclass
class Trained:
    kind: str
    recipe: dict[str, Any]
    run: Run
    path: Path
    train_csv: Path


@pytest.fixture(scope="module", params=BACKBONES)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            train_csv: Path, recipe_for) -> Trained:
    kind = request.param
    recipe = recipe_for(kind, train_csv)
    out = tmp_path_factory.mktemp(f"contract-{kind}") / "run"
    run = fitclass.train(recipe, out=out)
    return Trained(kind, recipe, run, out, train_csv)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def prob_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("prob:")]


def test_train_returns_a_finished_run(trained: Trained) -> None:
    assert isinstance(trained.run, Run)
    assert trained.run.path == trained.path
    assert trained.run.class_names == CLASSES


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
    assert trained.run.recipe.data.id == "id"


def test_labels_json(trained: Trained) -> None:
    labels = read_json(trained.path / "labels.json")
    assert labels.pop("data_fingerprint").startswith("sha256:")  # what the data was
    assert labels == {"task": "multiclass", "classes": CLASSES, "train_counts": [15, 45, 30]}


def test_metrics_json(trained: Trained) -> None:
    metrics = read_json(trained.path / "metrics.json")
    assert set(metrics) >= METRIC_KEYS
    assert metrics["n"] == 30
    assert metrics["label_distribution"] == {"food": 5, "sports": 15, "tech": 10}
    assert sum(metrics["predicted_distribution"].values()) == 30
    assert set(metrics["per_class"]) == set(CLASSES)
    assert np.array(metrics["confusion_matrix"]).sum() == 30
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
    checks = read_json(trained.path / "data_checks.json")
    assert checks["errors"] == []
    assert checks["class_counts"]["train"] == {"sports": 45, "tech": 30, "food": 15}


def test_valid_predictions_csv(trained: Trained) -> None:
    frame = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})
    assert frame.columns[0] == "id"
    assert {"true_label", "label"} <= set(frame.columns)
    assert prob_columns(frame) == [f"prob:{c}" for c in CLASSES]
    assert len(frame) == 30
    assert np.allclose(frame[prob_columns(frame)].sum(axis=1), 1.0, atol=1e-5)
    source = pd.read_csv(trained.train_csv).set_index("id")
    assert (source.loc[frame["id"], "label"].to_numpy() == frame["true_label"]).all()
    accuracy = (frame["label"] == frame["true_label"]).mean()
    assert accuracy == pytest.approx(read_json(trained.path / "metrics.json")["accuracy"])


def test_predict_texts(trained: Trained) -> None:
    texts = list(NEW_TEXTS)
    frame = fitclass.load_run(trained.path).predict(texts)
    assert list(frame.columns) == ["row", "label", *(f"prob:{c}" for c in CLASSES)]
    assert frame["row"].tolist() == ["0", "1", "2"]
    probs = frame[prob_columns(frame)].to_numpy()
    assert probs.shape == (3, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert frame["label"].tolist() == [CLASSES[i] for i in probs.argmax(axis=1)]


def test_predictions_survive_reload(trained: Trained) -> None:
    texts = list(NEW_TEXTS) + [row for row in pd.read_csv(trained.train_csv)["text"][:20]]
    returned = trained.run.predict(texts)
    loaded = fitclass.load_run(trained.path).predict(texts)
    assert returned["label"].tolist() == loaded["label"].tolist()
    assert np.allclose(returned[prob_columns(returned)], loaded[prob_columns(loaded)])


def test_reloaded_model_reproduces_training_time_predictions(trained: Trained) -> None:
    """valid_predictions.csv comes from the in-memory model at the end of training."""
    saved = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})
    texts = pd.read_csv(trained.train_csv).set_index("id").loc[saved["id"], "text"].tolist()
    again = fitclass.load_run(trained.path).predict(texts)
    assert again["label"].tolist() == saved["label"].tolist()
    assert np.allclose(again[prob_columns(again)].to_numpy(),
                       saved[prob_columns(saved)].to_numpy(), atol=1e-5)


def test_predict_proba_is_calibrated_like_predict(trained: Trained) -> None:
    run = fitclass.load_run(trained.path)
    frame = run.predict(list(NEW_TEXTS))
    assert np.allclose(run.predict_proba(list(NEW_TEXTS)), frame[prob_columns(frame)])


def validation_file(trained: Trained, folder: Path, suffix: str = ".csv") -> Path:
    ids = pd.read_csv(trained.path / "valid_predictions.csv", dtype={"id": str})["id"]
    source = pd.read_csv(trained.train_csv, dtype=str)
    rows = source[source["id"].isin(set(ids))]
    path = folder / f"valid{suffix}"
    if suffix == ".jsonl":
        rows.to_json(path, orient="records", lines=True)
    else:
        rows.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_evaluate_on_validation_rows_matches_metrics(trained: Trained, tmp_path: Path,
                                                     suffix: str) -> None:
    metrics = read_json(trained.path / "metrics.json")
    scored = fitclass.load_run(trained.path).evaluate(validation_file(trained, tmp_path, suffix))
    assert scored["n"] == metrics["n"] == 30
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "log_loss"):
        assert scored[key] == pytest.approx(metrics[key], abs=1e-6), key
    assert scored["confusion_matrix"] == metrics["confusion_matrix"]


def test_evaluate_a_frame(trained: Trained, tmp_path: Path) -> None:
    frame = pd.read_csv(validation_file(trained, tmp_path), dtype=str)
    scored = fitclass.load_run(trained.path).evaluate(frame)
    assert scored["accuracy"] == pytest.approx(trained.run.metrics["accuracy"])


def test_predict_a_file_keeps_ids_and_order(trained: Trained, tmp_path: Path) -> None:
    path = validation_file(trained, tmp_path)
    frame = fitclass.load_run(trained.path).predict(path)
    source = pd.read_csv(path, dtype=str)
    assert frame["id"].tolist() == source["id"].tolist()
    assert frame["true_label"].tolist() == source["label"].tolist()  # labels carried along


def test_evaluate_rejects_labels_the_model_never_saw(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": ["x"], "text": ["a song"], "label": ["music"]}).to_csv(path,
                                                                              index=False)
    with pytest.raises(DataError, match=r"\['music'\] are not among the model's classes"):
        fitclass.load_run(trained.path).evaluate(path)


def test_learns_the_synthetic_data(trained: Trained) -> None:
    metrics = trained.run.metrics
    # The majority class is half of the validation rows: chance-level accuracy is 0.5.
    assert metrics["accuracy"] >= 0.85, metrics["accuracy"]
    assert metrics["macro_f1"] >= 0.8, metrics["macro_f1"]
    frame = trained.run.predict(list(NEW_TEXTS))
    assert frame["label"].tolist() == list(NEW_TEXTS.values())
