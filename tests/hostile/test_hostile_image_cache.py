"""A damaged decoded-image cache (`data/image_cache.py`): a truncated pack, an index that is
half-written or does not match its pack, a deleted pack. fitclass notices (in a new process
and in the one that already read the cache), decodes the damaged entries again, and never
serves other pixels; a pack that breaks under rows already made is an error naming it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fitclass
from conftest import make_pattern_image
from fitclass.data import image_cache
from fitclass.data.image_cache import ImageStore, stored_side
from fitclass.data.image_io import decode_count
from fitclass.errors import DataError

SIDE = 24

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture()
def files(tmp_path: Path) -> list[str]:
    paths = []
    for n, label in enumerate(["across", "down", "checks", "across"]):
        path = tmp_path / "images" / f"{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_pattern_image(label, seed=n, size=32).save(path)
        paths.append(str(path))
    return paths


def filled(root: Path, files: list[str]) -> tuple[ImageStore, np.ndarray, Path, Path]:
    """A store holding `files` in one pack: the store, its pixels, the pack and its index."""
    store = ImageStore(SIDE, root)
    pixels = store.rows(files).take(slice(None))
    (pack,), (index,) = list(store.folder.glob("*.npy")), list(store.folder.glob("*.json"))
    return store, pixels, pack, index


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def served(store: ImageStore, files: list[str]) -> tuple[np.ndarray, int]:
    """The store's pixels of `files` and how many images it decoded to serve them."""
    start = decode_count()
    pixels = store.rows(files).take(slice(None))
    return pixels, decode_count() - start


@pytest.mark.parametrize("reader", ["new process", "same process"])
@pytest.mark.parametrize("damage", ["truncated pack", "deleted pack"])
def test_a_damaged_pack_is_decoded_again(tmp_path: Path, files: list[str], reader: str,
                                         damage: str) -> None:
    store, pixels, pack, _ = filled(tmp_path / "cache", files)
    if damage == "truncated pack":
        truncate(pack)
    else:
        pack.unlink()
    if reader == "new process":
        store = ImageStore(SIDE, tmp_path / "cache")
    again, decoded = served(store, files)
    assert decoded == len(files)
    assert np.array_equal(again, pixels)
    # the rebuilt pack serves the next reader without a decode; the damaged one is never read
    fresh, decoded = served(ImageStore(SIDE, tmp_path / "cache"), files)
    assert decoded == 0 and np.array_equal(fresh, pixels)


@pytest.mark.parametrize("damage", ["half-written", "not an object", "entries malformed",
                                    "entries missing a slot", "other side"])
def test_a_damaged_index_is_never_taken(tmp_path: Path, files: list[str], damage: str) -> None:
    _, pixels, _, index = filled(tmp_path / "cache", files)
    text = index.read_text()
    record: Any = json.loads(text)
    if damage == "half-written":
        index.write_text(text[:len(text) // 2])
    else:
        if damage == "not an object":
            record = [record]
        elif damage == "entries malformed":
            record["entries"][1]["sha256"] = ["not", "a", "hash"]
        elif damage == "entries missing a slot":
            record["entries"] = record["entries"][:-1]
        else:
            record["side"] = SIDE + 1
        index.write_text(json.dumps(record))
    store = ImageStore(SIDE, tmp_path / "cache")
    again, decoded = served(store, files)
    assert decoded == len(files)  # none of the damaged index's entries was taken
    assert np.array_equal(again, pixels)


def test_a_pack_broken_under_rows_already_made_is_named(tmp_path: Path,
                                                        files: list[str]) -> None:
    store, _, pack, _ = filled(tmp_path / "cache", files)
    rows = ImageStore(SIDE, tmp_path / "cache").rows(files)  # maps the pack only when read
    pack.unlink()
    with pytest.raises(DataError, match=rf"{pack}: a decoded-image cache pack was deleted or "
                                        rf"damaged.*delete the folder {pack.parent}"):
        rows.take([0])
    assert store.folder.is_dir()


def test_a_run_on_a_damaged_cache_trains_on_the_real_pixels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        image_folder_writer: Callable[..., Path]) -> None:
    """Every pack truncated between two runs: the second decodes each image again and its
    rows are the first run's pixels."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FITCLASS_CACHE", str(cache))
    root = tmp_path / "data"
    image_folder_writer(root / "train", per_class=4)
    image_folder_writer(root / "valid", per_class=2, seed=1)
    images = sorted(str(p) for p in root.rglob("*.png"))
    recipe = {"data": {"train": str(root), "images": True},
              "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": 16},
              "train": {"epochs": 1, "batch_size": 8, "lr": 3e-3, "seed": 0,
                        "precision": "fp32", "eval_batch_size": 16}}
    side = stored_side(16)
    fitclass.train(recipe, out=tmp_path / "first")
    before = ImageStore(side, cache / "images").rows(images).take(slice(None))
    for pack in (cache / "images").rglob("*.npy"):
        truncate(pack)
    image_cache._STORES.clear()  # as a new process finds it
    image_cache._HASHES.clear()
    start = decode_count()
    second = fitclass.train(recipe, out=tmp_path / "second")
    assert decode_count() - start == len(images)
    assert second.metrics["n"] == 6
    after, decoded = served(ImageStore(side, cache / "images"), images)
    assert decoded == 0 and np.array_equal(after, before)
