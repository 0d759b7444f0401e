"""The numpy collator and token-budget batches (`data/batching.py`): the same tensors as the
tokenizer's own padding, which the collator replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fitclass.data.batching import Collator, iter_budget_batches, token_budget_batches
from fitclass.data.tokens import TokenRows, tokenize_arrays

TEXTS = ["football team", "the coach read about the new software today", "pizza",
         "a " * 30, "supercalifragilistic internationalisation", "goal"]
PAIRS = [("football team", "the coach"), ("pizza recipe with cheese", "soup"),
         ("a " * 20, "b " * 20), ("goal", "match score")]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def old_collate(tokenizer: PreTrainedTokenizerBase, texts: list[Any], labels: np.ndarray,
                max_length: int, **pad: Any) -> dict[str, torch.Tensor]:
    """What fitclass collated before issue 15: per-row dicts of Python lists padded by the
    tokenizer, labels and row positions as tensors."""
    if isinstance(texts[0], tuple):
        encoded = tokenizer([t[0] for t in texts], [t[1] for t in texts], truncation=True,
                            max_length=max_length)
    else:
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
    features = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    batch = dict(tokenizer.pad(features, return_tensors="pt", **pad))
    batch["labels"] = torch.as_tensor(np.asarray(list(labels)))
    batch["row"] = torch.as_tensor(np.asarray(list(range(len(texts)))))
    return batch


def assert_same(new: dict[str, torch.Tensor], old: dict[str, torch.Tensor]) -> None:
    assert set(new) == set(old)
    for key in old:
        assert new[key].dtype == old[key].dtype, key
        assert torch.equal(new[key], old[key]), key


@pytest.mark.parametrize("texts", [TEXTS, PAIRS], ids=["single", "pairs"])
@pytest.mark.parametrize("labels", ["ids", "multilabel"])
def test_numpy_collation_equals_the_tokenizers_padding(tokenizer: PreTrainedTokenizerBase,
                                                       texts: list[Any], labels: str) -> None:
    targets = (np.arange(len(texts)) % 3 if labels == "ids"
               else (np.arange(len(texts) * 2).reshape(-1, 2) % 2).astype(np.float32))
    rows = TokenRows(tokenize_arrays(tokenizer, texts, 16), targets)
    new = Collator(tokenizer)([rows[i] for i in range(len(rows))])
    assert_same(new, old_collate(tokenizer, texts, targets, 16))
    assert new["labels"].dtype == (torch.int64 if labels == "ids" else torch.float32)


def test_left_padding_and_multiples(tiny_bert_dir: Path) -> None:
    left = AutoTokenizer.from_pretrained(tiny_bert_dir, padding_side="left")
    targets = np.zeros(len(TEXTS), dtype=np.int64)
    rows = TokenRows(tokenize_arrays(left, TEXTS, 16), targets)
    batch = [rows[i] for i in range(len(rows))]
    assert_same(Collator(left)(batch), old_collate(left, TEXTS, targets, 16))
    assert_same(Collator(left, pad_to_multiple_of=8)(batch),
                old_collate(left, TEXTS, targets, 16, pad_to_multiple_of=8))


def test_take_equals_collating_rows(tokenizer: PreTrainedTokenizerBase) -> None:
    for texts in (TEXTS, PAIRS):
        tokens = tokenize_arrays(tokenizer, texts, 16)
        rows = TokenRows(tokens, np.zeros(len(texts), dtype=np.int64))
        positions = np.array([2, 0, len(texts) - 1])
        collate = Collator(tokenizer)
        expected = collate([rows[int(i)] for i in positions])
        del expected["labels"], expected["row"]
        assert_same(collate.take(tokens, positions), expected)


def test_token_budget_batches_stay_under_budget() -> None:
    lengths = np.array([5, 40, 12, 7, 40, 3, 64, 9, 12, 20])
    batches = token_budget_batches(lengths, budget=64)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))  # every row once
    assert lengths[seen].tolist() == sorted(lengths.tolist(), reverse=True)  # longest first
    for batch in batches:
        assert len(batch) * lengths[batch].max() <= 64
    assert [len(b) for b in batches] == [1, 1, 1, 3, 4]  # 64 | 40 | 40 | 20 12 12 | 9 7 5 3
    # a row longer than the budget still gets a batch of its own
    assert [b.tolist() for b in token_budget_batches(np.array([100, 2]), 64)] == [[0], [1]]


def test_budget_batches_cover_every_row(tokenizer: PreTrainedTokenizerBase) -> None:
    tokens = tokenize_arrays(tokenizer, TEXTS, 16)
    batches = list(iter_budget_batches(Collator(tokenizer), tokens, budget=32))
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(
        range(len(TEXTS)))
    for rows, batch in batches:
        assert batch["input_ids"].numel() <= 32
        assert batch["attention_mask"].sum(1).tolist() == tokens.lengths[rows].tolist()
