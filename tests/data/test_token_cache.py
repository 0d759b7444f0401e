"""The token cache (`data/token_cache.py`): a hit only for the same tokenizer, max_length and
texts; files under `$FITCLASS_CACHE/tokens`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fitclass.data import token_cache
from fitclass.data.table import TextInput
from fitclass.data.token_cache import TokenCache, cached_tokens, tokenizer_digest, tokens_root
from fitclass.data.tokens import TokenArrays, tokenize_arrays

TEXTS = ["football team", "the coach read about the new software", "pizza"]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry (the number of texts) per real tokenisation through the cache."""
    made: list[int] = []

    def counting(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                 max_length: int) -> TokenArrays:
        made.append(len(texts))
        return tokenize_arrays(tokenizer, texts, max_length)

    monkeypatch.setattr(token_cache, "tokenize_arrays", counting)
    return made


def same(a: TokenArrays, b: TokenArrays) -> bool:
    return (np.array_equal(a.ids, b.ids) and np.array_equal(a.offsets, b.offsets)
            and (a.type_ids is None) == (b.type_ids is None))


def test_same_tokenizer_length_and_texts_hit(tmp_path: Path, tiny_bert_dir: Path,
                                             calls: list[int]) -> None:
    cache = TokenCache(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    first = cached_tokens(tokenizer, TEXTS, 16, cache)
    assert calls == [3] and len(list(tmp_path.glob("*.safetensors"))) == 1
    # the tokenizer's truncation state (set by each call) is not part of its identity
    tokenizer(TEXTS, truncation=True, max_length=5)
    again = cached_tokens(tokenizer, list(TEXTS), 16, cache)
    reloaded = cached_tokens(AutoTokenizer.from_pretrained(tiny_bert_dir), TEXTS, 16, cache)
    assert calls == [3]
    assert same(first, again) and same(first, reloaded)
    assert again.ids.dtype == np.int32 and again.offsets.dtype == np.int64


def test_another_length_tokenizer_or_texts_miss(tmp_path: Path, tiny_bert_dir: Path,
                                                calls: list[int]) -> None:
    cache = TokenCache(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    cached_tokens(tokenizer, TEXTS, 16, cache)
    cached_tokens(tokenizer, TEXTS, 8, cache)  # max_length
    cached_tokens(tokenizer, TEXTS[::-1], 16, cache)  # order
    cached_tokens(tokenizer, [*TEXTS[:2], "other"], 16, cache)  # a text
    cached_tokens(tokenizer, [(t, t) for t in TEXTS], 16, cache)  # pairs
    other = AutoTokenizer.from_pretrained(tiny_bert_dir)
    other.add_tokens(["footballteam"])  # another vocabulary
    cached_tokens(other, TEXTS, 16, cache)
    left = AutoTokenizer.from_pretrained(tiny_bert_dir, truncation_side="left")
    cached_tokens(left, TEXTS, 16, cache)
    assert len(calls) == 7
    assert len({tokenizer_digest(t) for t in (tokenizer, other, left)}) == 3


def test_damaged_file_is_tokenised_again(tmp_path: Path, tiny_bert_dir: Path,
                                         calls: list[int]) -> None:
    cache = TokenCache(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    first = cached_tokens(tokenizer, TEXTS, 16, cache)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"not safetensors")
    assert same(cached_tokens(tokenizer, TEXTS, 16, cache), first)
    assert len(calls) == 2
    assert same(cached_tokens(tokenizer, TEXTS, 16, cache), first) and len(calls) == 2


def test_unwritable_cache_still_tokenises(tmp_path: Path, tiny_bert_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokens = cached_tokens(tokenizer, TEXTS, 16, TokenCache(blocker / "tokens"))
    assert len(tokens) == 3


def test_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "elsewhere"))
    assert tokens_root() == tmp_path / "elsewhere" / "tokens"
    assert TokenCache().path("abc") == tmp_path / "elsewhere" / "tokens" / "abc.safetensors"
    monkeypatch.delenv("FITCLASS_CACHE")
    assert tokens_root() == Path.home() / ".cache" / "fitclass" / "tokens"
