"""Token ids as flat arrays: a text set tokenised once, 4 bytes a token.

One `int32` array holds every row's ids end to end and an `int64` offsets array of
`rows + 1` entries says where each row starts, instead of a Python list of ints per row (about
36 bytes a token) in one dict per row. Token type ids are kept only when they carry
information (sentence pairs); for single texts they are all zero and the collator makes them.

Tokenising goes through the tokenizer in chunks of about `CHUNK_CHARS` characters, so only
one chunk's Python lists exist at a time, whatever the size of the corpus or its documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from fitclass.data.table import TextInput

#: Characters of text per tokenizer call: bounds the Python lists alive at once (a token
#: covers at least a character or byte, so a chunk holds at most a few million ids).
CHUNK_CHARS = 1_000_000
#: Length cap for measuring untruncated lengths (the tokenizer warns on longer rows without
#: truncation; no real row comes near it).
LENGTH_CAP = 10**6
TYPE_IDS = "token_type_ids"


@dataclass(frozen=True)
class TokenArrays:
    """Token ids of `len(offsets) - 1` rows: row `i` is `ids[offsets[i]:offsets[i + 1]]`."""

    ids: np.ndarray  # int32, every row's ids end to end
    offsets: np.ndarray  # int64, rows + 1 entries, offsets[0] == 0
    type_ids: np.ndarray | None = None  # int32 like `ids`, or None when all zero

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, index: int) -> dict[str, np.ndarray]:
        """One row's ids (views into the flat arrays, no copy)."""
        start, end = self.offsets[index], self.offsets[index + 1]
        row = {"input_ids": self.ids[start:end]}
        if self.type_ids is not None:
            row[TYPE_IDS] = self.type_ids[start:end]
        return row

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name (what the token cache stores)."""
        named = {"ids": self.ids, "offsets": self.offsets}
        if self.type_ids is not None:
            named["type_ids"] = self.type_ids
        return named

    @classmethod
    def from_arrays(cls, named: dict[str, np.ndarray]) -> TokenArrays:
        return cls(named["ids"], named["offsets"], named.get("type_ids"))


class TokenRows:
    """The training rows as a map dataset: row `i` is its ids (views) plus `labels` and `row`
    (its position, which the loop's dynamics use)."""

    def __init__(self, tokens: TokenArrays, labels: np.ndarray) -> None:
        if len(labels) != len(tokens):
            raise ValueError(f"{len(labels)} labels for {len(tokens)} tokenised rows")
        self.tokens, self.labels = tokens, labels

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row: dict[str, Any] = self.tokens.row(index)
        row["labels"], row["row"] = self.labels[index], index
        return row


def chunks(texts: Sequence[TextInput], chars: int = CHUNK_CHARS) -> Iterator[list[TextInput]]:
    """Consecutive runs of texts with about `chars` characters each (at least one text)."""
    chunk: list[TextInput] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text) if isinstance(text, str) else sum(map(len, text))
        if size >= chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _call(tokenizer: PreTrainedTokenizerBase, texts: list[TextInput], max_length: int,
          type_ids: bool) -> Any:
    """The tokenizer on one chunk (pairs as two lists), without attention masks."""
    options: dict[str, Any] = {"truncation": True, "max_length": max_length,
                               "return_attention_mask": False,
                               "return_token_type_ids": type_ids}
    if texts and isinstance(texts[0], tuple):
        return tokenizer([t[0] for t in texts], [t[1] for t in texts], **options)
    return tokenizer(texts, **options)


def _flat(lists: list[list[int]], total: int) -> np.ndarray:
    return np.fromiter(chain.from_iterable(lists), dtype=np.int32, count=total)


def tokenize_arrays(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                    max_length: int, chars: int = CHUNK_CHARS) -> TokenArrays:
    """Token ids of `texts`, truncated to `max_length`, with the tokenizer's special tokens
    and no padding (batches are padded by the collator)."""
    wants_types = TYPE_IDS in tokenizer.model_input_names
    ids: list[np.ndarray] = []
    types: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for chunk in chunks(texts, chars):
        encoded = _call(tokenizer, chunk, max_length, wants_types)
        chunk_lengths = np.fromiter(map(len, encoded["input_ids"]), dtype=np.int64,
                                    count=len(chunk))
        total = int(chunk_lengths.sum())
        lengths.append(chunk_lengths)
        ids.append(_flat(encoded["input_ids"], total))
        if wants_types and TYPE_IDS in encoded:
            types.append(_flat(encoded[TYPE_IDS], total))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    flat_types = np.concatenate(types) if types else None
    if flat_types is not None and not flat_types.any():
        flat_types = None  # single texts: all zero, the collator makes them
    return TokenArrays(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32), offsets,
                       flat_types)


def measure_lengths(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                    cap: int = LENGTH_CAP, chars: int = CHUNK_CHARS) -> np.ndarray:
    """Token counts (special tokens included) of `texts`, up to `cap`, keeping only the
    counts: memory holds one chunk's ids, not the corpus's."""
    counts: list[np.ndarray] = []
    for chunk in chunks(texts, chars):
        encoded = _call(tokenizer, chunk, cap, type_ids=False)
        counts.append(np.fromiter(map(len, encoded["input_ids"]), dtype=np.int64,
                                  count=len(chunk)))
    return np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)


def untruncated_lengths(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                        tokens: TokenArrays, max_length: int) -> np.ndarray:
    """Lengths before truncation, from `tokens` (the same texts truncated to `max_length`):
    only rows exactly `max_length` long may have been cut, so only they are measured again."""
    lengths = tokens.lengths.copy()
    full = np.flatnonzero(lengths >= max_length)
    if len(full):
        lengths[full] = measure_lengths(tokenizer, [texts[i] for i in full.tolist()])
    return lengths
