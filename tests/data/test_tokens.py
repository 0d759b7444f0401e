"""Flat token arrays (`data/tokens.py`): the same ids as the tokenizer, lengths for the
truncation check without the corpus's id lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fitclass.data import tokens as tokens_module
from fitclass.data.checks import check_truncation
from fitclass.data.tokens import (
    TokenRows,
    chunks,
    measure_lengths,
    tokenize_arrays,
    untruncated_lengths,
)

TEXTS = ["football team", "the coach read about the new software today",
         "pizza", "a " * 30, "supercalifragilistic internationalisation"]
PAIRS = [("football team", "the coach"), ("pizza recipe with cheese", "soup"),
         ("a " * 20, "b " * 20)]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def rows_of(arrays: tokens_module.TokenArrays, key: str = "input_ids") -> list[list[int]]:
    return [arrays.row(i)[key].tolist() for i in range(len(arrays))]


@pytest.mark.parametrize("chars", [1, 20, tokens_module.CHUNK_CHARS])
def test_arrays_round_trip_the_tokenizers_ids(tokenizer: PreTrainedTokenizerBase,
                                              chars: int) -> None:
    expected = tokenizer(TEXTS, truncation=True, max_length=12)
    arrays = tokenize_arrays(tokenizer, TEXTS, 12, chars=chars)
    assert arrays.ids.dtype == np.int32 and arrays.offsets.dtype == np.int64
    assert len(arrays) == len(TEXTS) and arrays.offsets[0] == 0
    assert rows_of(arrays) == expected["input_ids"]
    assert arrays.lengths.tolist() == [len(ids) for ids in expected["input_ids"]]
    assert arrays.type_ids is None  # single texts: all zero, made by the collator


@pytest.mark.parametrize("chars", [1, tokens_module.CHUNK_CHARS])
def test_pairs_keep_their_token_type_ids(tokenizer: PreTrainedTokenizerBase,
                                         chars: int) -> None:
    expected = tokenizer([p[0] for p in PAIRS], [p[1] for p in PAIRS], truncation=True,
                         max_length=16)
    arrays = tokenize_arrays(tokenizer, PAIRS, 16, chars=chars)
    assert rows_of(arrays) == expected["input_ids"]
    assert arrays.type_ids is not None and arrays.type_ids.dtype == np.int32
    assert rows_of(arrays, "token_type_ids") == expected["token_type_ids"]


def test_no_texts_give_empty_arrays(tokenizer: PreTrainedTokenizerBase) -> None:
    arrays = tokenize_arrays(tokenizer, [], 8)
    assert len(arrays) == 0 and arrays.offsets.tolist() == [0] and arrays.ids.size == 0
    assert measure_lengths(tokenizer, []).size == 0


def test_rows_are_views_with_labels_and_positions(tokenizer: PreTrainedTokenizerBase) -> None:
    arrays = tokenize_arrays(tokenizer, TEXTS, 12)
    rows = TokenRows(arrays, np.arange(len(TEXTS)) % 2)
    assert len(rows) == len(TEXTS)
    row = rows[1]
    assert row["row"] == 1 and row["labels"] == 1
    assert np.shares_memory(row["input_ids"], arrays.ids)  # a slice, not a copy
    with pytest.raises(ValueError, match="labels for"):
        TokenRows(arrays, np.zeros(2))


def test_chunks_are_bounded_by_characters() -> None:
    texts = ["x" * 10] * 7 + ["y" * 100] + [("ab", "cd")] * 3
    parts = list(chunks(texts, chars=25))
    assert [t for part in parts for t in part] == texts  # every text once, in order
    for part in parts:  # at most one text past the budget; a long text is its own chunk
        sizes = [len(t) if isinstance(t, str) else sum(map(len, t)) for t in part]
        assert sum(sizes[:-1]) < 25


def boundary_texts(tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[str]:
    """Texts of max_length - 2 .. max_length + 2 tokens and much longer ones."""
    texts = []
    for words in [*range(max_length - 4, max_length + 1), 3 * max_length, 1]:
        texts.append("a " * words)
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert {max_length - 1, max_length, max_length + 1} <= set(lengths)
    return texts


def test_untruncated_lengths_equal_a_full_tokenisation(tokenizer: PreTrainedTokenizerBase,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    max_length = 10
    texts = boundary_texts(tokenizer, max_length)
    old = np.array([len(ids) for ids in tokenizer(texts, truncation=True,
                                                  max_length=10**6)["input_ids"]])
    measured: list[int] = []
    real = tokens_module.measure_lengths

    def counting(tok: PreTrainedTokenizerBase, rows: list[str]) -> np.ndarray:
        measured.append(len(rows))
        return real(tok, rows)

    monkeypatch.setattr(tokens_module, "measure_lengths", counting)
    arrays = tokenize_arrays(tokenizer, texts, max_length)
    lengths = untruncated_lengths(tokenizer, texts, arrays, max_length)
    np.testing.assert_array_equal(lengths, old)
    assert measured == [int((old >= max_length).sum())]  # only rows that reach the cap
    new, before = (check_truncation(lengths, max_length, "train.csv"),
                   check_truncation(old, max_length, "train.csv"))
    assert new is not None and before is not None
    assert new.count == before.count == int((old > max_length).sum()) > 0
    assert new.message == before.message


def test_untruncated_lengths_of_pairs(tokenizer: PreTrainedTokenizerBase) -> None:
    old = [len(ids) for ids in tokenizer([p[0] for p in PAIRS], [p[1] for p in PAIRS])[
        "input_ids"]]
    arrays = tokenize_arrays(tokenizer, PAIRS, 12)
    assert untruncated_lengths(tokenizer, PAIRS, arrays, 12).tolist() == old
