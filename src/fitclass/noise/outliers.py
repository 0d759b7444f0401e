"""Outliers: rows far from every other row in feature space, judged against their class.

A row's distance is its mean cosine distance to its k nearest other rows (of any class: a
row that sits among another class's rows is a label question, which the label scores
answer; an outlier is far from everything, e.g. an off-topic or broken text). Classes
differ in spread, so each distance is compared with the distances of the rows of the same
given class: its robust (modified) z-score, (distance - class median) / (1.4826 x the
class's median absolute deviation). Rows above `THRESHOLD` (Iglewicz and Hoaglin's 3.5)
are flagged.

Features: the linear probe's cached, L2-normalised transformer features when the audit ran
it, else TF-IDF vectors of the texts (the recipe's TF-IDF settings when its backbone is
TF-IDF); image audits without the probe have no outlier check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from fitclass.data.table import TextTable
from fitclass.recipe import ModelConfig, Recipe

NEIGHBOURS = 10
THRESHOLD = 3.5
#: A median absolute deviation of 0 (most rows at one distance) would make every other
#: row infinitely far; this floor keeps the z-scores finite.
MIN_SPREAD = 1e-6


@dataclass
class Outliers:
    #: Robust z-score of each row's neighbour distance within its given class.
    score: np.ndarray
    flagged: np.ndarray
    #: What the distances were measured on, for the summary.
    features: str


def knn_outliers(features: np.ndarray | sparse.spmatrix, classes: np.ndarray,
                 neighbours: int = NEIGHBOURS, threshold: float = THRESHOLD) -> Outliers:
    """Outlier scores of the rows of `features` (dense or sparse), rows grouped by
    `classes` (one class index per row) for the comparison."""
    rows = features.shape[0]
    k = min(neighbours, rows - 1)
    if k < 1:
        return Outliers(np.zeros(rows), np.zeros(rows, dtype=bool), "")
    index = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute")
    distances, _ = index.fit(features).kneighbors(features)
    distance = distances[:, 1:].mean(axis=1)  # the nearest is the row itself (or a copy)
    score = np.zeros(rows)
    for value in np.unique(classes):
        members = classes == value
        median = np.median(distance[members])
        spread = 1.4826 * np.median(np.abs(distance[members] - median))
        score[members] = (distance[members] - median) / max(spread, MIN_SPREAD)
    return Outliers(score, score > threshold, "")


def text_vectors(recipe: Recipe, table: TextTable) -> sparse.spmatrix:
    """TF-IDF vectors of the texts: the recipe's TF-IDF settings, else the defaults."""
    from fitclass.models.catalog import get_backbone
    from fitclass.models.classical import TfidfBackbone, flatten

    own = isinstance(get_backbone(recipe.model), TfidfBackbone)
    config = recipe.model if own else ModelConfig(backbone="tfidf")
    return TfidfBackbone(config).vectorizer().fit_transform(flatten(table.texts))


def outliers_of(recipe: Recipe, table: TextTable, targets: np.ndarray,
                probe_features: np.ndarray | None) -> Outliers | None:
    """Outliers on the probe's features, else on TF-IDF vectors; None for an image audit
    without the probe (no features to measure on)."""
    classes = targets if targets.ndim == 1 else np.zeros(len(targets), dtype=int)
    if probe_features is not None:
        found = knn_outliers(probe_features, classes)
        found.features = "linear_probe features"
    elif recipe.data.images is None:
        found = knn_outliers(text_vectors(recipe, table), classes)
        found.features = "tfidf vectors"
    else:
        return None
    return found
