"""Exact and near duplicates inside the table, texts repeated with different labels, and
leakage: rows of a validation or test file with an exact or near copy in the table.

The measuring is the data checks' own (`checks.check_duplicates`, the MinHash near-duplicate
search, `fitclass audit --against`'s `copies_in_train`); this module turns their counts into
findings with remedies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fitclass.data import checks
from fitclass.data.near_duplicate_checks import check_near_duplicates
from fitclass.data.table import Label, TextInput, TextTable
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.diagnosis.findings import Finding

#: Share of rows that repeat another (exactly or nearly) from which a split should keep
#: copies together.
DEDUPE_SHARE = 0.01
DEDUPE_WHY = ("SST-2 with near copies planted: a plain 80/20 split over-stated accuracy on "
              "unseen data by 1.9 points, always upward; with data.split.dedupe: group no "
              "validation row had a copy in train and the estimate fell on both sides of "
              "dev (docs/benchmarks.md, issue 17)")


def table_of(source: str, texts: list[TextInput], labels: list[Label] | None) -> TextTable:
    """Rows as the checks' `TextTable` (ids and positions are the row numbers)."""
    return TextTable(source=source, frame=pd.DataFrame(index=range(len(texts))), texts=texts,
                     labels=labels, ids=[str(i) for i in range(len(texts))])


def check_duplicates(texts: list[TextInput], labels: list[Label], source: str,
                     threshold: float | None, own_split: bool) -> list[Finding]:
    """Copies inside the table (a finding when any), and texts with conflicting labels.
    `own_split`: fitclass will carve validation from this table (no `--valid`), so
    `data.split.dedupe: group` applies."""
    exact = checks.check_duplicates(texts, labels, source)
    repeats = next((f.count for f in exact if f.check == "duplicates"), 0)
    near = 0
    if threshold is not None:
        inside = check_near_duplicates(find_near_duplicates(texts, threshold), texts, source,
                                       list(range(len(texts))))
        near = 0 if inside is None else inside.count
    findings = []
    share = (repeats + near) / max(1, len(texts))
    if repeats or near:
        keys = {"data.split.dedupe": "group"} if own_split and share >= DEDUPE_SHARE else {}
        findings.append(Finding(
            "duplicates", "warning" if keys else "info",
            f"duplicates: {repeats} row{'s' if repeats != 1 else ''} repeat"
            f"{'' if repeats != 1 else 's'} an earlier text exactly and {near} nearly "
            f"(character-shingle Jaccard >= {threshold}), {share:.1%} of rows",
            {"exact_repeats": repeats, "near_repeats": near, "share": round(share, 4),
             "threshold": threshold},
            ("keep each cluster of copies on one side of the validation split" if keys else
             "few enough to leave; with a separate --valid file, the leakage check below "
             "is the one that matters"),
            DEDUPE_WHY, keys))
    conflicting = next((f for f in exact if f.check == "conflicting_duplicates"), None)
    if conflicting is not None:
        findings.append(Finding(
            "conflicting_duplicates", "warning",
            f"{conflicting.count} text{'s' if conflicting.count > 1 else ''} occur"
            f"{'' if conflicting.count > 1 else 's'} with different labels",
            {"texts": conflicting.count, "examples": conflicting.examples[:5]},
            "at most one label of each can be right: review them (`fitclass audit` lists "
            "them with a suggested label)",
            "the audit adds such rows to confident learning's suspects (8-26 rows more on "
            "NSMC, where identical short reviews carry both labels: docs/benchmarks.md, "
            "issue 4)"))
    return findings


def check_leakage(train: TextTable, other: TextTable, threshold: float | None,
                  role: str) -> Finding | None:
    """Rows of `other` (a `--valid` or `--test` file) with an exact or near copy in train."""
    from fitclass.noise.near_copies import copies_in_train

    if threshold is None:
        exact_keys = {checks.normalise(t) for t in train.texts}
        hits = np.array([checks.normalise(t) in exact_keys for t in other.texts])
        count, exact = int(hits.sum()), int(hits.sum())
    else:
        found = copies_in_train(train, other, threshold, other.source)
        count, exact = len(found), int(found["exact"].sum())
    if not count:
        return None
    share = count / max(1, len(other))
    name = Path(other.source).name
    return Finding(
        f"leakage_{role}", "warning",
        f"leakage: {count} of {len(other)} {role} rows ({share:.1%}) in {name} copy a row "
        f"of the table ({exact} exact, {count - exact} near)",
        {"file": other.source, "rows": len(other), "with_copy": count, "exact": exact,
         "share": round(share, 4)},
        f"remove those rows from {name} (or their copies from the table): `fitclass audit "
        f"RECIPE --against {name}` lists each with the training row it copies",
        f"{role} scores on copied rows are optimistic: " + DEDUPE_WHY,
        regime="leaky")
