"""Cached token arrays: a text set is tokenised once per (tokenizer, max_length, texts) and
reused by the truncation check, the training rows of every run and sweep trial on it.

Keyed like the feature cache (`training/cache.py`): a hash of the tokenizer's definition
(vocabulary, normalisation, special tokens, truncation side), `max_length` and the texts in
order. Stored as safetensors under `$FITCLASS_CACHE/tokens` (default
`~/.cache/fitclass/tokens`), written atomically; a cache that cannot be written (read-only
home) only costs the next run a tokenisation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from safetensors import SafetensorError
from safetensors.numpy import load_file, save
from transformers import PreTrainedTokenizerBase

from fitclass.atomic import atomic_write_bytes
from fitclass.data.fingerprint import texts_digest
from fitclass.data.table import TextInput
from fitclass.data.tokens import TokenArrays, tokenize_arrays

#: Bumped when the stored layout or the tokenising call changes.
LAYOUT = 1


def tokens_root() -> Path:
    """`$FITCLASS_CACHE/tokens` beside the feature files, else `~/.cache/fitclass/tokens`."""
    root = os.environ.get("FITCLASS_CACHE")
    return Path(root) / "tokens" if root else Path.home() / ".cache" / "fitclass" / "tokens"


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of what decides a tokenizer's ids. Fast tokenizers: their serialised definition
    less the truncation/padding state each call sets; slow ones: class, vocabulary and
    settings."""
    if tokenizer.is_fast:
        definition = json.loads(tokenizer.backend_tokenizer.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
    else:
        definition = {"vocab": sorted(tokenizer.get_vocab().items()),
                      "settings": {k: str(v) for k, v in sorted(tokenizer.init_kwargs.items())
                                   if k not in ("name_or_path", "model_max_length")}}
    parts = {"class": type(tokenizer).__name__, "truncation_side": tokenizer.truncation_side,
             "definition": definition}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def token_key(tokenizer_hash: str, max_length: int, texts: Sequence[TextInput]) -> str:
    parts = {"layout": LAYOUT, "tokenizer": tokenizer_hash, "max_length": max_length,
             "texts": texts_digest(texts)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class TokenCache:
    """One folder of token files, one file per key."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or tokens_root()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str) -> TokenArrays | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return TokenArrays.from_arrays(load_file(str(path)))
        except (OSError, SafetensorError, KeyError):
            return None  # a damaged file: tokenise again and overwrite it

    def save(self, key: str, tokens: TokenArrays) -> None:
        # not writable (a read-only home): the cache is an optimisation, the run goes on
        with contextlib.suppress(OSError):
            atomic_write_bytes(self.path(key), save(tokens.arrays()))


def cached_tokens(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                  max_length: int, cache: TokenCache | None = None) -> TokenArrays:
    """`tokenize_arrays(tokenizer, texts, max_length)`, from the cache when it has them."""
    cache = cache or TokenCache()
    key = token_key(tokenizer_digest(tokenizer), max_length, texts)
    tokens = cache.load(key)
    if tokens is None:
        tokens = tokenize_arrays(tokenizer, texts, max_length)
        cache.save(key, tokens)
    return tokens
