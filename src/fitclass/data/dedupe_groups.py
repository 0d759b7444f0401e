"""Near-duplicate clusters of a table's rows, as the groups `data.split.dedupe: group` keeps
whole: in the validation split, in cross-validation folds and in the audit's folds.

Text rows cluster by MinHash-verified character-shingle similarity (`text_near_duplicates`,
`data.near_duplicate_threshold`); image rows by byte-identical files (SHA-256) and by dHash
Hamming distance within `data.images.near_duplicate_bits` (`near_duplicates`). A cluster is
a connected component: rows linked by a chain of near copies are one cluster, so no chain
can straddle a split. Under `data.split.method: group` the clusters are joined with
`data.group` (rows sharing either are one group).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from fitclass.data.grouping import first_seen_codes, merged_codes
from fitclass.data.near_duplicates import near_pairs
from fitclass.data.table import TextTable
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.recipe import DataConfig

#: Near pairs of distinct dHashes gathered for clustering; a data set with more has a bigger
#: problem (most images alike) and its clusters may miss some links beyond this.
MAX_IMAGE_PAIRS = 1_000_000


def image_clusters(table: TextTable, max_bits: int) -> np.ndarray:
    """A cluster id per image row of `table` (scanned: its frame holds `_sha256`, `_dhash`):
    byte-identical files, and dHashes within `max_bits` bits (0: identical files only),
    joined transitively; ids in order of each cluster's first row."""
    digests = first_seen_codes(map(str, table.frame["_sha256"]))
    if not max_bits:
        return digests
    hashes = [str(h) for h in table.frame["_dhash"]]
    hash_code = first_seen_codes(hashes)
    distinct = list(dict.fromkeys(hashes))  # in code order
    pairs = np.array(near_pairs(distinct, None, max_bits, limit=MAX_IMAGE_PAIRS),
                     dtype=np.int64).reshape(-1, 3)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                              shape=(len(distinct), len(distinct)))
    _, component = connected_components(graph, directed=False)
    return merged_codes(digests, component[hash_code])


def near_clusters(table: TextTable, config: DataConfig) -> np.ndarray | None:
    """The near-duplicate cluster of every row (text or image), or None when the recipe's
    near-duplicate check is off for text (`data.near_duplicate_threshold: null`)."""
    if config.images is not None:
        return image_clusters(table, config.images.near_duplicate_bits)
    if config.near_duplicate_threshold is None:
        return None
    return find_near_duplicates(table.texts, config.near_duplicate_threshold).clusters()


def dedupe_groups(table: TextTable, config: DataConfig) -> np.ndarray | None:
    """The groups rows must keep together when splitting `table` into folds: near-duplicate
    clusters under `data.split.dedupe: group` (joined with `data.group` under method: group),
    `data.group` alone under method: group, else None (rows split freely). The audit's and
    cross-validation's folds keep each group in one fold."""
    groups = table.groups if config.split.method == "group" else None
    if config.split.dedupe != "group" or (config.split.method == "group" and groups is None):
        return groups  # (the fold check names a missing data.group column)
    clusters = near_clusters(table, config)
    if clusters is None:
        return groups
    return merged_codes(groups, clusters) if groups is not None else clusters
