"""Rows that share a key (a normalised text, a file hash), found in linear time with arrays.

A check over a million rows cannot keep a Python list per distinct key, nor walk every
group in Python: keys become integer codes once (one dict lookup a row), and the rows of
repeated keys are gathered with one stable sort of those codes. Groups come in the order
their key first occurs, rows ascending inside a group: the order a dict of lists built row
by row would give, so messages list the same rows as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np


def first_seen_codes(keys: Iterable[Hashable]) -> np.ndarray:
    """One int64 code per key: 0 for the first distinct key, 1 for the next new one, ..."""
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(key, len(index)) for key in keys), dtype=np.int64)


@dataclass(frozen=True)
class RepeatedGroups:
    """The rows of every code that occurs more than once, group after group."""

    #: Row positions, grouped: group g is `rows[starts[g]:starts[g + 1]]`.
    rows: np.ndarray
    #: Where each group starts in `rows`, plus `len(rows)` at the end.
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)

    def group(self, index: int) -> list[int]:
        return self.rows[self.starts[index]:self.starts[index + 1]].tolist()

    def firsts(self) -> np.ndarray:
        """Each group's first row (the one the others repeat)."""
        return self.rows[self.starts[:-1]]

    def repeats(self) -> np.ndarray:
        """Every row but each group's first, group after group."""
        later = np.ones(len(self.rows), dtype=bool)
        later[self.starts[:-1]] = False
        return self.rows[later]

    def select(self, keep: np.ndarray) -> RepeatedGroups:
        """The groups where `keep` (one bool per group) is true, in the same order."""
        sizes = self.sizes[keep]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return RepeatedGroups(self.rows[np.repeat(keep, self.sizes)], starts)

    def mixed(self, codes: np.ndarray) -> np.ndarray:
        """Per group: whether its rows carry more than one of `codes` (one code per row)."""
        if not len(self):
            return np.zeros(0, dtype=bool)
        values = codes[self.rows]
        starts = self.starts[:-1]
        return np.minimum.reduceat(values, starts) != np.maximum.reduceat(values, starts)


def repeated_groups(codes: np.ndarray) -> RepeatedGroups:
    """Rows grouped by code, for codes seen more than once (codes from `first_seen_codes`,
    so code order is first-occurrence order)."""
    codes = np.asarray(codes, dtype=np.int64)
    if not len(codes):
        return RepeatedGroups(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))
    counts = np.bincount(codes)
    rows = np.flatnonzero(counts[codes] > 1)
    rows = rows[np.argsort(codes[rows], kind="stable")]  # stable: rows stay ascending
    grouped = codes[rows]
    breaks = np.flatnonzero(grouped[1:] != grouped[:-1]) + 1
    starts = np.concatenate([[0], breaks, [len(rows)]]).astype(np.int64)
    return RepeatedGroups(rows, starts if len(rows) else np.zeros(1, dtype=np.int64))


def merged_codes(*keys: np.ndarray) -> np.ndarray:
    """One group code per row, shared by rows linked by an equal value of any of `keys`
    (one array per key, a value per row), directly or through other rows: the connected
    components of rows and key values (union-find over every key at once). Codes in order
    of each group's first row."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n = len(keys[0])
    columns, offset = [], n
    for key in keys:  # key values are nodes after the n row nodes
        _, code = np.unique(key, return_inverse=True)
        columns.append(code.ravel() + offset)
        offset += int(code.max()) + 1 if n else 0
    rows = np.tile(np.arange(n), len(keys))
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, np.concatenate(columns))),
                              shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    return first_seen_codes(component[:n].tolist())
