"""The frozen-feature cache: what its key depends on, and computing each key once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fitclass.training.cache import FeatureCache, cache_root, feature_key

TEXTS = ["a football match", "new laptop software", ("a pair", "of texts")]


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A stand-in model folder: a weight file and a non-weight file."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00\x01weights-v1")
    (folder / "config.json").write_text('{"hidden_size": 32}')
    return folder


def test_key_is_stable_for_equal_inputs(model_folder: Path) -> None:
    first = feature_key(str(model_folder), 32, "cls", TEXTS)
    assert first == feature_key(str(model_folder), 32, "cls", list(TEXTS))
    assert len(first) == 32


def test_key_changes_with_every_part(model_folder: Path, tmp_path: Path) -> None:
    base = feature_key(str(model_folder), 32, "cls", TEXTS)
    assert feature_key(str(model_folder), 64, "cls", TEXTS) != base  # max_length
    assert feature_key(str(model_folder), 32, "mean", TEXTS) != base  # pooling
    assert feature_key(str(model_folder), 32, "cls", TEXTS[:2]) != base  # fewer texts
    assert feature_key(str(model_folder), 32, "cls", [*TEXTS[:2], "other"]) != base
    assert feature_key(str(model_folder), 32, "cls", TEXTS[::-1]) != base  # order matters
    # the same weights under another source path are another key
    copy = tmp_path / "copy"
    shutil.copytree(model_folder, copy)
    assert feature_key(str(copy), 32, "cls", TEXTS) != base
    # new weight bytes in the same folder: another key
    (model_folder / "model.safetensors").write_bytes(b"\x00\x01weights-v2")
    changed = feature_key(str(model_folder), 32, "cls", TEXTS)
    assert changed != base
    # a new weight file beside the old one changes it too
    (model_folder / "extra.bin").write_bytes(b"more")
    assert feature_key(str(model_folder), 32, "cls", TEXTS) not in (base, changed)


def test_key_ignores_non_weight_files(model_folder: Path) -> None:
    base = feature_key(str(model_folder), 32, "cls", TEXTS)
    (model_folder / "README.md").write_text("notes")
    assert feature_key(str(model_folder), 32, "cls", TEXTS) == base


def test_hub_ids_are_keyed_by_name() -> None:
    assert (feature_key("org/model-a", 32, "cls", TEXTS)
            != feature_key("org/model-b", 32, "cls", TEXTS))


def test_get_or_compute_computes_once_and_reloads(tmp_path: Path) -> None:
    calls = []
    features = np.arange(12, dtype=np.float32).reshape(3, 4) / 7.0

    def compute() -> np.ndarray:
        calls.append(1)
        return features

    cache = FeatureCache(tmp_path / "cache")
    first = cache.get_or_compute("k1", compute)
    assert len(calls) == 1 and cache.path("k1").is_file()
    second = cache.get_or_compute("k1", compute)
    assert len(calls) == 1  # read from disk, not recomputed
    np.testing.assert_array_equal(first, features)
    np.testing.assert_array_equal(second, features)
    assert second.dtype == np.float32 and second.shape == (3, 4)
    # a new cache object on the same folder reads the same file
    again = FeatureCache(tmp_path / "cache").get_or_compute("k1", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(again, features)
    # another key computes again; no temporary files are left behind
    cache.get_or_compute("k2", compute)
    assert len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "k1.safetensors", "k2.safetensors"]


def test_cache_root_follows_the_environment(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    assert FeatureCache().path("abc") == tmp_path / "elsewhere" / "abc.safetensors"
