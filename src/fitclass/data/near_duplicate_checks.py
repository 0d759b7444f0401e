"""Near-duplicate text checks (warnings): near copies inside train, validation rows with a
near copy in train (leakage), and how much leakage `data.split.dedupe: group` removed.

Exact duplicates (case and whitespace ignored) have their own findings (`checks.py`); these
count only the rows that are near but not exact copies, so the two add up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fitclass.data.checks import MAX_LISTED, Finding, normalise
from fitclass.data.grouping import first_seen_codes
from fitclass.data.table import TextInput
from fitclass.data.text_near_duplicates import NearDuplicates


def _measure(found: NearDuplicates) -> str:
    return (f"Jaccard similarity of character {found.shingle}-grams, case, punctuation and "
            f"spacing ignored, >= {found.threshold:g}")


def _quote(text: TextInput) -> str:
    return repr(str(text)[:80])


def _later_near_rows(found: NearDuplicates, exact: np.ndarray) -> np.ndarray:
    """Rows whose exact text (code in `exact`) is new in their cluster but the cluster has
    an earlier row: each nearly repeats an earlier text."""
    clusters = found.clusters()
    combined = clusters * (int(exact.max(initial=0)) + 1) + exact
    _, first_of_text = np.unique(combined, return_index=True)
    _, first_of_cluster = np.unique(clusters, return_index=True)
    return np.sort(first_of_text[first_of_text != first_of_cluster[clusters[first_of_text]]])


def _example_pairs(found: NearDuplicates, exact: np.ndarray) -> list[tuple[int, int, float]]:
    """(earlier row, later row, similarity) of directly similar texts, by later row: rows of
    one key with different exact texts (similarity 1), and the first rows of verified pairs."""
    first = found.first_rows()
    combined = found.key_of_row * (int(exact.max(initial=0)) + 1) + exact
    _, first_of_text = np.unique(combined, return_index=True)
    same_key = first_of_text[first[found.key_of_row[first_of_text]] != first_of_text]
    pairs = [(int(first[found.key_of_row[row]]), int(row), 1.0) for row in same_key]
    for (a, b), similarity in zip(found.pairs.tolist(), found.similarity.tolist(),
                                  strict=True):
        low, high = sorted((int(first[a]), int(first[b])))
        pairs.append((low, high, similarity))
    return sorted(pairs, key=lambda pair: (pair[1], pair[0]))


def check_near_duplicates(found: NearDuplicates, texts: Sequence[TextInput], source: str,
                          positions: Sequence[int]) -> Finding | None:
    """Training rows that nearly repeat an earlier row (not exactly: that is `duplicates`);
    `positions` are the rows' numbers in the file."""
    exact = first_seen_codes(map(normalise, texts))
    later = _later_near_rows(found, exact)
    if not len(later):
        return None
    clusters = len(np.unique(found.clusters()[later]))
    examples = [f"row {positions[a]} ~ row {positions[b]} ({similarity:.2f}): "
                f"{_quote(texts[a])} ~ {_quote(texts[b])}"
                for a, b, similarity in _example_pairs(found, exact)[:MAX_LISTED]]
    return Finding(
        "warning", "near_duplicates",
        f"{source}: {len(later)} rows nearly repeat an earlier text, in {clusters} clusters "
        f"({_measure(found)}), e.g. {examples[0]}; near copies weigh those "
        f"texts more, and across a split they leak: set data.split.dedupe: group to keep "
        f"each cluster on one side (or data.near_duplicate_threshold: null to skip this check)",
        count=len(later), rows=[positions[r] for r in later[:100]], examples=examples)


def leaked(found: NearDuplicates, train: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per validation row (`valid`, a bool mask over `found`'s rows): whether a training row
    (`train`, a bool mask) is an exact or near copy of it."""
    match, _ = found.best_match(valid, train)
    return match >= 0


def check_near_leakage(found: NearDuplicates, texts: Sequence[TextInput], train: np.ndarray,
                       valid: np.ndarray, valid_source: str, positions: Sequence[int], *,
                       separate_valid: bool, dedupe: bool) -> Finding | None:
    """Validation rows with a near (not exact: that is `leakage`) copy in train. `train`,
    `valid`: bool masks over `found`'s rows, whose texts are `texts` and file row numbers
    `positions` (a training row's and a validation row's in their own files)."""
    matches, scores = found.best_match(valid, train)
    match, similarity = matches.tolist(), scores.tolist()
    valid_rows = np.flatnonzero(valid).tolist()
    train_texts = {normalise(texts[row]) for row in np.flatnonzero(train).tolist()}
    near = [k for k in np.flatnonzero(matches >= 0).tolist()
            if normalise(texts[valid_rows[k]]) not in train_texts]
    if not near:
        return None
    examples = [f"validation row {positions[valid_rows[k]]} ~ train row "
                f"{positions[match[k]]} ({similarity[k]:.2f}): "
                f"{_quote(texts[valid_rows[k]])} ~ {_quote(texts[match[k]])}"
                for k in near[:MAX_LISTED]]
    if not separate_valid:
        fix = "set data.split.dedupe: group to keep each cluster of near copies on one side"
    else:
        fix = ("data.split.dedupe: group cannot move rows between two given files; "
               if dedupe else "")
        fix += (f"remove these rows from {valid_source} (or their copies from train), or drop "
                f"data.valid and split with data.split.dedupe: group")
    return Finding(
        "warning", "near_duplicate_leakage",
        f"{valid_source}: {len(near)} of {len(valid_rows)} validation rows "
        f"({len(near) / len(valid_rows):.1%}) have a near copy in train ({_measure(found)}; "
        f"exact copies are counted under leakage), e.g. {examples[0]}; "
        f"validation scores are optimistic: {fix}",
        count=len(near), rows=[positions[valid_rows[k]] for k in near[:100]],
        examples=examples)


def dedupe_report(before: int, before_rows: int, after: int, after_rows: int,
                  clusters: int, source: str) -> Finding:
    """What `data.split.dedupe: group` changed: validation rows with an exact or near copy in
    train under the plain split (same seed) and under the deduplicated one."""
    return Finding(
        "info", "dedupe",
        f"{source}: data.split.dedupe: group kept each of {clusters} clusters of near copies "
        f"on one side; validation rows with an exact or near copy in train: {before} of "
        f"{before_rows} with the plain split, {after} of {after_rows} now",
        count=before - after,
        examples=[f"before: {before} of {before_rows}", f"after: {after} of {after_rows}"])
