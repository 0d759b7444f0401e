"""End to end with the real embedded backbone (all-MiniLM-L6-v2): train, save, load, predict.

A few dozen rows and one short epoch: this checks the default path works offline, not that
MiniLM is good (the tiny BERT contract tests cover learning).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitclass

pytestmark = pytest.mark.slow

CLASSES = ["food", "sports", "tech"]


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory, rows_maker, table_writer) -> Path:
    folder = tmp_path_factory.mktemp("minilm")
    train = table_writer(rows_maker({"sports": 16, "tech": 16, "food": 16}, seed=11),
                         folder / "train.csv")
    recipe = {
        "data": {"train": str(train), "id": "id", "split": {"valid_size": 0.25, "seed": 0}},
        "model": {"backbone": "minilm", "max_length": 32},
        "train": {"epochs": 1, "batch_size": 12, "lr": 5e-4, "warmup_ratio": 0.0, "seed": 0},
    }
    return fitclass.train(recipe, out=folder / "run").path


def test_minilm_trains_and_saves(minilm_run: Path) -> None:
    assert json.loads((minilm_run / "status.json").read_text())["status"] == "finished"
    info = json.loads((minilm_run / "model" / "fitclass_model.json").read_text())
    # a sentence-transformers folder: its pooling config says mean pooling
    assert info["kind"] == "transformer" and info["pooling"] == "mean"
    assert info["class_names"] == CLASSES and info["max_length"] == 32
    history = pd.read_csv(minilm_run / "history.csv")
    assert history["step"].tolist() == [3]  # 36 training rows, batches of 12, one epoch
    metrics = json.loads((minilm_run / "metrics.json").read_text())
    assert metrics["n"] == 12
    assert metrics["accuracy"] > 0.5  # chance is 1/3: MiniLM separates the keywords at once


def test_minilm_loads_and_predicts(minilm_run: Path) -> None:
    run = fitclass.load_run(minilm_run)
    texts = ["the team will score a goal", "new laptop software", "cheese pizza recipe"]
    frame = run.predict(texts)
    probs = frame[[f"prob:{c}" for c in CLASSES]].to_numpy()
    assert list(frame.columns) == ["row", "label", *(f"prob:{c}" for c in CLASSES)]
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(probs[0], probs[1])  # the encoder sees the texts


def test_minilm_reload_matches_training_time_predictions(minilm_run: Path) -> None:
    saved = pd.read_csv(minilm_run / "valid_predictions.csv", dtype={"id": str})
    source = pd.read_csv(Path(minilm_run).parent / "train.csv", dtype=str).set_index("id")
    again = fitclass.load_run(minilm_run).predict(source.loc[saved["id"], "text"].tolist())
    columns = [f"prob:{c}" for c in CLASSES]
    assert np.allclose(again[columns].to_numpy(), saved[columns].to_numpy(), atol=1e-5)
    assert again["label"].tolist() == saved["label"].tolist()
