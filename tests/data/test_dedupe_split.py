"""`data.split.dedupe: group`, the near-duplicate findings, and their recipe keys."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fitclass
from fitclass.data.prepare import prepare_data
from fitclass.data.splits import dedupe_split, split_rows
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.errors import DataError, RecipeError
from fitclass.recipe import DataConfig, SplitConfig, load_recipe
from fitclass.target_kinds import kind_for

WORDS = [f"word{k}" for k in range(200)]


def planted(seed: int, n: int = 400) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Random texts, labels, and the planted cluster of every row: some texts have 1-4 near
    copies (punctuation, case, spacing, two words swapped)."""
    rng = random.Random(seed)
    texts, cluster = [], []
    while len(texts) < n:
        words = rng.sample(WORDS, 12)
        base = " ".join(words)
        copies = [base]
        for _ in range(rng.choice([0, 0, 1, 2, 4])):
            edit = list(words)
            k = rng.randrange(len(edit) - 1)
            edit[k], edit[k + 1] = edit[k + 1], edit[k]
            copies.append(rng.choice([base.upper(), base + " !!", base.replace(" ", "  "),
                                      " ".join(edit)]))
        texts += copies
        cluster += [len(set(cluster))] * len(copies)
    order = np.random.default_rng(seed).permutation(len(texts))
    labels = np.array([rng.randrange(3) for _ in texts])
    return [texts[i] for i in order], labels[order], np.array(cluster)[order]


@pytest.mark.parametrize("seed", range(5))
def test_clusters_never_straddle_the_split(seed: int) -> None:
    texts, labels, truth = planted(seed)
    found = find_near_duplicates(texts, 0.8)
    clusters = found.clusters()
    for cluster in np.unique(clusters):  # nothing joins rows of different planted clusters
        assert len(np.unique(truth[clusters == cluster])) == 1
    # and nearly every planted copy is found (MinHash may miss one close to the threshold)
    assert len(np.unique(clusters)) <= len(np.unique(truth)) + 3
    config = SplitConfig(seed=seed, dedupe="group")
    train, valid = dedupe_split(labels, kind_for(False), None, clusters, config)
    assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == len(texts)
    assert set(clusters[train].tolist()).isdisjoint(clusters[valid].tolist())
    assert 0.07 < len(valid) / len(texts) < 0.13
    plain_train, plain_valid = split_rows(labels, kind_for(False), None, config)
    assert not set(clusters[plain_train].tolist()).isdisjoint(clusters[plain_valid].tolist())


@pytest.mark.parametrize("seed", range(3))
def test_group_key_and_clusters_are_combined(seed: int) -> None:
    texts, labels, _ = planted(seed)
    groups = np.array([f"user{random.Random(seed + i).randrange(150)}" for i in
                       range(len(texts))])
    clusters = find_near_duplicates(texts, 0.8).clusters()
    config = SplitConfig(method="group", seed=seed, dedupe="group", valid_size=0.2)
    train, valid = dedupe_split(labels, kind_for(False), groups, clusters, config)
    assert set(clusters[train].tolist()).isdisjoint(clusters[valid].tolist())
    assert set(groups[train].tolist()).isdisjoint(groups[valid].tolist())
    with pytest.raises(DataError, match=r"data\.group names no column"):
        dedupe_split(labels, kind_for(False), None, clusters, config)


def test_too_few_groups_names_the_dedupe_key() -> None:
    clusters = np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(DataError, match=r"data\.split\.dedupe: group with valid_size=0\.1"):
        dedupe_split(np.array([0, 1, 0, 1, 0, 1]), kind_for(False), None, clusters,
                     SplitConfig(dedupe="group"))


@pytest.mark.parametrize(("data", "message"), [
    ({"split": {"dedupe": "group"}, "near_duplicate_threshold": None},
     "data.split.dedupe: group needs the near-duplicate check"),
    ({"near_duplicate_threshold": 0.3}, "data.near_duplicate_threshold"),
    ({"near_duplicate_threshold": 1.5}, "data.near_duplicate_threshold"),
    ({"split": {"dedupe": "yes"}}, "data.split.dedupe"),
])
def test_recipe_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe({"data": {"train": "train.csv", **data}})


def test_images_take_dedupe_without_the_text_threshold() -> None:
    data = DataConfig.model_validate({"train": "images", "images": True, "split": {
        "dedupe": "group"}, "near_duplicate_threshold": None})
    assert data.split.dedupe == "group" and data.images is not None


def test_defaults() -> None:
    config = load_recipe({"data": {"train": "train.csv"}}).data
    assert config.near_duplicate_threshold == 0.8 and config.split.dedupe == "none"


def _rows(seed: int = 3) -> list[dict[str, str]]:
    texts, labels, _ = planted(seed, 300)
    return [{"id": f"r{i}", "text": t, "label": "ab"[int(y) % 2]}
            for i, (t, y) in enumerate(zip(texts, labels, strict=True))]


def _findings(report: Any) -> dict[str, Any]:
    return {f.check: f for f in report.findings}


def test_prepare_reports_near_copies_and_leakage(tmp_path: Path, table_writer) -> None:
    train = tmp_path / "train.csv"
    table_writer(_rows(), train)
    found = _findings(prepare_data(DataConfig(train=train, id="id")).report)
    inside = found["near_duplicates"]
    assert inside.level == "warning" and inside.count > 0
    assert "nearly repeat an earlier text" in inside.message
    assert "data.split.dedupe: group" in inside.message
    assert " ~ " in inside.examples[0] and inside.examples[0].startswith("row ")
    leak = found["near_duplicate_leakage"]
    assert leak.count > 0 and "(validation split)" in leak.message
    assert "data.split.dedupe: group" in leak.message
    assert "dedupe" not in found


def test_prepare_with_dedupe_removes_leakage(tmp_path: Path, table_writer) -> None:
    train = tmp_path / "train.csv"
    table_writer(_rows(), train)
    prepared = prepare_data(DataConfig(train=train, id="id", split={"dedupe": "group"}))
    found = _findings(prepared.report)
    assert "near_duplicate_leakage" not in found and "leakage" not in found
    dedupe = found["dedupe"]
    before, after = (int(e.split(": ")[1].split(" ")[0]) for e in dedupe.examples)
    assert before > 0 and after == 0 and dedupe.count == before
    assert f"{before} of" in dedupe.message and "0 of" in dedupe.message


def test_separate_valid_file_reports_leakage_it_cannot_fix(tmp_path: Path,
                                                           table_writer) -> None:
    rows = _rows()
    valid = [dict(row) for row in rows[:20]]
    valid[0]["text"] = valid[0]["text"].upper()  # exact once normalised: leakage
    valid[1]["text"] = " ".join(reversed(rows[1]["text"].split()[:2])) + " " + " ".join(
        rows[1]["text"].split()[2:])  # two words swapped: a near copy
    paths = [table_writer(rows[20:] + rows[:2], tmp_path / "train.csv"),
             table_writer(valid, tmp_path / "valid.csv")]
    config = DataConfig(train=paths[0], valid=paths[1], id="id", split={"dedupe": "group"})
    found = _findings(prepare_data(config).report)
    leak = found["near_duplicate_leakage"]
    assert 1 in leak.rows and 0 not in leak.rows  # row 0 is an exact copy: leakage
    assert 0 in found["leakage"].rows
    assert "cannot move rows between two given files" in leak.message
    assert "valid.csv" in leak.message and "dedupe" not in found


def test_check_off_with_null_threshold(tmp_path: Path, table_writer) -> None:
    train = table_writer(_rows(), tmp_path / "train.csv")
    found = _findings(prepare_data(DataConfig(train=train, near_duplicate_threshold=None))
                      .report)
    assert "near_duplicates" not in found and "near_duplicate_leakage" not in found


def test_tfidf_run_records_leakage_removed(tmp_path: Path, table_writer, recipe_for) -> None:
    train = table_writer(_rows(), tmp_path / "train.csv")
    recipe = recipe_for("tfidf", train, data={"split": {"valid_size": 0.25, "seed": 0,
                                                        "dedupe": "group"}})
    run = fitclass.train(recipe, out=tmp_path / "run")
    report = json.loads((run.path / "data_checks.json").read_text())
    dedupe = next(f for f in report["info"] if f["check"] == "dedupe")
    assert dedupe["count"] > 0 and dedupe["examples"][1].startswith("after: 0 of")
    assert {f["check"] for f in report["warnings"]} >= {"near_duplicates"}
    assert "near_duplicate_leakage" not in {f["check"] for f in report["warnings"]}
    html = (run.path / "report.html").read_text()  # the report's data section shows both
    assert "data.split.dedupe: group kept each of" in html and "nearly repeat" in html
