"""Near-duplicate hashes: the banded search (multi-index hashing) finds exactly the pairs that
comparing every pair finds, and scales past the 50,000 images the old search stopped at."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from fitclass.data import near_duplicates
from fitclass.data.image_checks import check_image_duplicates, check_image_leakage
from fitclass.data.near_duplicates import best_bands, cut, hash_words, near_pairs
from fitclass.data.table import TextTable
from fitclass.recipe import ImagesConfig


def brute_force(first: list[str], second: list[str] | None,
                max_bits: int) -> list[tuple[int, int, int]]:
    """Every pair compared: the reference."""
    a = hash_words(first)
    b = a if second is None else hash_words(second)
    distance = np.bitwise_count(a[:, np.newaxis] ^ b[np.newaxis, :])
    rows, cols = np.nonzero(distance <= max_bits)
    return [(i, j, int(distance[i, j])) for i, j in zip(rows.tolist(), cols.tolist(),
                                                        strict=True)
            if second is not None or j > i]


def planted(rng: np.random.Generator, count: int,
            distances: list[int]) -> tuple[list[str], list[tuple[int, int, int]]]:
    """`count` random hashes plus one copy of a random one per distance, that many bits
    flipped; shuffled. Returns the hashes and the planted pairs (i < j, distance)."""
    words = [int(w) for w in rng.integers(0, 2**64, size=count, dtype=np.uint64)]
    pairs = []
    for distance in distances:
        source = int(rng.integers(len(words)))
        flips = sum(1 << int(bit) for bit in rng.choice(64, size=distance, replace=False))
        words.append(words[source] ^ flips)
        pairs.append((source, len(words) - 1, distance))
    order = rng.permutation(len(words))
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    moved = sorted((min(where[i], where[j]), max(where[i], where[j]), d) for i, j, d in pairs)
    return [f"{words[i]:016x}" for i in order], [(int(i), int(j), d) for i, j, d in moved]


@pytest.mark.parametrize("max_bits", [0, 1, 3, 5, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_banded_equals_brute_force(max_bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hashes, _ = planted(rng, 1500, [d for d in range(10) for _ in range(6)])
    other, _ = planted(rng, 700, [])
    other += hashes[:40]  # validation rows identical to training rows
    assert best_bands(len(hashes), max_bits) is not None  # the banded search runs
    assert near_pairs(hashes, None, max_bits) == brute_force(hashes, None, max_bits)
    assert near_pairs(other, hashes, max_bits) == brute_force(other, hashes, max_bits)


@pytest.mark.parametrize("bands", [2, 3, 4, 5, 8])
def test_every_banding_finds_every_pair_within_the_bits(monkeypatch: pytest.MonkeyPatch,
                                                        bands: int) -> None:
    """Bands wider than the radius allows (flipped bits looked up) included."""
    max_bits = 4
    monkeypatch.setattr(near_duplicates, "best_bands",
                        lambda indexed, bits: cut(bands, bits))
    hashes, _ = planted(np.random.default_rng(bands), 400, [d for d in range(7)
                                                             for _ in range(5)])
    assert near_pairs(hashes, None, max_bits) == brute_force(hashes, None, max_bits)


def test_many_identical_hashes_and_the_pair_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks with too many candidates are halved; the limit keeps the first pairs."""
    monkeypatch.setattr(near_duplicates, "BLOCK_PAIRS", 500)
    hashes = ["00000000000000ff"] * 60 + planted(np.random.default_rng(3), 300, [1, 2])[0]
    want = brute_force(hashes, None, 3)
    assert near_pairs(hashes, None, 3) == want
    assert near_pairs(hashes, None, 3, limit=100) == want[:100]


def test_few_hashes_or_many_bits_compare_every_pair() -> None:
    assert best_bands(3, 3) is None and best_bands(100_000, 32) is None
    hashes, _ = planted(np.random.default_rng(4), 50, [3, 20])
    assert near_pairs(hashes, None, 24) == brute_force(hashes, None, 24)
    assert near_pairs(hashes[:10], hashes, 24) == brute_force(hashes[:10], hashes, 24)
    assert near_pairs([], hashes, 3) == [] and near_pairs(hashes, [], 3) == []


def _image_table(hashes: list[str], source: str) -> TextTable:
    frame = pd.DataFrame({"_sha256": [f"{source}{i}" for i in range(len(hashes))],
                          "_dhash": hashes})
    return TextTable(source=source, frame=frame, texts=[f"img{i}.png" for i in
                                                        range(len(hashes))],
                     labels=["a"] * len(hashes), ids=[str(i) for i in range(len(hashes))])


def test_more_than_50000_images_are_searched_in_near_linear_time() -> None:
    """Above 50,000 images the old check skipped near duplicates; now they are found. Random
    64-bit hashes are within 3 bits of each other with probability 2e-15, so the planted
    pairs are all there is."""
    rng = np.random.default_rng(5)
    hashes, pairs = planted(rng, 60_000, [0, 1, 2, 3, 3, 4, 9])
    started = time.perf_counter()
    findings = {f.check: f for f in check_image_duplicates(_image_table(hashes, "train"),
                                                           ImagesConfig())}
    seconds = time.perf_counter() - started
    near = findings["near_duplicate_images"]
    assert near.count == 5  # distances 0-3; the 4- and 9-bit copies are not near
    expected = [f"img{i}.png ~ img{j}.png ({d} bits)" for i, j, d in pairs if d <= 3]
    assert near.examples == expected
    assert seconds < 30, f"near-duplicate search of 60,000 hashes took {seconds:.1f} s"


def test_leakage_above_50000_images_is_found() -> None:
    rng = np.random.default_rng(6)
    train, _ = planted(rng, 50_000, [])
    valid, _ = planted(rng, 2_000, [])
    valid[7] = f"{int(train[123], 16) ^ 0b101:016x}"  # two bits off a training image
    leak = check_image_leakage(_image_table(train, "train"), _image_table(valid, "valid"),
                               ImagesConfig())
    assert leak is not None and leak.count == 1 and leak.rows == [7]
    assert "img7.png ~ img123.png (2 bits)" in leak.message
