"""Transformer text classifiers (`models/text.py`): evaluation batches by token budget give
the fixed batches' logits; validation is tokenised once per run, training rows once per text
set (the truncation check's tokenisation is reused through the token cache)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import PreTrainedTokenizerBase

import fitclass
from fitclass.data.batching import Collator
from fitclass.data.tokens import tokenize_arrays
from fitclass.models.text import TransformerBackbone, TransformerClassifier
from fitclass.recipe import ModelConfig

pytestmark = pytest.mark.usefixtures("no_reports")

WORDS = ["football", "team", "coach", "pizza", "cheese", "software", "the", "a", "new",
         "internationalisation", "supercalifragilistic", "today", "read"]


def varied_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.choice([1, 2, 5, 12, 40]))) for _ in range(count)]


def fixed_batch_logits(classifier: TransformerClassifier, texts: list[str],
                       batch_size: int) -> np.ndarray:
    """Logits from batches of `batch_size` rows in input order, padded to each batch's
    longest row (how evaluation batched before the token budget)."""
    tokens = tokenize_arrays(classifier.tokenizer, texts, classifier.max_length)
    collate = Collator(classifier.tokenizer)
    module = classifier.module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = collate.take(tokens, np.arange(start, min(start + batch_size, len(texts))))
            out.append(module(**batch)["logits"].numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_token_budget_logits_equal_fixed_batches(tiny_bert_dir: Path, pooling: str) -> None:
    torch.manual_seed(0)
    backbone = TransformerBackbone(str(tiny_bert_dir), ModelConfig(
        backbone=str(tiny_bert_dir), max_length=32, pooling=pooling, dropout=0.0))
    classifier = backbone.build(["a", "b", "c"])
    texts = varied_texts(40)
    budget = classifier.logits(texts, batch_size=4)  # 4 x 32 tokens a batch
    np.testing.assert_allclose(budget, fixed_batch_logits(classifier, texts, 4),
                               rtol=1e-4, atol=1e-5)
    features = classifier.encode(texts, batch_size=4)
    assert features.shape == (40, 32) and np.isfinite(features).all()


def test_logits_tokenise_a_text_set_once(tiny_bert_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = TransformerBackbone(str(tiny_bert_dir), ModelConfig(
        backbone=str(tiny_bert_dir), max_length=32))
    classifier = backbone.build(["a", "b"])
    calls = count_tokenizer_calls(monkeypatch)
    texts = varied_texts(10)
    first = classifier.logits(texts)
    np.testing.assert_array_equal(classifier.logits(list(texts)), first)
    assert calls == [10]
    classifier.encode(texts[:5])  # other texts (training texts for the feature cache)
    classifier.logits(texts)
    classifier.encode(texts[:5])
    assert calls == [10, 5]  # two text sets are remembered
    classifier.logits(texts[:3])  # a third evicts the least recently used (texts)
    classifier.logits(texts[:5])
    classifier.logits(texts)
    assert calls == [10, 5, 3, 10]


def count_tokenizer_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per tokenizer call: the number of texts (or pairs) it tokenised."""
    calls: list[int] = []
    real: Callable[..., Any] = PreTrainedTokenizerBase.__call__

    def counting(self: PreTrainedTokenizerBase, text: Any = None, *args: Any,
                 **kwargs: Any) -> Any:
        calls.append(len(text) if isinstance(text, list) else 1)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", counting)
    return calls


def test_a_run_tokenises_validation_and_training_rows_once(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))  # no earlier test's tokens
    calls = count_tokenizer_calls(monkeypatch)
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16})
    run = fitclass.train(recipe, out=tmp_path / "run")
    assert len(pd.read_csv(run.path / "history.csv")) == 2  # then the final predictions
    # 120 rows, 25% validation: the truncation check tokenises the 90 training rows into the
    # token cache (the training rows load them), validation's 30 rows are tokenised once
    assert sorted(calls) == [30, 90]
    assert len(list((tmp_path / "cache" / "tokens").glob("*.safetensors"))) == 1
