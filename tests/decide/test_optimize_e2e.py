"""`decision.optimize: macro_f1` end to end: a tiny TF-IDF run through the API and the CLI."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import fitclass

CLASSES = ["common", "middle", "rare"]
KEYWORD = {"common": "apple", "middle": "guitar", "rare": "rocket"}
FILLER = ["today", "we", "read", "about", "the", "new", "story", "my", "friend", "likes",
          "this", "week", "was", "really", "good", "people", "city", "news", "old", "big"]


def make_rows(counts: dict[str, int], seed: int, cue: float = 0.6) -> pd.DataFrame:
    """Filler words; some rows carry their class's keyword, the rest are ambiguous (and an
    unweighted model gives those to the majority class)."""
    rng = random.Random(seed)
    rows = []
    for name, n in counts.items():
        for _ in range(n):
            tokens = rng.sample(FILLER, 5) + ([KEYWORD[name]] if rng.random() < cue else [])
            rng.shuffle(tokens)
            rows.append({"text": " ".join(tokens), "label": name})
    rng.shuffle(rows)
    return pd.DataFrame([{"id": f"s{seed}-{i}", **row} for i, row in enumerate(rows)])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("optimize-data")
    make_rows({"common": 150, "middle": 50, "rare": 20}, seed=0).to_csv(
        folder / "train.csv", index=False)
    make_rows({"common": 90, "middle": 30, "rare": 15}, seed=1).to_csv(
        folder / "valid.csv", index=False)
    return {"train": folder / "train.csv", "valid": folder / "valid.csv"}


def recipe(data: dict[str, Path], **decision: object) -> dict[str, object]:
    return {"data": {"train": str(data["train"]), "valid": str(data["valid"]), "id": "id"},
            "model": {"backbone": "tfidf", "analyzer": "word"}, "decision": decision}


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory,
              data: dict[str, Path]) -> fitclass.Run:
    return fitclass.train(recipe(data, optimize="macro_f1"),
                          out=tmp_path_factory.mktemp("optimize-runs") / "optimized")


def test_the_run_saves_offsets_and_reports_shares(optimized: fitclass.Run) -> None:
    metrics = optimized.metrics
    fitted = metrics["optimize"]
    assert fitted["metric"] == "macro_f1" and fitted["folds"] == 5
    assert fitted["shares"]["true"] == {"common": 90, "middle": 30, "rare": 15}
    assert set(fitted["shares"]) == {"true", "before", "after", "after_in_sample"}
    # the headline score is the cross-fitted one, and the table matches it
    assert metrics["macro_f1"] == pytest.approx(fitted["score"]["cross_fitted"])
    # the interval is about the same cross-fitted predictions as the headline
    assert metrics["intervals"]["macro_f1"]["estimate"] == pytest.approx(metrics["macro_f1"])
    assert metrics["predicted_distribution"] == fitted["shares"]["after"]
    assert "optimize" not in metrics["calibration"]
    # the rare classes were under-predicted; the offsets give them predictions back
    assert fitted["shares"]["after"]["rare"] > fitted["shares"]["before"]["rare"]
    assert fitted["score"]["cross_fitted"] > fitted["score"]["before"] + 0.05
    saved = json.loads((optimized.path / "decision.json").read_text())
    assert len(saved["offsets"]) == 3
    assert saved["report"]["optimize"]["offsets"] == dict(zip(CLASSES, saved["offsets"],
                                                              strict=True))
    report = (optimized.path / "report.html").read_text()
    assert "Decision fitted for macro_f1" in report and "predicted after" in report


def test_predict_applies_the_saved_offsets(optimized: fitclass.Run,
                                           data: dict[str, Path]) -> None:
    run = fitclass.load_run(optimized.path)
    assert run.decision.offsets is not None
    texts = pd.read_csv(data["valid"])["text"].tolist()
    out = run.predict(texts)
    probs = out[[f"prob:{c}" for c in CLASSES]].to_numpy()
    expected = (np.log(np.clip(probs, 1e-12, 1.0)) + run.decision.offsets).argmax(axis=1)
    assert out["label"].tolist() == [CLASSES[i] for i in expected]
    # validation predictions are the saved decision's labels (what predict gives)
    saved = pd.read_csv(run.path / "valid_predictions.csv")
    assert saved["label"].tolist() == out["label"].tolist()
    in_sample = run.metrics["optimize"]["shares"]["after_in_sample"]
    assert run.evaluate(data["valid"])["predicted_distribution"] == in_sample


def test_the_cli_prints_the_shares_line(cli_main: Callable[..., tuple[int, str, str]],
                                        data: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(data)))
    code, _, err = cli_main("train", path, "--set", "decision.optimize=macro_f1",
                              "--out", tmp_path / "run")
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("decision.optimize macro_f1:"))
    assert "cross-fitted, 5 folds" in line and "rare " in line and "(true 15)" in line
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["optimize"]["metric"] == "macro_f1"


def test_an_ensemble_fits_offsets_on_its_held_out_probabilities(
        optimized: fitclass.Run, data: dict[str, Path], tmp_path: Path) -> None:
    chars = recipe(data, optimize="macro_f1")
    chars["model"] = {"backbone": "tfidf", "analyzer": "char_wb"}
    other = fitclass.train(chars, out=tmp_path / "chars")
    joined = fitclass.ensemble([optimized.path, other.path], tmp_path / "ensemble",
                               method="mean")
    fitted = joined.metrics["optimize"]
    assert joined.decision.offsets is not None
    assert joined.metrics["macro_f1"] == pytest.approx(fitted["score"]["cross_fitted"])
    assert fitted["shares"]["true"] == {"common": 90, "middle": 30, "rare": 15}
