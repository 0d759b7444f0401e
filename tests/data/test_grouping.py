"""Duplicate detection in linear time: grouping rows by key gives what a dict of lists did,
and `normalise` keys are the ones the regular expression made."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict

import numpy as np
import pytest

from fitclass.data.checks import MAX_LISTED, Finding, check_duplicates, normalise
from fitclass.data.grouping import first_seen_codes, repeated_groups
from fitclass.data.table import Label, TextInput


def reference_duplicates(texts: list[TextInput], labels: list[Label],
                         path: str) -> list[Finding]:
    """`check_duplicates` as it was: a list of rows per normalised text, walked in Python."""
    seen: dict[str, list[int]] = {}
    for row, text in enumerate(texts):
        joined = text if isinstance(text, str) else " [SEP] ".join(text)
        seen.setdefault(re.sub(r"\s+", " ", joined).strip().lower(), []).append(row)
    repeated = [rows for rows in seen.values() if len(rows) > 1]
    findings: list[Finding] = []
    if repeated:
        extra = sum(len(rows) - 1 for rows in repeated)
        findings.append(Finding(
            "warning", "duplicates",
            f"{path}: {extra} rows repeat an earlier text (case and whitespace ignored) in "
            f"{len(repeated)} groups; duplicates weigh those texts more",
            count=extra, rows=[r for rows in repeated for r in rows[1:]][:100],
            examples=[str(texts[rows[0]])[:120] for rows in repeated[:MAX_LISTED]]))
    conflicting = [rows for rows in repeated if len({labels[r] for r in rows}) > 1]
    if conflicting:
        findings.append(Finding(
            "warning", "conflicting_duplicates",
            f"{path}: {len(conflicting)} texts occur with different labels; at most one label "
            f"can be right: review them (fitclass audit lists them too)",
            count=len(conflicting), rows=[r for rows in conflicting for r in rows][:100],
            examples=[f"{str(texts[rows[0]])[:100]!r}: {sorted({str(labels[r]) for r in rows})}"
                      for rows in conflicting[:MAX_LISTED]]))
    return findings


def random_rows(seed: int, count: int, pairs: bool = False,
                multilabel: bool = False) -> tuple[list[TextInput], list[Label]]:
    rng = np.random.default_rng(seed)
    words = ["Refund", "refund ", "late\tparcel", "LATE parcel", "app\u00a0crash", "app crash",
             "x", "\u2003x"]
    texts: list[TextInput] = []
    labels: list[Label] = []
    for _ in range(count):
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 3))))
        texts.append((text, str(rng.choice(words))) if pairs else text)
        names = ["a", "b", "c"][:int(rng.integers(1, 4))]
        labels.append(tuple(names[:int(rng.integers(0, len(names) + 1))]) if multilabel
                      else str(rng.choice(["a", "a", "a", "b"])))
    return texts, labels


@pytest.mark.parametrize(("seed", "count", "pairs", "multilabel"),
                         [(0, 50, False, False), (1, 400, False, False), (2, 300, True, False),
                          (3, 300, False, True), (4, 5, False, False), (5, 1, False, False)])
def test_duplicates_as_the_dict_of_lists_found_them(seed: int, count: int, pairs: bool,
                                                     multilabel: bool) -> None:
    texts, labels = random_rows(seed, count, pairs, multilabel)
    got = [asdict(f) for f in check_duplicates(texts, labels, "train.csv")]
    assert got == [asdict(f) for f in reference_duplicates(texts, labels, "train.csv")]


def test_no_duplicates_no_findings() -> None:
    assert check_duplicates(["a", "b", "c"], ["x", "y", "x"], "t.csv") == []
    assert check_duplicates([], [], "t.csv") == []


def test_split_whitespace_is_the_regular_expressions_whitespace() -> None:
    """`normalise` uses str.split(): exact only because `\\s` and str.isspace() agree."""
    characters = [chr(code) for code in range(sys.maxunicode + 1)
                  if not 0xD800 <= code <= 0xDFFF]
    space = re.compile(r"\s")
    assert [c for c in characters if space.fullmatch(c)] == \
        [c for c in characters if c.isspace()]
    for text in ["  A\u00a0b\t\tC \u2028", "", " ", "x", "\u1680y\u3000"]:
        assert normalise(text) == re.sub(r"\s+", " ", text).strip().lower()


def test_groups_keep_first_occurrence_order() -> None:
    codes = first_seen_codes(["b", "a", "b", "c", "a", "b"])
    assert codes.tolist() == [0, 1, 0, 2, 1, 0]
    groups = repeated_groups(codes)
    assert [groups.group(g) for g in range(len(groups))] == [[0, 2, 5], [1, 4]]
    assert groups.firsts().tolist() == [0, 1] and groups.repeats().tolist() == [2, 5, 4]
    labels = first_seen_codes(["x", "x", "x", "y", "y", "x"])
    mixed = groups.mixed(labels)
    assert mixed.tolist() == [False, True]
    assert groups.select(mixed).rows.tolist() == [1, 4]
    none = repeated_groups(first_seen_codes(["a", "b"]))
    assert len(none) == 0 and none.repeats().tolist() == [] and len(none.select(
        none.mixed(np.zeros(2, dtype=np.int64)))) == 0
