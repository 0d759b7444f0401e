"""Pairs of 64-bit hashes (dHashes) within a Hamming distance, in near-linear time.

Comparing every pair is quadratic: 50,000 images are 1.25 billion pairs. Multi-index
hashing (Norouzi et al., 2012) finds the same pairs: cut the 64 bits into m bands; two
hashes within r bits differ in at most r bits over all bands, so (pigeonhole) in some band
they differ in at most r // m bits. Candidates are the pairs whose values in some band are
that close: each hash looks its band values up, exactly and with up to r // m bits flipped,
in a sorted copy of every band. Only candidates get the exact distance (popcount of xor),
so nothing within r is missed, and the work is the lookups plus the candidates (two random
hashes share a 16-bit band value with probability 2^-16). Where bands cannot pay (many bits
allowed, few hashes), every pair is compared, in blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

#: Candidate pairs (or compared pairs) held at once, about 100 MB of int64 arrays.
BLOCK_PAIRS = 1 << 22
#: Relative costs of one band lookup (binary search) and one candidate, against one pair
#: compared in a block of every pair (measured with numpy 2.4).
LOOKUP_COST, CANDIDATE_COST = 20.0, 12.0


def hash_words(hashes: Sequence[str]) -> np.ndarray:
    """16-hex-digit hashes as uint64 (the first hex digit is the high bits)."""
    raw = bytes.fromhex("".join(hashes))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


@dataclass(frozen=True)
class Bands:
    """The 64 bits cut into `len(widths)` bands; candidates differ in at most `radius` bits
    in some band."""

    widths: tuple[int, ...]
    radius: int

    @property
    def shifts(self) -> tuple[int, ...]:
        return tuple(int(sum(self.widths[index + 1:])) for index in range(len(self.widths)))

    def lookups(self) -> int:
        """Band values looked up per hash: every band, with each way to flip <= radius bits."""
        return sum(sum(comb(width, k) for k in range(self.radius + 1)) for width in self.widths)

    def cost(self, indexed: int) -> float:
        """Work per queried hash, against `indexed` hashes (in pairs compared in bulk)."""
        candidates = sum(sum(comb(width, k) for k in range(self.radius + 1)) * indexed
                         / 2.0 ** width for width in self.widths)
        return LOOKUP_COST * self.lookups() + CANDIDATE_COST * candidates


def cut(count: int, max_bits: int) -> Bands:
    """`count` bands of near-equal width, with the radius the pigeonhole allows."""
    widths = tuple(64 // count + (1 if index < 64 % count else 0) for index in range(count))
    return Bands(widths, max_bits // count)


def best_bands(indexed: int, max_bits: int) -> Bands | None:
    """The cheapest banding for `indexed` hashes, or None where comparing every pair is
    cheaper (more bands than max_bits + 1 only add candidates)."""
    options = [cut(count, max_bits) for count in range(1, min(max_bits + 1, 64) + 1)]
    options = [bands for bands in options if bands.lookups() <= 4096]
    best = min(options, key=lambda bands: bands.cost(indexed), default=None)
    return best if best is not None and best.cost(indexed) < indexed else None


def near_pairs(first: Sequence[str], second: Sequence[str] | None, max_bits: int,
               limit: int = 100_000) -> list[tuple[int, int, int]]:
    """(i, j, distance) with Hamming distance <= max_bits between the hashes of `first` and
    `second` (or within `first`, i < j, when `second` is None), in (i, j) order, stopping
    after `limit` pairs (a data set that large has a bigger problem to report)."""
    a = hash_words(first)
    b = a if second is None else hash_words(second)
    if not len(a) or not len(b):
        return []
    bands = best_bands(len(b), max_bits)
    blocks = (_exhaustive(a, b, second is None, max_bits) if bands is None else
              _candidates(a, b, bands, second is None))
    pairs: list[tuple[int, int, int]] = []
    for i, j in blocks:
        distance = np.bitwise_count(a[i] ^ b[j])
        close = distance <= max_bits
        pairs.extend(zip(i[close].tolist(), j[close].tolist(), distance[close].tolist(),
                         strict=True))
        if len(pairs) >= limit:
            return pairs[:limit]
    return pairs


def _exhaustive(a: np.ndarray, b: np.ndarray, within: bool,
                max_bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (i, j) within `max_bits` (with i < j `within` one set) from every pair, a block
    of query rows at a time, in (i, j) order."""
    step = max(1, BLOCK_PAIRS // len(b))
    for start in range(0, len(a), step):
        distance = np.bitwise_count(a[start:start + step, np.newaxis] ^ b[np.newaxis, :])
        i, j = np.nonzero(distance <= max_bits)
        i += start
        yield (i[j > i], j[j > i]) if within else (i, j)


class _Index:
    """One band of the indexed hashes, sorted, and the flips a lookup tries."""

    def __init__(self, words: np.ndarray, shift: int, width: int, radius: int) -> None:
        self.shift, self.mask = np.uint64(shift), np.uint64((1 << width) - 1)
        values = self.values(words)
        self.order = np.argsort(values, kind="stable")
        self.sorted = values[self.order]
        self.flips = np.array([sum(1 << bit for bit in bits) for k in range(radius + 1)
                               for bits in combinations(range(width), k)], dtype=np.uint64)

    def values(self, words: np.ndarray) -> np.ndarray:
        return (words >> self.shift) & self.mask

    def ranges(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query, first match in `order`, match count) for every flip of every query."""
        keys = (self.values(words)[:, np.newaxis] ^ self.flips[np.newaxis, :]).ravel()
        left = np.searchsorted(self.sorted, keys, side="left")
        count = np.searchsorted(self.sorted, keys, side="right") - left
        query = np.repeat(np.arange(len(words)), len(self.flips))
        hit = count > 0
        return query[hit], left[hit], count[hit]


def _candidates(a: np.ndarray, b: np.ndarray, bands: Bands,
                within: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Distinct (i, j) (with i < j `within` one set) sharing a band value within the
    radius, a block of query rows at a time, in (i, j) order."""
    indexes = [_Index(b, shift, width, bands.radius)
               for shift, width in zip(bands.shifts, bands.widths, strict=True)]
    step = max(1, BLOCK_PAIRS // (8 * bands.lookups()))
    pending = [(start, min(len(a), start + step)) for start in range(0, len(a), step)][::-1]
    while pending:
        start, stop = pending.pop()
        found = [index.ranges(a[start:stop]) for index in indexes]
        if sum(int(count.sum()) for _, _, count in found) > BLOCK_PAIRS and stop - start > 1:
            middle = (start + stop) // 2  # too many candidates at once: halve the block
            pending += [(middle, stop), (start, middle)]
            continue
        i = np.concatenate([start + np.repeat(query, count) for query, _, count in found])
        j = np.concatenate([index.order[_spans(left, count)]
                            for index, (_, left, count) in zip(indexes, found, strict=True)])
        keys = i[j > i] * len(b) + j[j > i] if within else i * len(b) + j
        keys.sort()  # not np.unique: its hash table is 10x slower on these keys
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        yield keys // len(b), keys % len(b)


def _spans(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions start, start + 1, ..., start + count - 1 of every span, concatenated."""
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets
