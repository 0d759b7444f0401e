"""Near-duplicate texts in near-linear time: MinHash LSH over character shingles, verified by
exact Jaccard similarity, grouped into clusters.

Comparing every pair is quadratic: 150,000 texts are 11 billion pairs. Instead:

- Every text becomes a key: the duplicate check's normalised text (`checks.normalise`) with
  everything but letters and digits removed, so case, punctuation, whitespace and spacing
  (Korean word spacing varies freely) never count; texts with the same key are one entry.
- A key's shingles are its character 3-grams (a shorter key is one shingle), each three
  21-bit code points packed into one uint64: exact, no hash collisions, for any script.
- MinHash (Broder 1997): `NUM_PERM` multiply-shift hashes of the shingle ids; for each hash
  the minimum over a key's shingles agrees between two keys with probability equal to their
  Jaccard similarity. Computed for all keys at once with `np.minimum.reduceat`.
- LSH banding: the signature is cut into bands of `rows` values; keys equal in a whole band
  are candidates. `bands_for` picks the banding so a pair at the threshold is a candidate
  with probability >= `RECALL_AT_THRESHOLD`, pairs above it even more surely.
- Candidates are verified by the exact Jaccard similarity of their shingle sets (a sparse
  row product), so no reported pair is a MinHash accident; clusters are the connected
  components of the verified pairs (scipy).

Why numpy rather than `datasketch`: datasketch's `MinHash.bulk` + `MinHashLSH` took 4.3 s
for 20,000 NSMC rows (about 33 s for 150,000) in Python loops; this vectorised version does
all 150,000 in a few seconds (docs/benchmarks.md, "Text near-duplicates").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from fitclass.data.table import TextInput

#: Characters per shingle.
SHINGLE = 3
#: MinHash values per key (the signature length).
NUM_PERM = 128
#: Chance that a pair exactly at the threshold becomes a candidate (higher above it).
RECALL_AT_THRESHOLD = 0.99
#: Rows of one band run larger than this (thousands of keys agreeing on a whole band) are
#: chained (each paired with the next) instead of paired all with all, bounding the work.
MAX_RUN = 256
#: Candidate pairs verified at once.
BLOCK_PAIRS = 1 << 20
_NOT_WORD = re.compile(r"[\W_]+")
_CODE_BITS = 21  # Unicode code points are below 2^21


def near_key(text: TextInput) -> str:
    """Lower-case letters and digits only; a text with none keeps its other characters."""
    joined = text if isinstance(text, str) else " ".join(text)
    lowered = "".join(joined.split()).lower()
    return _NOT_WORD.sub("", lowered) or lowered


def shingle_matrix(keys: Sequence[str], size: int = SHINGLE) -> sparse.csr_matrix:
    """Binary keys x shingles matrix (row = a key's set of character `size`-grams), with
    shingle ids in sorted order of the packed shingles; every row has at least one."""
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    codes = np.frombuffer("".join(keys).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    codes = np.concatenate([codes, np.zeros(size, dtype=np.uint64)])  # pads short keys
    counts = np.maximum(lengths - size + 1, 1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.repeat(np.arange(len(keys)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    position = np.repeat(starts, counts) + offsets
    packed = np.zeros(len(position), dtype=np.uint64)
    length = np.repeat(lengths, counts)
    for k in range(size):  # a key shorter than `size` is one shingle, padded with zeros
        value = codes[position + k]
        value[length <= k] = 0
        packed = (packed << np.uint64(_CODE_BITS)) | value
    values, ids = np.unique(packed, return_inverse=True)
    matrix = sparse.csr_matrix((np.ones(len(ids), dtype=np.float32), (owner, ids.ravel())),
                               shape=(len(keys), len(values)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def signatures(matrix: sparse.csr_matrix, num_perm: int = NUM_PERM,
               seed: int = 0) -> np.ndarray:
    """keys x `num_perm` MinHash values (uint32): per hash, the minimum over a key's shingles
    of a multiply-shift hash ((a * id + b) mod 2^64) >> 32, a odd."""
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + 1
    offsets = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    ids = matrix.indices.astype(np.uint64)
    starts = matrix.indptr[:-1]
    out = np.empty((matrix.shape[0], num_perm), dtype=np.uint32)
    for p in range(num_perm):  # one hash at a time: two arrays the size of the shingles
        hashed = ((ids * multipliers[p] + offsets[p]) >> np.uint64(32)).astype(np.uint32)
        out[:, p] = np.minimum.reduceat(hashed, starts)
    return out


def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) for which a pair of
    similarity `threshold` is a candidate with probability >= RECALL_AT_THRESHOLD."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= RECALL_AT_THRESHOLD:
            return bands, rows
    return num_perm, 1


def candidate_pairs(signature: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Distinct key pairs (i < j) equal on some whole band, as int64 codes i * n + j."""
    n = len(signature)
    weights = np.random.default_rng(1).integers(1, 2**63, size=rows,
                                                dtype=np.uint64) * np.uint64(2) + 1
    found = []
    for band in range(bands):
        block = signature[:, band * rows:(band + 1) * rows].astype(np.uint64)
        hashed = (block * weights).sum(axis=1)  # wraps mod 2^64; collisions get verified
        order = np.argsort(hashed, kind="stable")
        ranked = hashed[order]
        breaks = np.flatnonzero(ranked[1:] != ranked[:-1]) + 1
        starts = np.concatenate([[0], breaks])
        sizes = np.diff(np.concatenate([starts, [n]]))
        first, second = _run_pairs(starts[sizes > 1], sizes[sizes > 1])
        i, j = order[first], order[second]
        found.append(np.minimum(i, j) * n + np.maximum(i, j))
    codes = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return np.unique(codes)


def _run_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (p, q), p < q, of every pair inside each run; a run over MAX_RUN is a
    chain of neighbours."""
    chained = sizes > MAX_RUN
    chain = np.concatenate([np.arange(s, s + m - 1) for s, m in
                            zip(starts[chained], sizes[chained], strict=True)] or
                           [np.zeros(0, dtype=np.int64)])
    starts, sizes = starts[~chained], sizes[~chained]
    member = _spans(starts, sizes)  # every position of every run
    partners = np.repeat(starts + sizes, sizes) - member - 1  # later members of its run
    first = np.repeat(member, partners)
    second = first + 1 + (np.arange(int(partners.sum()))
                          - np.repeat(np.cumsum(partners) - partners, partners))
    return np.concatenate([first, chain]), np.concatenate([second, chain + 1])


def _spans(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """start, start + 1, ..., start + count - 1 of every span, concatenated."""
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts).astype(np.int64) + offsets


def jaccard(matrix: sparse.csr_matrix, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of rows `first[k]` and `second[k]`."""
    sizes = np.diff(matrix.indptr)
    out = np.empty(len(first))
    for start in range(0, len(first), BLOCK_PAIRS):
        a, b = first[start:start + BLOCK_PAIRS], second[start:start + BLOCK_PAIRS]
        shared = np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()
        out[start:start + len(a)] = shared / (sizes[a] + sizes[b] - shared)
    return out


@dataclass(frozen=True)
class NearDuplicates:
    """Texts grouped by key, and the verified pairs of keys at or above the threshold."""

    #: The key code of every row (0 for the first distinct key, 1 for the next new one...).
    key_of_row: np.ndarray
    #: The verified key pairs (i < j), shape (pairs, 2), and their Jaccard similarity.
    pairs: np.ndarray
    similarity: np.ndarray
    threshold: float

    @property
    def n_keys(self) -> int:
        return int(self.key_of_row.max()) + 1 if len(self.key_of_row) else 0

    def first_rows(self) -> np.ndarray:
        """The first row of every key."""
        first = np.full(self.n_keys, len(self.key_of_row), dtype=np.int64)
        np.minimum.at(first, self.key_of_row, np.arange(len(self.key_of_row)))
        return first

    def clusters(self) -> np.ndarray:
        """A cluster id per row: rows sharing a key, or linked by a chain of verified pairs,
        share one; ids in order of each cluster's first row."""
        graph = sparse.coo_matrix((np.ones(len(self.pairs)), (self.pairs[:, 0],
                                                              self.pairs[:, 1])),
                                  shape=(self.n_keys, self.n_keys))
        _, component = connected_components(graph, directed=False)
        of_row = component[self.key_of_row]
        _, first, inverse = np.unique(of_row, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        return rank[inverse.ravel()]

    def restrict(self, rows: np.ndarray) -> NearDuplicates:
        """The same structure over `rows` only (a bool mask): keys none of them has, and pairs
        touching such keys, drop out; row numbers become positions among `rows`."""
        kept = self.key_of_row[rows]
        present, new_of_row = np.unique(kept, return_inverse=True)
        # renumber in first-seen order, as `first_seen_codes` would
        _, first = np.unique(new_of_row, return_index=True)
        order = np.empty(len(present), dtype=np.int64)
        order[np.argsort(first, kind="stable")] = np.arange(len(present))
        code = np.full(self.n_keys, -1, dtype=np.int64)
        code[present] = order
        mapped = code[self.pairs] if len(self.pairs) else self.pairs.reshape(0, 2)
        both = (mapped >= 0).all(axis=1) if len(mapped) else np.zeros(0, dtype=bool)
        pairs = np.sort(mapped[both], axis=1)
        return NearDuplicates(code[kept], pairs, self.similarity[both], self.threshold)

    def best_match(self, query: np.ndarray, target: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """For every row of `query` (a bool mask): a row of `target` (a bool mask) with the
        same key or the most similar verified key (-1 if none), and that similarity."""
        none = len(self.key_of_row)
        first_target = np.full(self.n_keys, none, dtype=np.int64)
        target_rows = np.flatnonzero(target)
        np.minimum.at(first_target, self.key_of_row[target_rows], target_rows)
        first_target[first_target == none] = -1
        match, score = first_target.copy(), np.where(first_target >= 0, 1.0, 0.0)
        if len(self.pairs):
            keys = np.concatenate([self.pairs[:, 0], self.pairs[:, 1]])
            other = np.concatenate([self.pairs[:, 1], self.pairs[:, 0]])
            similarity = np.concatenate([self.similarity, self.similarity])
            usable = (first_target[other] >= 0) & (first_target[keys] < 0)
            keys, other, similarity = keys[usable], other[usable], similarity[usable]
            order = np.lexsort((-similarity, keys))  # per key, most similar first
            keys, other, similarity = keys[order], other[order], similarity[order]
            lead = np.concatenate([[True], keys[1:] != keys[:-1]]) if len(keys) else \
                np.zeros(0, dtype=bool)
            match[keys[lead]] = first_target[other[lead]]
            score[keys[lead]] = similarity[lead]
        rows = np.flatnonzero(query)
        return match[self.key_of_row[rows]], score[self.key_of_row[rows]]


def find_near_duplicates(texts: Sequence[TextInput], threshold: float,
                         size: int = SHINGLE, num_perm: int = NUM_PERM) -> NearDuplicates:
    """Every pair of distinct keys with Jaccard similarity >= `threshold` (found by MinHash
    LSH, so a pair just at the threshold is missed with probability about 1%)."""
    index: dict[str, int] = {}
    key_of_row = np.fromiter((index.setdefault(near_key(t), len(index)) for t in texts),
                             dtype=np.int64, count=len(texts))
    if len(index) < 2:
        return NearDuplicates(key_of_row, np.zeros((0, 2), dtype=np.int64), np.zeros(0),
                              threshold)
    matrix = shingle_matrix(list(index), size)
    bands, rows = bands_for(threshold, num_perm)
    codes = candidate_pairs(signatures(matrix, bands * rows), bands, rows)
    first, second = codes // len(index), codes % len(index)
    similarity = jaccard(matrix, first, second)
    keep = similarity >= threshold - 1e-12
    return NearDuplicates(key_of_row, np.stack([first[keep], second[keep]], axis=1),
                          similarity[keep], threshold)
