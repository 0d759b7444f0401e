"""Cross-validation folds (and the audit's fold groups) under `data.split.dedupe: group`:
no near-duplicate cluster is split between folds, joined with `data.group` under
method: group."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitclass
from fitclass.data.dedupe_groups import dedupe_groups
from fitclass.data.folds import fold_method
from fitclass.data.prepare import labelled_folds, read_labelled
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.errors import DataError
from fitclass.recipe import DataConfig
from fitclass.target_kinds import kind_for

WORDS = [f"term{k}" for k in range(300)]

pytestmark = pytest.mark.usefixtures("no_reports")


def _rows(n: int = 240, seed: int = 0) -> list[dict[str, str]]:
    """Random 10-word texts, a third of them with 1-3 near copies (case, punctuation,
    spacing), labels at random, users at random."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        base = " ".join(rng.sample(WORDS, 10))
        copies = [base] + [rng.choice([base.upper(), base + " !!", base.replace(" ", "  ")])
                           for _ in range(rng.choice([0, 0, 1, 3]))]
        rows += [{"id": f"r{len(rows) + i}", "text": text, "label": rng.choice("xyz"),
                  "user": f"u{rng.randrange(400)}"} for i, text in enumerate(copies)]
    rng.shuffle(rows)
    return rows


def _config(path: Path, **split: object) -> DataConfig:
    return DataConfig.model_validate({"train": str(path), "id": "id", "group": "user",
                                      "split": {"folds": 5, "fold": 0, **split}})


def test_folds_never_split_a_near_duplicate_cluster(tmp_path: Path, table_writer) -> None:
    path = table_writer(_rows(), tmp_path / "train.csv")
    rows, _, folds = labelled_folds(_config(path, dedupe="group"))
    clusters = find_near_duplicates(rows.texts, 0.8).clusters()
    assert len(np.unique(clusters)) < len(rows)  # copies were planted
    for cluster in np.unique(clusters):
        assert len(np.unique(folds[clusters == cluster])) == 1
    _, _, plain = labelled_folds(_config(path))
    assert any(len(np.unique(plain[clusters == c])) > 1 for c in np.unique(clusters))
    assert fold_method(kind_for(False), _config(path, dedupe="group").split).startswith(
        "group")


def test_clusters_join_data_group_under_method_group(tmp_path: Path, table_writer) -> None:
    path = table_writer(_rows(seed=1), tmp_path / "train.csv")
    config = _config(path, dedupe="group", method="group")
    rows, _, folds = labelled_folds(config)
    clusters = find_near_duplicates(rows.texts, 0.8).clusters()
    assert rows.groups is not None
    for key in (clusters, rows.groups):
        for value in np.unique(key):
            assert len(np.unique(folds[key == value])) == 1


def test_audit_fold_groups(tmp_path: Path, table_writer) -> None:
    """What the audit's folds group by: None, data.group, clusters, or both joined."""
    path = table_writer(_rows(seed=2), tmp_path / "train.csv")
    config = _config(path)
    table = read_labelled(path, config)
    assert dedupe_groups(table, config) is None
    by_user = dedupe_groups(table, _config(path, method="group"))
    assert by_user is not None and np.array_equal(by_user, table.groups)
    clusters = dedupe_groups(table, _config(path, dedupe="group"))
    assert clusters is not None
    assert np.array_equal(clusters, find_near_duplicates(table.texts, 0.8).clusters())
    both = dedupe_groups(table, _config(path, dedupe="group", method="group"))
    assert both is not None and len(np.unique(both)) < len(np.unique(clusters))


def test_too_few_clusters_for_k_names_the_clusters(tmp_path: Path, table_writer) -> None:
    rows = [{"id": f"r{i}", "text": f"the same words again {'!' * i}", "label": "xy"[i % 2],
             "user": "u"} for i in range(12)]
    path = table_writer(rows, tmp_path / "train.csv")
    with pytest.raises(DataError, match=r"near-duplicate clusters \(data.split.dedupe: "
                                        r"group\) has only 1 distinct groups"):
        labelled_folds(_config(path, dedupe="group"))


def test_cross_validation_run_with_dedupe_group(tmp_path: Path, table_writer,
                                                recipe_for) -> None:
    """The fold runs find their own folds again (near-duplicate clusters included) and the
    out-of-fold table keeps each cluster in one fold."""
    path = table_writer(_rows(120, seed=3), tmp_path / "train.csv")
    recipe = recipe_for("tfidf", path, data={"split": {"dedupe": "group", "seed": 0}})
    run = fitclass.train(recipe, out=tmp_path / "cv", folds=3)
    assert run.metrics["crossval"]["method"] == "group (near-duplicate clusters)"
    oof = pd.read_csv(run.path / "oof.csv")
    texts = pd.read_csv(path).set_index("id").loc[oof["id"], "text"].tolist()
    clusters = find_near_duplicates(texts, 0.8).clusters()
    for cluster in np.unique(clusters):
        assert oof["fold"].to_numpy()[clusters == cluster].min() == \
            oof["fold"].to_numpy()[clusters == cluster].max()
