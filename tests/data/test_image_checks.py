"""Image checks: bad, truncated, greyscale, RGBA, palette, rotated, extreme and duplicate
files made here, and what the reader and the checks say about them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fitclass.data import checks
from fitclass.data.image_cache import ImageStore
from fitclass.data.image_checks import check_image_duplicates
from fitclass.data.image_io import dhash
from fitclass.data.image_tables import read_image_table
from fitclass.data.near_duplicates import near_pairs
from fitclass.data.prepare import prepare_data, read_inputs
from fitclass.errors import DataError
from fitclass.recipe import DataConfig


def _config(train: Path, **extra: object) -> DataConfig:
    return DataConfig.model_validate({"train": str(train), "images": True, **extra})


def _findings(report: checks.CheckReport) -> dict[str, checks.Finding]:
    return {f.check: f for f in report.findings}


@pytest.fixture()
def messy_folder(tmp_path: Path, image_folder_writer: Callable[..., Path]) -> Path:
    """Twelve clean images per class plus one of every kind of trouble."""
    root = image_folder_writer(tmp_path / "train", per_class=12)
    across = root / "across"
    good = Image.open(across / "000.png")
    good.convert("L").save(across / "grey.png")
    rgba = good.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(across / "rgba.png")
    good.convert("P").save(across / "palette.png")
    rotated = good.resize((20, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated.save(across / "rotated.jpg", exif=exif)
    Image.new("RGB", (200, 10), (9, 9, 9)).save(across / "strip.png")
    shutil.copy(root / "down" / "001.png", root / "down" / "copy.png")
    shutil.copy(root / "down" / "002.png", root / "checks" / "conflict.png")
    data = (root / "down" / "003.png").read_bytes()
    (root / "down" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "checks" / "not_an_image.png").write_text("hello", encoding="utf-8")
    return root


def test_bad_files_fail_with_path_and_reason(messy_folder: Path) -> None:
    config = _config(messy_folder)
    with pytest.raises(DataError) as raised:
        read_image_table(messy_folder, config, checks.CheckReport(), need_labels=True)
    message = str(raised.value)
    assert "2 images cannot be used" in message
    assert "truncated.png" in message and "not_an_image.png" in message
    assert "data.on_bad_image: skip" in message


def test_skip_drops_bad_files_and_counts_the_rest(messy_folder: Path) -> None:
    config = _config(messy_folder, on_bad_image="skip")
    report = checks.CheckReport()
    table = read_image_table(messy_folder, config, report, need_labels=True)
    found = _findings(report)
    assert found["bad_image"].level == "warning" and found["bad_image"].count == 2
    assert not any("truncated" in p or "not_an_image" in p for p in map(str, table.texts))
    assert len(table) == 36 + 7  # grey, rgba, palette, rotated, strip, copy, conflict
    converted = found["mode_converted"]
    assert converted.count == 3 and "by mode: {'L': 1, 'P': 1, 'RGBA': 1}" in converted.message
    assert sorted(Path(e).name for e in converted.examples) == [
        "grey.png (L)", "palette.png (P)", "rgba.png (RGBA)"]
    assert all(name in converted.message for name in ("grey.png", "palette.png", "rgba.png"))
    assert "rotated.jpg" in found["exif_orientation"].message
    assert found["exif_orientation"].count == 1
    assert found["extreme_size"].count == 1 and "strip.png (200x10" in found["extreme_size"].message
    assert set(table.labels or []) == {"across", "checks", "down"}
    assert config.images is not None
    duplicates = {f.check: f for f in check_image_duplicates(table, config.images)}
    assert duplicates["duplicate_images"].count == 2
    assert duplicates["conflicting_duplicate_images"].count == 1
    assert "conflict.png" in duplicates["conflicting_duplicate_images"].message


def test_exif_rotation_and_rgb_conversion_are_applied(messy_folder: Path, tmp_path: Path) -> None:
    store = ImageStore(8, tmp_path / "cache")
    info, = store.scan([str(messy_folder / "across" / "rotated.jpg")])
    assert (info.width, info.height, info.rotated) == (10, 20, True)
    files = [str(messy_folder / "across" / name) for name in ("rgba.png", "grey.png")]
    rgba, grey = store.rows(files).take(slice(None))
    assert rgba.shape == (8, 8, 3) and rgba.dtype == np.uint8
    assert np.array_equal(grey[..., 0], grey[..., 1])  # grey replicated into three channels


def test_near_duplicates_by_dhash(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), mode="RGB")
    other = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), mode="RGB")
    brighter = Image.fromarray(np.clip(np.asarray(base, dtype=int) + 6, 0, 255)
                               .astype(np.uint8), mode="RGB")
    hashes = [dhash(base), dhash(brighter), dhash(other)]
    pairs = near_pairs(hashes, None, 3)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert [(i, j) for i, j, _ in near_pairs(hashes[2:], hashes[:1], 3)] == []


def test_leakage_across_train_and_valid(tmp_path: Path,
                                        image_folder_writer: Callable[..., Path]) -> None:
    root = tmp_path / "set"
    image_folder_writer(root / "train", per_class=6)
    image_folder_writer(root / "valid", per_class=3, seed=1)
    shutil.copy(root / "train" / "down" / "000.png", root / "valid" / "down" / "leak.png")
    prepared = prepare_data(_config(root))  # the root stands for train/ and valid/
    assert len(prepared.train) == 18 and len(prepared.valid) == 10
    leak = {f.check: f for f in prepared.report.findings}["image_leakage"]
    assert leak.count >= 1 and "leak.png" in leak.message
    assert prepared.class_names == ["across", "checks", "down"]


def test_table_layout_relative_paths_and_multilabel(
        tmp_path: Path, image_folder_writer: Callable[..., Path]) -> None:
    image_folder_writer(tmp_path / "img", per_class=4)
    files = sorted((tmp_path / "img").rglob("*.png"))
    frame = pd.DataFrame({"file": [f.relative_to(tmp_path).as_posix() for f in files],
                          "tags": [f.parent.name + ("|big" if i % 2 else "")
                                   for i, f in enumerate(files)]})
    frame.to_csv(tmp_path / "images.csv", index=False)
    config = _config(tmp_path / "images.csv", images={"column": "file"}, label="tags",
                     label_sep="|")
    table = read_image_table(tmp_path / "images.csv", config, checks.CheckReport(),
                             need_labels=True)
    assert table.multilabel and len(table) == 12
    assert table.targets(["across", "big", "checks", "down"]).sum() == 12 + 6
    assert Path(str(table.texts[0])).is_absolute() and table.id_column == "file"
    missing = _config(tmp_path / "images.csv", images={"column": "path"})
    with pytest.raises(DataError, match=r"column 'path' not found.*set data.images.column"):
        read_image_table(tmp_path / "images.csv", missing, checks.CheckReport(),
                         need_labels=True)


def test_prediction_inputs_flat_folder_is_unlabelled(
        tmp_path: Path, image_folder_writer: Callable[..., Path]) -> None:
    image_folder_writer(tmp_path / "x", per_class=2)
    flat = tmp_path / "flat"
    flat.mkdir()
    for n, f in enumerate(sorted((tmp_path / "x").rglob("*.png"))):
        shutil.copy(f, flat / f"{n}.png")
    table = read_inputs(flat, _config(tmp_path / "x"))
    assert table.labels is None and len(table) == 6 and table.ids[0] == "0.png"
    with pytest.raises(DataError, match="no class folders"):
        prepare_data(_config(flat))


def test_a_folder_without_data_images_says_how_to_read_it(
        tmp_path: Path, image_folder_writer: Callable[..., Path]) -> None:
    image_folder_writer(tmp_path / "train", per_class=2)
    with pytest.raises(DataError, match=r"is a folder.*set data\.images: true"):
        prepare_data(DataConfig.model_validate({"train": str(tmp_path / "train")}))


def test_prediction_inputs_warn_about_skipped_files(messy_folder: Path) -> None:
    with pytest.warns(UserWarning, match="2 unreadable images dropped"):
        table = read_inputs(messy_folder, _config(messy_folder, on_bad_image="skip"))
    assert len(table) == 43
