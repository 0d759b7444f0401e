"""The decoded-image cache (`data/image_cache.py`): the same pixels as a direct decode
(within the JPEG draft tolerance), invalidation by content, sharing across runs (the second
decodes nothing), atomic packs, and a run larger than the fill's memory limit decoding each
image once; image findings that name their files (the hymenoptera placeholder GIF)."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import fitclass
from fitclass.data import checks, image_cache
from fitclass.data.image_cache import ImageStore, stored_side
from fitclass.data.image_io import DRAFT_GAP, decode_count, open_rgb, square
from fitclass.data.image_tables import read_image_table
from fitclass.recipe import DataConfig

HYMENOPTERA = Path("/work/shared/data/hymenoptera/train")
#: JPEG draft tolerance, measured on the hymenoptera photos: a DCT-scaled decode (to at least
#: twice the stored side) then one bilinear resize, against a full decode then the same
#: resize, differs per image by a mean absolute value of at most 8 levels of 255 (the worst
#: photo, fine grass texture, at a 37 px side: 7.2) and by at most 3 levels on average over
#: the photos (1.9); a plain two-step resize without any draft differs by about 2 already.
#: Files too small to draft at that side come out identical.
DRAFT_IMAGE_MEAN, DRAFT_MEAN = 8.0, 3.0


def _photo(path: Path, seed: int, size: tuple[int, int] = (640, 480)) -> Path:
    """A smooth, photo-like JPEG (gradients and blurred blobs), large enough for a draft."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]] / max(size)
    channels = [np.sin(6 * x * rng.uniform(0.5, 2) + rng.uniform(0, 6))
                * np.cos(5 * y * rng.uniform(0.5, 2)) for _ in range(3)]
    pixels = ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def _photos() -> list[Path]:
    """Every fourth hymenoptera photo (62, mostly 500 px wide) and the one whose short side
    is largest (1488 px: drafted even for a 224 px model)."""
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"{HYMENOPTERA} not present")
    photos = sorted(HYMENOPTERA.glob("*/*.jpg"))

    def short_side(path: Path) -> int:
        with Image.open(path) as image:
            return min(image.size)

    return [*photos[::4], max(photos, key=short_side)]


def test_stored_side_rule() -> None:
    assert stored_side(224) == 258 and stored_side(224, 0.875) == 258
    assert stored_side(224, 0.8) == 280  # the backbone's own evaluation resize is larger
    assert stored_side(32) == 37


@pytest.mark.parametrize("side", [37, 258])  # CIFAR's 32 px and 224 px models
def test_cached_pixels_match_a_direct_decode(tmp_path: Path, side: int) -> None:
    files = [str(p) for p in _photos()]
    rows = ImageStore(side, tmp_path).rows(files)
    means, drafted = [], 0
    for row, path in enumerate(files):
        direct = square(open_rgb(path), side)
        means.append(np.abs(rows[row].astype(float) - direct).mean())
        with Image.open(path) as image:
            drafted += min(image.size) >= 2 * DRAFT_GAP * side  # a scale of 1/2 or less
        assert means[-1] <= DRAFT_IMAGE_MEAN, path
    assert float(np.mean(means)) <= DRAFT_MEAN
    assert sum(m == 0 for m in means) >= len(files) - drafted  # undrafted: identical
    assert drafted > 0  # the tolerance was tested, not only equality


def test_a_changed_file_is_decoded_again(tmp_path: Path) -> None:
    path = _photo(tmp_path / "a.jpg", seed=0)
    store = ImageStore(64, tmp_path / "cache")
    before = store.rows([str(path)])[0]
    start = decode_count()
    assert np.array_equal(ImageStore(64, tmp_path / "cache").rows([str(path)])[0], before)
    assert decode_count() == start  # a new store (another run) reads the pack
    _photo(path, seed=1)  # same name, same size, new content
    after = ImageStore(64, tmp_path / "cache").rows([str(path)])[0]
    assert decode_count() == start + 1
    assert not np.array_equal(after, before)
    assert np.abs(after.astype(float) - square(open_rgb(path), 64)).mean() <= DRAFT_IMAGE_MEAN


def test_half_written_packs_are_never_read(tmp_path: Path) -> None:
    files = [str(_photo(tmp_path / f"{i}.jpg", seed=i)) for i in range(3)]
    store = ImageStore(32, tmp_path / "cache")
    good = store.rows(files).take(slice(None))
    folder = store.folder
    (folder / "orphan.npy").write_bytes(b"\x93NUMPY half")  # a pack killed before its index
    index = next(folder.glob("*.json"))
    (folder / "short.json").write_text(index.read_text().replace(
        '"data": "', '"data": "missing-'))  # an index whose pixels are gone
    start = decode_count()
    fresh = ImageStore(32, tmp_path / "cache")
    assert np.array_equal(fresh.rows(files).take(slice(None)), good)
    assert decode_count() == start and len(fresh.sources) == 1


def test_a_cleared_cache_is_filled_again(tmp_path: Path) -> None:
    """Deleting the cache between two runs of one process (sweep trials) costs a decode."""
    files = [str(_photo(tmp_path / f"{i}.jpg", seed=i)) for i in range(2)]
    store = ImageStore(32, tmp_path / "cache")
    pixels = store.rows(files).take(slice(None))
    shutil.rmtree(tmp_path / "cache")
    start = decode_count()
    assert np.array_equal(store.rows(files).take(slice(None)), pixels)
    assert decode_count() == start + 2 and len(list(store.folder.glob("*.npy"))) == 1


def test_rows_travel_to_workers_as_paths(tmp_path: Path) -> None:
    """DataLoader workers receive pack paths and slots, and map the packs themselves."""
    files = [str(_photo(tmp_path / f"{i}.jpg", seed=i)) for i in range(3)]
    rows = ImageStore(64, tmp_path / "cache").rows(files)
    pixels = rows.take(slice(None))  # maps the pack in this process
    state = pickle.dumps(rows)
    assert len(state) < pixels.nbytes // 10
    assert np.array_equal(pickle.loads(state).take([2, 0]), pixels[[2, 0]])


def test_a_cache_folder_that_cannot_be_written_costs_memory_only(tmp_path: Path) -> None:
    files = [str(_photo(tmp_path / f"{i}.jpg", seed=i)) for i in range(2)]
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    store = ImageStore(32, blocked)
    pixels = store.rows(files).take(slice(None))
    start = decode_count()
    assert np.array_equal(store.rows(files).take(slice(None)), pixels)  # kept in memory
    assert decode_count() == start and blocked.is_file()


def test_worker_processes_read_the_packs(tmp_path: Path, cache_dir: Path,
                                         image_folder_writer: Callable[..., Path]) -> None:
    """The loader an accelerator gets (persistent workers, prefetch) hands the same uint8
    rows as the stored pixels, mapped in the worker, never decoded there."""
    from fitclass.models.catalog import get_backbone
    from fitclass.recipe import load_recipe
    from fitclass.training.samplers import training_loader

    root = image_folder_writer(tmp_path / "images", per_class=3)
    files = sorted(str(p) for p in root.rglob("*.png"))
    recipe = load_recipe(_recipe(root))
    classifier = get_backbone(recipe.model).build(["across", "checks", "down"])
    data = classifier.training_data(files, np.zeros(len(files), dtype=int), recipe)
    assert data.workers == 0  # on the CPU the main process gathers
    data.workers = 1
    order = [[4, 0, 7], [1, 2]]
    batches = list(training_loader(data, order))
    stored = ImageStore(stored_side(16), cache_dir / "images").rows(files)
    assert [b["row"].tolist() for b in batches] == order
    for batch, rows in zip(batches, order, strict=True):
        assert batch["pixel_values"].dtype == torch.uint8
        assert np.array_equal(batch["pixel_values"].numpy(), stored.take(rows))


def _recipe(root: Path, epochs: int = 2) -> dict[str, Any]:
    return {"data": {"train": str(root), "images": True},
            "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": 16},
            "augment": {"crop_scale": [0.8, 1.0]},
            "train": {"epochs": epochs, "batch_size": 8, "lr": 3e-3, "seed": 0,
                      "precision": "fp32", "eval_batch_size": 16}}


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_runs_share_the_cache_and_the_second_decodes_nothing(
        tmp_path: Path, cache_dir: Path, image_folder_writer: Callable[..., Path]) -> None:
    root = tmp_path / "images"
    image_folder_writer(root / "train", per_class=8)
    image_folder_writer(root / "valid", per_class=3, seed=1)
    files = len(list(root.rglob("*.png")))
    start = decode_count()
    fitclass.train(_recipe(root, epochs=1), out=tmp_path / "first")
    assert decode_count() - start == files  # the scan decoded each file once; training none
    packs = sorted((cache_dir / "images").rglob("*.npy"))  # one per folder scanned
    image_cache._HASHES.clear()  # as a new process would: files are read and hashed again
    image_cache._STORES.clear()
    start = decode_count()
    second = fitclass.train(_recipe(root, epochs=1), out=tmp_path / "second")
    assert decode_count() == start
    assert second.metrics["n"] == 9
    assert sorted((cache_dir / "images").rglob("*.npy")) == packs  # nothing added


def test_a_run_larger_than_the_memory_limit_decodes_each_image_once(
        tmp_path: Path, cache_dir: Path, image_folder_writer: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "images"
    image_folder_writer(root / "train", per_class=10)
    image_folder_writer(root / "valid", per_class=2, seed=1)
    side = stored_side(16)
    monkeypatch.setattr(image_cache, "MEMORY_BYTES", 4 * 3 * side * side)  # 4 images
    files = len(list(root.rglob("*.png")))
    start = decode_count()
    run = fitclass.train(_recipe(root, epochs=3), out=tmp_path / "run")
    assert decode_count() - start == files  # 3 epochs + evaluations: still once each
    packs = list((cache_dir / "images").rglob("*.npy"))
    assert len(packs) >= files // 4
    assert all(np.load(p, mmap_mode="r").shape[0] <= 4 for p in packs)
    assert len((run.path / "history.csv").read_text().splitlines()) == 1 + 3  # one per epoch


def test_findings_name_their_files() -> None:
    """The hymenoptera placeholder (a palette GIF under ants) is listed by name."""
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"{HYMENOPTERA} not present")
    report = checks.CheckReport()
    config = DataConfig.model_validate({"train": str(HYMENOPTERA), "images": True})
    read_image_table(HYMENOPTERA, config, report, need_labels=True)
    converted = {f.check: f for f in report.findings}["mode_converted"]
    assert "ants/imageNotFound.gif (P)" in converted.message
    assert any(e.endswith("imageNotFound.gif (P)") for e in converted.examples)


def test_predicting_new_images_decodes_each_once_and_does_not_grow_the_cache(
        tmp_path: Path, cache_dir: Path, image_folder_writer: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks' scan of the scored folder decodes at the model's side into the scratch
    store, and the model reads those pixels: one decode per new image, none the next time."""
    root = tmp_path / "images"
    image_folder_writer(root / "train", per_class=4)
    image_folder_writer(root / "valid", per_class=2, seed=1)
    run = fitclass.train(_recipe(root, epochs=1), out=tmp_path / "run")
    new = image_folder_writer(tmp_path / "new", per_class=2, seed=7)
    files = sorted(str(p) for p in new.rglob("*.png"))
    packs = sorted(cache_dir.rglob("*.npy"))
    decoded: list[str] = []
    real = image_cache.decode_bytes

    def counting(data: bytes, path: str, side: int | None, digest: str = "") -> Any:
        decoded.append(path)
        return real(data, path, side, digest)

    monkeypatch.setattr(image_cache, "decode_bytes", counting)
    predicted = run.predict(new)
    assert sorted(decoded) == files  # each new image decoded once, by the checks' scan
    assert sorted(cache_dir.rglob("*.npy")) == packs  # nothing cached
    evaluated = run.evaluate(new)
    assert sorted(decoded) == files and evaluated["n"] == len(files)  # none decoded again
    image_cache._STORES.clear()  # a new process: decoded again, the same predictions
    image_cache._HASHES.clear()
    again = fitclass.load_run(run.path).predict(new)
    assert len(decoded) == 2 * len(files)
    prob_columns = [c for c in predicted.columns if c.startswith("prob:")]
    np.testing.assert_allclose(again[prob_columns].to_numpy(float),
                               predicted[prob_columns].to_numpy(float), atol=1e-6)
