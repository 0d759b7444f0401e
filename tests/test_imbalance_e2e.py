"""Imbalance remedies and decisions end to end with the TF-IDF backbone (fast)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

import fitclass
from fitclass.errors import RecipeError

CLASSES = ["common", "middle", "rare"]
KEYWORD = {"common": "apple", "middle": "guitar", "rare": "rocket"}
FILLER = ["today", "we", "read", "about", "the", "new", "story", "my", "friend", "likes",
          "this", "week", "was", "really", "good", "people", "city", "news", "old", "big"]
TRAIN_COUNTS = {"common": 120, "middle": 40, "rare": 12}


def make_rows(counts: dict[str, int], seed: int, cue: float = 0.7) -> pd.DataFrame:
    """Filler words; 70% of rows also carry their class's keyword (the rest are ambiguous,
    and an unweighted model gives those to the majority class)."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for name, n in counts.items():
        made = 0
        while made < n:
            tokens = rng.sample(FILLER, 5)
            if rng.random() < cue:
                tokens.append(KEYWORD[name])
            rng.shuffle(tokens)
            text = " ".join(tokens)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "label": name})
            made += 1
    rng.shuffle(rows)
    return pd.DataFrame([{"id": f"s{seed}-{i}", **row} for i, row in enumerate(rows)])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("imbalanced")
    make_rows(TRAIN_COUNTS, seed=0).to_csv(folder / "train.csv", index=False)
    make_rows({"common": 60, "middle": 20, "rare": 20}, seed=1).to_csv(folder / "valid.csv",
                                                                       index=False)
    return {"train": folder / "train.csv", "valid": folder / "valid.csv"}


def recipe(data: dict[str, Path], **sections: Any) -> dict[str, Any]:
    return {"data": {"train": str(data["train"]), "valid": str(data["valid"]), "id": "id"},
            "model": {"backbone": "tfidf", "analyzer": "word"}, **sections}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory,
         data: dict[str, Path]) -> dict[str, fitclass.Run]:
    out = tmp_path_factory.mktemp("imbalance-runs")
    settings = {
        "plain": {},
        "inverse": {"imbalance": {"class_weights": "inverse"}},
        "uniform": {"decision": {"prior_correction": "uniform"}},
    }
    return {name: fitclass.train(recipe(data, **extra), out=out / name)
            for name, extra in settings.items()}


def test_inverse_class_weights_predict_the_minority_more(runs: dict[str, fitclass.Run]) -> None:
    plain = runs["plain"].metrics["predicted_distribution"]
    weighted = runs["inverse"].metrics["predicted_distribution"]
    assert runs["plain"].metrics["label_distribution"] == {"common": 60, "middle": 20,
                                                           "rare": 20}
    assert weighted["rare"] >= plain["rare"] + 5
    assert weighted["common"] < plain["common"]
    assert runs["inverse"].metrics["balanced_accuracy"] > runs["plain"].metrics[
        "balanced_accuracy"]


def test_prior_correction_is_saved_and_changes_predictions(
        runs: dict[str, fitclass.Run]) -> None:
    decision = json.loads((runs["uniform"].path / "decision.json").read_text())
    train_priors = np.array([TRAIN_COUNTS[c] for c in CLASSES]) / sum(TRAIN_COUNTS.values())
    np.testing.assert_allclose(decision["class_weights"], (1 / 3) / train_priors)
    assert json.loads((runs["plain"].path / "decision.json").read_text())[
        "class_weights"] is None
    plain = pd.read_csv(runs["plain"].path / "valid_predictions.csv")
    corrected = pd.read_csv(runs["uniform"].path / "valid_predictions.csv")
    assert plain["id"].tolist() == corrected["id"].tolist()
    changed = (plain["label"] != corrected["label"]).sum()
    assert changed >= 5
    before = runs["plain"].metrics["predicted_distribution"]["rare"]
    after = runs["uniform"].metrics["predicted_distribution"]["rare"]
    assert after >= before + 5


def test_predict_applies_the_saved_decision(runs: dict[str, fitclass.Run],
                                            data: dict[str, Path]) -> None:
    run = fitclass.load_run(runs["uniform"].path)
    texts = pd.read_csv(data["valid"])["text"].tolist()
    out = run.predict(texts)
    probs = out[[f"prob:{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # by hand: temperature on the raw probabilities, then prior factors, renormalised
    raw = run.classifier.predict_proba(texts)
    scaled = softmax(np.log(np.clip(raw, 1e-7, 1 - 1e-7)) / run.decision.temperature, axis=1)
    weighted = scaled * np.asarray(run.decision.class_weights)
    expected = weighted / weighted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    assert out["label"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(run.predict_proba(texts), probs)
    # the same decision as in the validation predictions written at training time
    saved = pd.read_csv(run.path / "valid_predictions.csv")
    assert saved["label"].tolist() == out["label"].tolist()
    # and different from argmax of the uncorrected probabilities
    assert out["label"].tolist() != [CLASSES[i] for i in raw.argmax(axis=1)]
    evaluated = run.evaluate(data["valid"])
    assert evaluated["predicted_distribution"] == run.metrics["predicted_distribution"]
    raw_eval = run.evaluate(data["valid"], use_decision=False)
    assert raw_eval["predicted_distribution"] != evaluated["predicted_distribution"]


def test_cost_matrix_is_saved_and_drives_predictions(tmp_path: Path,
                                                     data: dict[str, Path],
                                                     runs: dict[str, fitclass.Run]) -> None:
    costs = [[0, 1, 1], [1, 0, 1], [20, 20, 0]]  # missing a rare row is expensive
    run = fitclass.train(recipe(data, decision={"cost_matrix": costs}), out=tmp_path / "cost")
    assert json.loads((run.path / "decision.json").read_text())["cost_matrix"] == costs
    texts = pd.read_csv(data["valid"])["text"].tolist()
    out = run.predict(texts)
    probs = out[[f"prob:{c}" for c in CLASSES]].to_numpy()
    least = (probs @ np.asarray(costs, dtype=float)).argmin(axis=1)
    assert out["label"].tolist() == [CLASSES[i] for i in least]
    assert run.metrics["predicted_distribution"]["rare"] > \
        runs["plain"].metrics["predicted_distribution"]["rare"]


def test_cost_matrix_of_the_wrong_shape(tmp_path: Path, data: dict[str, Path]) -> None:
    with pytest.raises(RecipeError, match=r"decision\.cost_matrix") as error:
        fitclass.train(recipe(data, decision={"cost_matrix": [[0, 1], [1, 0]]}),
                       out=tmp_path / "bad")
    assert "3x3" in str(error.value) and "(2, 2)" in str(error.value)
    status = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert status["status"] == "failed" and "decision.cost_matrix" in status["error"]


def test_prior_correction_mapping_with_unknown_class(tmp_path: Path,
                                                     data: dict[str, Path]) -> None:
    with pytest.raises(RecipeError, match=r"decision\.prior_correction"):
        fitclass.train(recipe(data, decision={"prior_correction": {"nope": 1.0}}),
                       out=tmp_path / "bad")


def test_tfidf_refuses_neural_only_remedies(data: dict[str, Path]) -> None:
    for section in ({"imbalance": {"loss": "focal"}}, {"imbalance": {"sampler": "weighted"}}):
        with pytest.raises(RecipeError, match="needs a neural backbone"):
            fitclass.load_recipe(recipe(data, **section))
