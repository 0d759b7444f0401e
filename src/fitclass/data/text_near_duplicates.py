"""Near-duplicate texts in near-linear time: MinHash LSH over character shingles, verified by
exact Jaccard similarity, grouped into clusters.

Comparing every pair is quadratic: 150,000 texts are 11 billion pairs. Instead:

- Every text becomes a key: the duplicate check's normalised text (`checks.normalise`) with
  everything but letters and digits removed, so case, punctuation, whitespace and spacing
  (Korean word spacing varies freely) never count; texts with the same key are one entry.
- A key's shingles are its character n-grams (a shorter key is one shingle), up to three
  21-bit code points packed exactly into one uint64 (longer ones mixed, colliding with
  probability about 2^-64), for any script. n is the
  smallest from 2 up for which random pairs of the data's own texts share almost nothing
  (median Jaccard <= `BACKGROUND`; `shingle_size`): small n keeps short texts' similarity
  high under a small edit, but unrelated texts share many short n-grams, the more so the
  longer they are, and a candidate search then finds everything. Measured: 2 for short
  Korean reviews (a syllable carries what two or three Latin letters do), 3 for English
  sentences, 5-6 for English documents of a thousand characters and more.
- Keys are cut at `MAX_KEY` characters, bounding the work on long documents.
- MinHash (Broder 1997): up to `NUM_PERM` multiply-shift hashes of the shingles; for each
  hash the minimum over a key's shingles agrees between two keys with probability equal to
  their Jaccard similarity. Computed for a chunk of keys at once (`np.minimum.reduceat`).
- LSH banding: the hashes are cut into bands of `rows`; keys equal on a whole band are
  candidates. `bands_for` picks the banding so a pair at the threshold is a candidate
  with probability >= `RECALL_AT_THRESHOLD`, pairs above it even more surely.
- Candidates are verified by the exact Jaccard similarity of their shingle sets (a sparse
  row product), so no reported pair is a MinHash accident; clusters are the connected
  components of the verified pairs (scipy).

Why numpy rather than `datasketch`: datasketch hashes and indexes one text at a time in
Python (`MinHash.bulk` + `MinHashLSH` took 4.3 s for 20,000 NSMC rows, about 33 s for
150,000); this vectorised version does all 150,000, verified, in a few seconds
(docs/benchmarks.md, "Text near-duplicates"), and needs no new dependency.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from fitclass.data.table import TextInput

#: Characters per shingle when there is too little data to choose, and the sizes tried.
SHINGLE, SIZES = 3, tuple(range(2, 9))
#: Median Jaccard similarity of random pairs of texts the chosen shingle size allows, and
#: the texts sampled to measure it.
BACKGROUND, SAMPLE = 0.05, 400
#: Characters of a key compared (texts equal up to here count as identical).
MAX_KEY = 4000
#: MinHash values per key (the signature length).
NUM_PERM = 128
#: Chance that a pair exactly at the threshold becomes a candidate (higher above it).
RECALL_AT_THRESHOLD = 0.98
#: Keys agreeing on a whole band, more than this many, are chained (each paired with the
#: next) instead of paired all with all: candidates stay under MAX_RUN / 2 per key and band
#: even where every text is alike (a template), and chains still join their clusters.
MAX_RUN = 32
#: Characters of keys whose shingles are held at once (hashing, or verifying pairs).
CHUNK_CHARS = 1 << 21
#: Multiplier of the polynomial hash that turns a band's MinHash values into one key.
_COMBINE = np.uint64(0x9E3779B97F4A7C15)
_NOT_WORD = re.compile(r"[\W_]+")
_CODE_BITS = 21  # Unicode code points are below 2^21
_EXACT = 64 // _CODE_BITS  # code points packed exactly into one uint64


def near_key(text: TextInput) -> str:
    """Lower-case letters and digits only; a text with none keeps its other characters."""
    joined = text if isinstance(text, str) else " ".join(text)
    lowered = "".join(joined.split()).lower()
    return (_NOT_WORD.sub("", lowered) or lowered)[:MAX_KEY]


def _code_points(keys: Sequence[str]) -> np.ndarray:
    return np.frombuffer("".join(keys).encode("utf-32-le"), dtype=np.uint32)


def shingle_size(keys: Sequence[str]) -> int:
    """The smallest of SIZES for which random pairs among `keys` (SAMPLE of them, seeded)
    have a median Jaccard similarity <= BACKGROUND; the largest if none does."""
    if len(keys) < 4:
        return SHINGLE
    count = min(SAMPLE, len(keys)) // 2 * 2
    picked = np.random.default_rng(0).choice(len(keys), size=count, replace=False)
    sample = [keys[i] for i in picked.tolist()]
    first, second = np.arange(count // 2), np.arange(count // 2, count)
    for size in SIZES:
        if np.median(jaccard(shingle_matrix(sample, size), first, second)) <= BACKGROUND:
            return size
    return SIZES[-1]


def _packed(keys: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every key's shingles (packed code points, repeats kept), and their count per key."""
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    codes = _code_points(keys).astype(np.uint64)
    codes = np.concatenate([codes, np.zeros(size, dtype=np.uint64)])  # pads short keys
    counts = np.maximum(lengths - size + 1, 1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    position = _spans(starts, counts)
    packed = np.zeros(len(position), dtype=np.uint64)
    length = np.repeat(lengths, counts)
    for k in range(size):  # a key shorter than `size` is one shingle, padded with zeros
        value = codes[position + k]
        value[length <= k] = 0
        # three code points fit 64 bits exactly; then mix (a bijection) and add, so that
        # distinct longer shingles collide with probability about 2^-64
        packed = ((packed << np.uint64(_CODE_BITS)) | value if k < _EXACT
                  else _mix(packed) + value)
    return packed, counts


def shingle_matrix(keys: Sequence[str], size: int = SHINGLE) -> sparse.csr_matrix:
    """Binary keys x shingles matrix (row = a key's set of character `size`-grams), with
    shingle ids in sorted order of the packed shingles; every row has at least one."""
    packed, counts = _packed(keys, size)
    values, ids = np.unique(packed, return_inverse=True)
    owner = np.repeat(np.arange(len(keys)), counts)
    matrix = sparse.csr_matrix((np.ones(len(ids), dtype=np.float32), (owner, ids.ravel())),
                               shape=(len(keys), len(values)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: packed shingles (structured bits) to well-spread 64 bits."""
    mixed = values ^ (values >> np.uint64(30))
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(27)
    mixed *= np.uint64(0x94D049BB133111EB)
    return mixed ^ (mixed >> np.uint64(31))


def _chunks(costs: np.ndarray, budget: int) -> list[slice]:
    """Consecutive slices of `costs` summing to at most `budget` (or one item each)."""
    total = np.cumsum(costs)
    slices, start = [], 0
    while start < len(costs):
        done = int(total[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(total, done + budget, side="right")))
        slices.append(slice(start, stop))
        start = stop
    return slices


def band_keys(keys: Sequence[str], size: int, bands: int, rows: int,
              seed: int = 0) -> np.ndarray:
    """keys x bands uint64: per band, a hash of the key's `rows` MinHash values. A MinHash
    value is the minimum over the key's shingles of a multiply-shift hash
    (a * x + b mod 2^64) >> 32 of the mixed shingle x; keys are taken a chunk of CHUNK_CHARS
    characters at a time, so memory stays flat on long texts."""
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(0, 2**63, size=bands * rows, dtype=np.uint64) * np.uint64(2) + 1
    offsets = rng.integers(0, 2**63, size=bands * rows, dtype=np.uint64)
    out = np.empty((len(keys), bands), dtype=np.uint64)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    for part in _chunks(lengths, CHUNK_CHARS):
        packed, counts = _packed(keys[part], size)
        mixed = _mix(packed)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for band in range(bands):
            combined = np.zeros(len(counts), dtype=np.uint64)
            for p in range(band * rows, (band + 1) * rows):
                hashed = (mixed * multipliers[p] + offsets[p]) >> np.uint64(32)
                # a polynomial hash of the tuple; a collision only adds a candidate
                combined = combined * _COMBINE + np.minimum.reduceat(hashed, starts)
            out[part, band] = combined
    return out


def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) for which a pair of
    similarity `threshold` is a candidate with probability >= RECALL_AT_THRESHOLD."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= RECALL_AT_THRESHOLD:
            return bands, rows
    return num_perm, 1


def candidate_pairs(keys_by_band: np.ndarray) -> np.ndarray:
    """Distinct key pairs (i < j) equal on some whole band, as int64 codes i * n + j."""
    n = len(keys_by_band)
    found = []
    for band in range(keys_by_band.shape[1]):
        order = np.argsort(keys_by_band[:, band], kind="stable")
        ranked = keys_by_band[order, band]
        breaks = np.flatnonzero(ranked[1:] != ranked[:-1]) + 1
        starts = np.concatenate([[0], breaks])
        sizes = np.diff(np.concatenate([starts, [n]]))
        first, second = _run_pairs(starts[sizes > 1], sizes[sizes > 1])
        i, j = order[first], order[second]
        found.append(np.unique(np.minimum(i, j) * n + np.maximum(i, j)))
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


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
    shared = np.asarray(matrix[first].multiply(matrix[second]).sum(axis=1)).ravel()
    return np.asarray(shared / (sizes[first] + sizes[second] - shared), dtype=float)


def verify(keys: Sequence[str], size: int, codes: np.ndarray,
           threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs (codes i * n + j) at or above `threshold`, as (pairs, 2), and
    their similarity; the shingle sets are built for a block of pairs at a time."""
    n = len(keys)
    first, second = codes // n, codes % n
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    kept, similarity = [], []
    for part in _chunks(lengths[first] + lengths[second], CHUNK_CHARS):
        a, b = first[part], second[part]
        involved, local = np.unique(np.concatenate([a, b]), return_inverse=True)
        matrix = shingle_matrix([keys[k] for k in involved.tolist()], size)
        score = jaccard(matrix, local[:len(a)], local[len(a):])
        close = score >= threshold - 1e-12
        kept.append(np.stack([a[close], b[close]], axis=1))
        similarity.append(score[close])
    if not kept:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    return np.concatenate(kept), np.concatenate(similarity)


@dataclass(frozen=True)
class NearDuplicates:
    """Texts grouped by key, and the verified pairs of keys at or above the threshold."""

    #: The key code of every row (0 for the first distinct key, 1 for the next new one...).
    key_of_row: np.ndarray
    #: The verified key pairs (i < j), shape (pairs, 2), and their Jaccard similarity.
    pairs: np.ndarray
    similarity: np.ndarray
    threshold: float
    #: Characters per shingle.
    shingle: int = SHINGLE

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
        return NearDuplicates(code[kept], pairs, self.similarity[both], self.threshold,
                              self.shingle)

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
                         size: int | None = None, num_perm: int = NUM_PERM) -> NearDuplicates:
    """Every pair of distinct keys with Jaccard similarity >= `threshold` of their character
    `size`-grams (default: `shingle_size`), found by MinHash LSH, so a pair just at the
    threshold is missed with probability at most 2%."""
    index: dict[str, int] = {}
    key_of_row = np.fromiter((index.setdefault(near_key(t), len(index)) for t in texts),
                             dtype=np.int64, count=len(texts))
    size = shingle_size(list(index)) if size is None else size
    if len(index) < 2:
        return NearDuplicates(key_of_row, np.zeros((0, 2), dtype=np.int64), np.zeros(0),
                              threshold, size)
    keys = list(index)
    bands, rows = bands_for(threshold, num_perm)
    pairs, similarity = verify(keys, size, candidate_pairs(band_keys(keys, size, bands, rows)),
                               threshold)
    return NearDuplicates(key_of_row, pairs, similarity, threshold, size)
