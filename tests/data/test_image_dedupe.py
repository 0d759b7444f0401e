"""`data.split.dedupe: group` for images: identical files and dHash near copies form
clusters that stay on one side of the validation split and in one cross-validation fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fitclass.data import checks
from fitclass.data.dedupe_groups import image_clusters
from fitclass.data.image_tables import read_image_table
from fitclass.data.prepare import labelled_folds, prepare_data
from fitclass.recipe import DataConfig

PAIRS = 8


@pytest.fixture()
def folder_with_copies(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Ten random-noise images per class (dHashes about 32 bits apart), and PAIRS of them
    with a brightened copy (other bytes, the same dHash) beside them: the planted
    near-duplicate pairs, as absolute paths."""
    rng = np.random.default_rng(0)
    root, pairs = tmp_path / "train", []
    for label in ("cat", "dog", "owl"):
        (root / label).mkdir(parents=True)
        for n in range(10):
            pixels = rng.integers(20, 230, size=(32, 32, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{n:03d}.png")
    for k, original in enumerate(sorted(root.rglob("*.png"))[::3][:PAIRS]):
        pixels = np.asarray(Image.open(original)).astype(int)
        copy = original.with_name(f"{original.stem}_copy{k}.png")
        Image.fromarray(np.clip(pixels + 3, 0, 255).astype(np.uint8)).save(copy)
        pairs.append((str(original.resolve()), str(copy.resolve())))
    return root, pairs


def _config(root: Path, **split: Any) -> DataConfig:
    return DataConfig.model_validate({"train": str(root), "images": True,
                                      "split": {"valid_size": 0.3, "seed": 0, **split}})


def test_near_copies_share_a_cluster_and_unrelated_images_do_not(
        folder_with_copies: tuple[Path, list[tuple[str, str]]]) -> None:
    root, pairs = folder_with_copies
    table = read_image_table(root, _config(root), checks.CheckReport(), need_labels=True)
    clusters = image_clusters(table, 3)
    cluster_of = dict(zip(map(str, table.texts), clusters.tolist(), strict=True))
    for original, copy in pairs:
        assert cluster_of[original] == cluster_of[copy]
    assert len(np.unique(clusters)) == len(table) - PAIRS  # nothing else joined
    exact_only = image_clusters(table, 0)  # bits 0: identical files only, none here
    assert len(np.unique(exact_only)) == len(table)


def test_dedupe_group_keeps_each_planted_pair_on_one_side(
        folder_with_copies: tuple[Path, list[tuple[str, str]]]) -> None:
    root, pairs = folder_with_copies
    plain = prepare_data(_config(root))
    prepared = prepare_data(_config(root, dedupe="group"))
    train, valid = set(map(str, prepared.train.texts)), set(map(str, prepared.valid.texts))
    for original, copy in pairs:
        assert (original in train) == (copy in train) and (original in valid) == (copy in valid)
    found = {f.check: f for f in prepared.report.findings}
    assert "image_leakage" not in found
    leaked_before = {f.check: f for f in plain.report.findings}["image_leakage"].count
    dedupe = found["dedupe"]
    assert leaked_before > 0 and dedupe.count == leaked_before
    assert dedupe.examples[1].startswith("after: 0 of")
    assert f"kept each of {PAIRS} clusters" in dedupe.message
    assert "dedupe" in prepared.report.to_dict()["checked"]


def test_cross_validation_folds_never_split_a_pair(
        folder_with_copies: tuple[Path, list[tuple[str, str]]]) -> None:
    root, pairs = folder_with_copies
    rows, _, folds = labelled_folds(_config(root, dedupe="group", folds=3, fold=0))
    fold_of = dict(zip(map(str, rows.texts), folds.tolist(), strict=True))
    for original, copy in pairs:
        assert fold_of[original] == fold_of[copy]
    assert sorted(set(folds.tolist())) == [0, 1, 2]
