"""Multi-label end to end: both label layouts, metrics, thresholds, predict and evaluate."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit

import fitclass
from fitclass.errors import RecipeError

LABELS = ["food", "music", "sports", "tech"]
KEYWORDS = {
    "food": ["pizza", "cheese", "soup", "bread", "recipe"],
    "music": ["guitar", "concert", "song", "piano", "band"],
    "sports": ["football", "goal", "match", "coach", "team"],
    "tech": ["laptop", "software", "server", "code", "internet"],
}
FILLER = ["today", "we", "read", "about", "the", "new", "story", "my", "friend", "likes",
          "this", "week", "was", "really", "good", "people", "city", "news", "old", "big"]
#: How often each label occurs (music is the rare one).
RATES = {"food": 0.45, "music": 0.15, "sports": 0.4, "tech": 0.35}


def make_frame(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Rows with 1-2 labels, each label cued by two of its keywords; both label layouts."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < n:
        on = [name for name in LABELS if rng.random() < RATES[name]][:2]
        if not on:
            on = [rng.choice(LABELS)]
        tokens = rng.sample(FILLER, 4)
        for name in on:
            tokens += rng.sample(KEYWORDS[name], 2)
        rng.shuffle(tokens)
        text = " ".join(tokens)
        if text in seen:
            continue
        seen.add(text)
        row: dict[str, Any] = {"id": f"r{len(rows):03d}", "text": text,
                               "tags": "|".join(reversed(on))}
        row.update({name: int(name in on) for name in LABELS})
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("ml-data") / "train.csv"
    frame.to_csv(path, index=False)
    return path


def recipe(csv: Path, label: Any, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"train": str(csv), "id": "id", "label": label,
                            "split": {"valid_size": 0.2, "seed": 0}}
    data.update(extra.pop("data", {}))
    return {"task": "multilabel", "data": data,
            "model": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 1]},
            "train": {"select": {"metric": "micro_f1"}}, **extra}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, csv_path: Path) -> dict[str, fitclass.Run]:
    out = tmp_path_factory.mktemp("ml-runs")
    return {
        "columns": fitclass.train(recipe(csv_path, list(LABELS)), out=out / "columns"),
        "tags": fitclass.train(recipe(csv_path, "tags", data={"label_sep": "|"}),
                               out=out / "tags"),
    }


@pytest.mark.parametrize("layout", ["columns", "tags"])
def test_metrics_and_decision_files(runs: dict[str, fitclass.Run], layout: str) -> None:
    run = runs[layout]
    assert run.class_names == LABELS
    metrics = json.loads((run.path / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "lrap",
                "subset_accuracy", "per_class"):
        assert key in metrics, key
    assert set(metrics["per_class"]) == set(LABELS)
    valid_rows = len(pd.read_csv(run.path / "valid_predictions.csv"))
    assert metrics["n"] == valid_rows and 0.15 * 150 <= valid_rows <= 0.25 * 150
    assert metrics["micro_f1"] > 0.8  # keywords make it easy
    assert 0 <= metrics["hamming_loss"] < 0.1
    decision = json.loads((run.path / "decision.json").read_text())
    assert decision["multilabel"] is True
    assert len(decision["thresholds"]) == len(LABELS)
    assert all(0.0 < t < 1.0 for t in decision["thresholds"])
    assert decision["class_weights"] is None and decision["cost_matrix"] is None


def test_both_label_layouts_give_the_same_run(runs: dict[str, fitclass.Run]) -> None:
    a = json.loads((runs["columns"].path / "metrics.json").read_text())
    b = json.loads((runs["tags"].path / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "lrap"):
        assert a[key] == pytest.approx(b[key])
    pa = pd.read_csv(runs["columns"].path / "valid_predictions.csv")
    pb = pd.read_csv(runs["tags"].path / "valid_predictions.csv")
    assert pa["id"].tolist() == pb["id"].tolist()
    assert pa["labels"].fillna("").tolist() == pb["labels"].fillna("").tolist()


def test_split_keeps_every_label_in_validation(runs: dict[str, fitclass.Run],
                                               frame: pd.DataFrame) -> None:
    checks = json.loads((runs["columns"].path / "data_checks.json").read_text())
    valid = checks["class_counts"]["valid"]
    assert set(valid) == set(LABELS) and all(valid[name] >= 1 for name in LABELS)
    metrics = runs["columns"].metrics
    for name in LABELS:
        share = frame[name].mean()
        # iterative stratification: every label keeps about its share of the rows
        assert metrics["per_class"][name]["support"] == valid[name]
        assert valid[name] == pytest.approx(metrics["n"] * share, abs=2)


def test_predict_labels_and_probabilities(runs: dict[str, fitclass.Run]) -> None:
    run = runs["tags"]
    texts = ["pizza with cheese at the concert with a guitar", "the coach saw a goal",
             "my laptop runs software"]
    out = run.predict(texts)
    assert "labels" in out.columns and "label" not in out.columns
    assert [c for c in out.columns if c.startswith("prob:")] == [f"prob:{n}" for n in LABELS]
    probs = out[[f"prob:{n}" for n in LABELS]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    thresholds = np.asarray(run.decision.thresholds)
    for labels, row in zip(out["labels"], probs, strict=True):
        expected = "|".join(n for n, p, t in zip(LABELS, row, thresholds, strict=True) if p >= t)
        assert labels == expected
    assert set(out["labels"][0].split("|")) >= {"food", "music"}
    assert out["labels"][1] == "sports"
    assert out["labels"][2] == "tech"
    np.testing.assert_allclose(run.predict_proba(texts), probs)


def test_load_run_evaluate_matches_metrics(runs: dict[str, fitclass.Run],
                                           frame: pd.DataFrame) -> None:
    for run in runs.values():
        loaded = fitclass.load_run(run.path)
        ids = pd.read_csv(run.path / "valid_predictions.csv")["id"]
        valid = frame.set_index("id").loc[ids].reset_index()
        got = loaded.evaluate(valid)
        saved = run.metrics
        for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss",
                    "lrap", "log_loss"):
            assert got[key] == pytest.approx(saved[key], abs=1e-6), key
        assert got["per_class"] == saved["per_class"]


def test_train_with_per_label_class_weights(tmp_path: Path, csv_path: Path) -> None:
    run = fitclass.train(recipe(csv_path, list(LABELS), imbalance={"class_weights": "inverse"},
                                decision={"thresholds": "global", "at_least_one": True}),
                         out=tmp_path / "run")
    decision = json.loads((run.path / "decision.json").read_text())
    assert len(set(decision["thresholds"])) == 1 and decision["at_least_one"] is True
    out = run.predict(["nothing relevant here today"])
    assert out["labels"][0] != ""  # at_least_one


@pytest.mark.parametrize(("change", "message"), [
    ({"task": "multilabel", "data": {"label": "label"}}, "task: multilabel needs data.label"),
    ({"task": "multiclass", "decision": {"thresholds": "per_class"}},
     "decision.thresholds applies to task: multilabel"),
    ({"model": {"backbone": "tfidf"}, "imbalance": {"sampler": "weighted"}},
     "imbalance.sampler needs a neural backbone"),
    ({"task": "multilabel", "data": {"label": ["a", "b"]},
      "train": {"select": {"metric": "accuracy"}}},
     "'accuracy' exists only for task: multiclass"),
    ({"task": "multiclass", "data": {"label_sep": "|"}}, "set task: multilabel"),
    ({"task": "multilabel", "data": {"label": ["a", "b"]},
      "decision": {"prior_correction": "uniform"}}, "apply to task: multiclass"),
])
def test_recipe_validation_errors(change: dict[str, Any], message: str) -> None:
    raw: dict[str, Any] = {"data": {"train": "train.csv", "label": "label"},
                           "model": {"backbone": "tfidf"}}
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key in raw else value
    with pytest.raises(RecipeError) as error:
        fitclass.load_recipe(raw)
    assert message in str(error.value)


# --- a tiny transformer, built here from the test texts ---------------------------------


def build_tiny_bert(folder: Path, texts: list[str]) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(texts, WordPieceTrainer(vocab_size=200,
                                                        special_tokens=specials))
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    backend.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, vocab_size=len(tokenizer),
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_tiny_transformer_multilabel_with_focal_and_pos_weight(
        tmp_path: Path, csv_path: Path, frame: pd.DataFrame) -> None:
    bert = build_tiny_bert(tmp_path / "bert", frame["text"].tolist())
    raw = recipe(csv_path, "tags", data={"label_sep": "|"},
                 imbalance={"pos_weight": "auto", "loss": "focal"})
    raw["model"] = {"backbone": str(bert), "max_length": 32, "dropout": 0.0}
    raw["train"] = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "seed": 0,
                    "select": {"metric": "micro_f1"}}
    run = fitclass.train(raw, out=tmp_path / "run")
    assert json.loads((run.path / "status.json").read_text())["status"] == "finished"
    assert len(pd.read_csv(run.path / "history.csv")) == 2
    texts = frame["text"].tolist()[:12]
    out = run.predict(texts)
    assert len(out) == 12 and "labels" in out.columns
    probs = out[[f"prob:{n}" for n in LABELS]].to_numpy()
    # multi-label probabilities are independent sigmoids of the logits, not a softmax
    classifier = fitclass.load_run(run.path).classifier
    raw_probs = expit(classifier.logits(texts))  # type: ignore[attr-defined]
    np.testing.assert_allclose(classifier.predict_proba(texts), raw_probs, rtol=1e-5)
    np.testing.assert_allclose(probs, run.decision.calibrate(raw_probs), rtol=1e-5, atol=1e-6)
    for labels, row in zip(out["labels"].fillna(""), probs, strict=True):
        on = [n for n, p, t in zip(LABELS, row, run.decision.thresholds, strict=True)
              if p >= t]
        assert labels == "|".join(on)
    metrics = run.metrics
    assert {"micro_f1", "samples_f1", "lrap"} <= set(metrics)


def test_rows_without_labels_in_a_delimited_column(tmp_path: Path, frame: pd.DataFrame) -> None:
    with_empty = frame.copy()
    with_empty.loc[:11, "tags"] = ""
    path = tmp_path / "empty.csv"
    with_empty.to_csv(path, index=False)
    run = fitclass.train(recipe(path, "tags", data={"label_sep": "|"}), out=tmp_path / "run")
    assert run.class_names == LABELS  # an empty cell is no label, not a class "nan" or ""
    checks = json.loads((run.path / "data_checks.json").read_text())
    counts = checks["class_counts"]
    assert set(counts["train"]) | set(counts["valid"]) <= set(LABELS)
