"""Cached frozen features: a frozen backbone's pooled outputs do not change, so they are
computed once per text set and reused (head-only training, the audit's linear probe, cheap
sweeps).

Keyed by (backbone source, hash of its weight files, max_length, pooling, hash of the texts):
any change to one of them is a different key. Stored as safetensors under
`$FITCLASS_CACHE` (default `~/.cache/fitclass/features`), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from fitclass.data.fingerprint import texts_digest
from fitclass.data.table import TextInput

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def cache_root() -> Path:
    return Path(os.environ.get("FITCLASS_CACHE", Path.home() / ".cache" / "fitclass" /
                               "features"))


def weights_digest(source: str) -> str:
    """A hash of the weight files of a model folder (or of the id, for hub names)."""
    folder = Path(source)
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.suffix in WEIGHT_SUFFIXES and path.is_file():
                digest.update(path.name.encode())
                with path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    else:
        digest.update(source.encode())
    return digest.hexdigest()


def feature_key(source: str, max_length: int, pooling: str, texts: Sequence[TextInput],
                precision: str = "fp32") -> str:
    """The cache key; features encoded under bf16/fp16 autocast differ from fp32 ones, so
    the precision is part of the key (fp32 keys are unchanged from before it was)."""
    parts = {"source": str(source), "weights": weights_digest(source),
             "max_length": max_length, "pooling": pooling, "texts": texts_digest(texts)}
    if precision != "fp32":
        parts["precision"] = precision
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class FeatureCache:
    """One folder of feature files, one file per key."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(key)
        if path.is_file():
            return load_file(str(path))["features"]
        features = compute()
        self.root.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"features": np.ascontiguousarray(features)}, str(staged))
        os.replace(staged, path)
        return features
