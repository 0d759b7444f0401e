"""The decoded-image cache: every image decoded once, stored on disk as uint8 pixels and
memory-mapped by every run, sweep trial and audit fold that reads it.

What is stored: the centre square of the upright RGB image (`image_io.decode_bytes`: JPEG
draft, EXIF orientation, RGB on white) at `stored_side`, uint8, side x side x 3. Channels
last: a batch travels to the device as uint8 as it lies, and `permute` makes it a
channels-last NCHW tensor without a copy (`data/image_view.py`).

**The size rule**: side = max(ceil(1.15 x size), round(size / crop_pct)), `size` being the
model's input side. 1.15x leaves RandomResizedCrop room above the train resolution (the
usual 256 for 224 is 1.14x); size / crop_pct is the backbone's own evaluation resize, which
a crop share below 0.87 makes the larger one (then evaluation is an exact centre crop).

**Keys**: the SHA-256 of each file's bytes, inside a folder named by the stored side and
`LAYOUT` (the decode rules). Content, not size + mtime: the checks' scan reads every byte
anyway (to decode it, and for the byte-identical check), hashing costs about 1 ms per MB
against 10-50 ms to decode a photo, an edited file can never hit a stale entry (an mtime
can be preserved, a partial hash can miss an edit), and identical files share one entry.
In a process, (path, size, mtime_ns) remembers a file's hash, so the training rows find
their entries without reading the files again after the scan.

**Layout**: `$FITCLASS_CACHE/images/v<LAYOUT>-side<side>/` (default `~/.cache/fitclass`)
holds packs: `<id>.npy`, (n, side, side, 3) uint8 read with `np.load(mmap_mode="r")`, and
`<id>.json`, its index (per slot: content hash, and what the checks learn: mode, size,
rotation, dHash). Checks-only scans (prediction, the audit's table) keep indexes without
pixels in `v<LAYOUT>-checks/`. Both files are written under temporary names and renamed,
the index last; a pack without a valid index is never read, so a killed writer leaves
nothing half-written in use. Packs are immutable; concurrent writers of the same images
each write a pack and readers take either. A folder that cannot be written (a read-only
home) costs memory only: the pixels stay in the process.

**Damage** (a truncated or deleted pack, an index that is not JSON or does not match its
pack): a damaged pack is never read; its images are decoded again into a new pack. An index
is taken only when every entry is well formed and its pack has the shape it promises, and a
pack whose size changes after it was read (truncated, replaced, deleted) is forgotten at the
next look. A pack that breaks while rows already point at it is a `DataError` naming it and
its folder (delete the folder; the next run decodes the images again).

**Prediction** (`write=False`) decodes each new image once and does not grow the cache: the
pixels go to this process's scratch store, packs in a private temporary folder (removed when
the process ends, replaced when it outgrows `SCRATCH_BYTES`), where the model's rows find
them after the checks' scan decoded them.

**Memory**: a fill holds at most `MEMORY_BYTES` of decoded pixels before writing a pack.
Training reads rows through the memory map: the page cache keeps them in memory when they
fit, the disk serves them when not, and no image is decoded again, in this epoch or run or
the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fitclass.atomic import atomic_write_text, open_temporary
from fitclass.data.image_io import ImageInfo, decode_bytes, default_threads, read_bytes
from fitclass.errors import DataError

#: Bumped when the stored pixels change (decode, draft, resampling, layout).
LAYOUT = 1
#: Stored side over the model's input side: room for RandomResizedCrop.
GROWTH = 1.15
#: Decoded bytes a fill holds in memory before it writes them as a pack.
MEMORY_BYTES = 1 << 30
#: What an index keeps of each image's check results.
META = ("mode", "width", "height", "rotated", "dhash")
#: Bytes of scratch packs (images predicted, not cached) a process keeps before starting over.
SCRATCH_BYTES = 4 * MEMORY_BYTES
#: Where a pack of the store lives, or its pixels when its folder cannot be written.
Source = Path | np.ndarray

#: (path, size, mtime_ns) -> SHA-256 of the bytes, for files this process has read.
_HASHES: dict[tuple[str, int, int], str] = {}


def stored_side(size: int, crop_pct: float = 1.0) -> int:
    """The side of the stored square for a model input side `size` (see the module doc)."""
    return max(math.ceil(GROWTH * size), evaluation_side(size, crop_pct))


def evaluation_side(size: int, crop_pct: float) -> int:
    """The short side evaluation resizes to before its centre crop of `size`."""
    return max(size, round(size / crop_pct))


def images_root() -> Path:
    """`$FITCLASS_CACHE/images` beside the token and feature files, else
    `~/.cache/fitclass/images`."""
    root = os.environ.get("FITCLASS_CACHE")
    return Path(root) / "images" if root else Path.home() / ".cache" / "fitclass" / "images"


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return path, stat.st_size, stat.st_mtime_ns


def _remember(path: str, digest: str) -> None:
    key = _stat_key(path)
    if key is not None and digest:
        _HASHES[key] = digest


class PixelRows:
    """Stored pixels of a list of files, row by row, from packs (memory maps opened lazily
    in each process, so DataLoader workers receive paths, not arrays) or arrays in memory."""

    def __init__(self, sources: list[Source], pack: np.ndarray,
                 slot: np.ndarray) -> None:
        self.sources, self.pack, self.slot = sources, pack, slot
        self._open: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pack)

    def _array(self, pack: int) -> np.ndarray:
        if pack not in self._open:
            source = self.sources[pack]
            self._open[pack] = source if isinstance(source, np.ndarray) else open_pack(source)
        return self._open[pack]

    def __getitem__(self, row: int) -> np.ndarray:
        """One image, (side, side, 3) uint8: a read-only view into the map (a batch's
        `np.stack` makes the one copy)."""
        return self._array(int(self.pack[row]))[int(self.slot[row])]

    def take(self, rows: Sequence[int] | slice) -> np.ndarray:
        """Several images stacked (copied), (n, side, side, 3) uint8."""
        picked = range(len(self))[rows] if isinstance(rows, slice) else rows
        return np.stack([self[row] for row in picked])

    def __getstate__(self) -> dict[str, Any]:
        return {"sources": self.sources, "pack": self.pack, "slot": self.slot}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["sources"], state["pack"], state["slot"])  # type: ignore[misc]


def open_pack(path: Path) -> np.ndarray:
    """A pack's pixels, memory-mapped; one deleted or damaged since its rows were made is a
    `DataError` naming it and the fix."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: a decoded-image cache pack was deleted or damaged while "
                        f"fitclass used it ({type(error).__name__}: {error}); rerun, and if "
                        f"it happens again delete the folder {path.parent} (its images are "
                        f"decoded again)") from None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _index_entries(record: Any) -> list[dict[str, Any]]:
    """An index's entries, each with its content hash and check record; ValueError (or
    KeyError, TypeError) when any is malformed, so a damaged index is never half taken."""
    entries = record["entries"]
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64
            for e in entries):
        raise ValueError("malformed entries")
    return [{k: e[k] for k in ("sha256", *META)} for e in entries]


class ImageStore:
    """One namespace of the cache (a stored side, or checks only): its packs and entries."""

    def __init__(self, side: int | None, root: Path | None = None) -> None:
        self.side = side
        name = f"v{LAYOUT}-side{side}" if side is not None else f"v{LAYOUT}-checks"
        self.folder = (root or images_root()) / name
        self.sources: list[Source | None] = []
        self.entries: dict[str, tuple[int, int, dict[str, Any]]] = {}
        self.sizes: dict[int, int] = {}  # pack -> its file's size when read or written
        self.stored_bytes = 0
        self._read: set[str] = set()
        self._scratch: ImageStore | None = None

    def refresh(self) -> None:
        """Forget packs deleted or changed since the last look (a cleared cache, a truncated
        file) and read the indexes written since (by this or another process)."""
        gone = {pack for pack, source in enumerate(self.sources)
                if isinstance(source, Path) and _size(source) != self.sizes.get(pack)}
        if gone:
            self.entries = {digest: entry for digest, entry in self.entries.items()
                            if entry[0] not in gone}
            self.sources = [None if pack in gone else source
                            for pack, source in enumerate(self.sources)]
        with contextlib.suppress(OSError):
            for index in sorted(self.folder.glob("*.json")):
                if index.name not in self._read:
                    self._read.add(index.name)
                    self._add_index(index)

    def _add_index(self, index: Path) -> None:
        """Take a pack whose index and pixels agree; skip a damaged or foreign one."""
        try:
            record = json.loads(index.read_text(encoding="utf-8"))
            entries = _index_entries(record)
            if record["layout"] != LAYOUT or record["side"] != self.side:
                return
            data: Path | None = None
            size = None
            if self.side is not None:
                data = index.with_name(record["data"])
                size = _size(data)
                shape = np.load(data, mmap_mode="r").shape  # a truncated file: ValueError
                if shape != (len(entries), self.side, self.side, 3):
                    return
            self._add(data, entries, size)
        except (OSError, ValueError, KeyError, TypeError):
            return  # damaged: its images are decoded again into a new pack

    def _add(self, source: Source | None, entries: list[dict[str, Any]],
             size: int | None = None) -> None:
        pack = len(self.sources)
        self.sources.append(source)
        if size is not None:
            self.sizes[pack] = size
        for slot, entry in enumerate(entries):
            self.entries.setdefault(entry["sha256"],
                                    (pack, slot, {k: entry[k] for k in META}))

    def _lookup(self, digest: str, scratch_too: bool
                ) -> tuple[int, int, dict[str, Any]] | None:
        """Where `digest`'s pixels are and its check record: (pack, slot, record), packs
        numbered over this store's, then (`scratch_too`: prediction) its scratch store's."""
        if digest in self.entries:
            return self.entries[digest]
        scratch = self._scratch if scratch_too else None
        if scratch is not None and digest in scratch.entries:
            pack, slot, meta = scratch.entries[digest]
            return len(self.sources) + pack, slot, meta
        return None

    def _known(self, path: str, scratch_too: bool) -> ImageInfo | None:
        """The checks' record of a file this process hashed before, if the store has it."""
        key = _stat_key(path)
        digest = _HASHES.get(key) if key is not None else None
        found = self._lookup(digest, scratch_too) if digest is not None else None
        if digest is None or found is None:
            return None
        return ImageInfo(path, sha256=digest, **found[2])

    def scratch(self) -> ImageStore:
        """This process's store for pixels decoded but not cached (prediction): packs in a
        private temporary folder, removed when the store is dropped or the process ends
        (no temporary folder: in memory)."""
        if self._scratch is None:
            try:
                root = Path(tempfile.mkdtemp(prefix="fitclass-images-"))
            except OSError:
                self._scratch = ImageStore(self.side, Path(os.devnull))  # memory only
            else:
                self._scratch = ImageStore(self.side, root)
                weakref.finalize(self._scratch, shutil.rmtree, root, True)
        return self._scratch

    def _one(self, path: str, scratch_too: bool) -> tuple[ImageInfo, np.ndarray | None]:
        """A file's check record from the store, else decoded (pixels when storing them)."""
        known = self._known(path, scratch_too)
        if known is not None:
            return known, None
        data = read_bytes(path)
        if isinstance(data, ImageInfo):
            return data, None
        digest = hashlib.sha256(data).hexdigest()
        _remember(path, digest)
        found = self._lookup(digest, scratch_too)
        if found is not None:
            return ImageInfo(path, sha256=digest, **found[2]), None
        return decode_bytes(data, path, self.side, digest)

    def scan(self, paths: Sequence[str], threads: int = 0,
             write: bool = True) -> list[ImageInfo]:
        """Every file's check record, in order, decoding only files the store lacks and
        storing them (pixels when the store has a side, else the record only); with `write`
        False (prediction) into the scratch store, where `rows(write=False)` finds them."""
        if not write and self._scratch is not None and (
                self._scratch.stored_bytes > SCRATCH_BYTES):
            self._scratch = None  # a new prediction starts a new one (the old folder goes)
        return self._scan(paths, threads, write)

    def _scan(self, paths: Sequence[str], threads: int, write: bool) -> list[ImageInfo]:
        """Check records in order; new entries stored here, or in the scratch store."""
        self.refresh()
        infos: list[ImageInfo] = []
        image_bytes = 3 * (self.side or 1) ** 2
        per_chunk = max(1, MEMORY_BYTES // image_bytes) if self.side else max(1, len(paths))
        with ThreadPoolExecutor(default_threads(threads)) as pool:
            for first in range(0, len(paths), per_chunk):
                found = list(pool.map(partial(self._one, scratch_too=not write),
                                      paths[first:first + per_chunk]))
                infos.extend(info for info, _ in found)
                fresh = _unique_fresh(found, lambda d: self._lookup(d, not write) is not None,
                                      self.side is not None)
                if fresh:
                    (self if write else self.scratch())._store(fresh)
        return infos

    def _store(self, fresh: list[tuple[ImageInfo, np.ndarray | None]]) -> None:
        """Write new entries as a pack; where the folder cannot be written, keep the
        pixels in this process's memory instead."""
        entries = [{"sha256": info.sha256, **{k: getattr(info, k) for k in META}}
                   for info, _ in fresh]
        array = (np.stack([pixels for _, pixels in fresh if pixels is not None])
                 if self.side is not None else None)
        source: Source | None = array
        with contextlib.suppress(OSError):
            source = self._write_pack(array, entries)
        self._add(source, entries, _size(source) if isinstance(source, Path) else None)
        self.stored_bytes += 0 if array is None else array.nbytes

    def _write_pack(self, array: np.ndarray | None, entries: list[dict[str, Any]]) -> Path | None:
        """The pixels, then the index that makes them visible; both atomic."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():x}-{os.getpid()}-{secrets.token_hex(4)}"
        data = None
        if array is not None:
            data = self.folder / f"{name}.npy"
            fd, staged = open_temporary(data)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.lib.format.write_array(handle, np.ascontiguousarray(array))
                os.replace(staged, data)
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
        record = {"layout": LAYOUT, "side": self.side,
                  "data": None if data is None else data.name, "entries": entries}
        atomic_write_text(self.folder / f"{name}.json", json.dumps(record))
        self._read.add(f"{name}.json")
        return data

    def rows(self, paths: Sequence[str], threads: int = 0, write: bool = True) -> PixelRows:
        """The stored pixels of `paths` (a store with a side), decoding the files the store
        lacks: stored, or with `write=False` (prediction) kept in the scratch store."""
        if self.side is None:
            raise ValueError("a checks-only store keeps no pixels")
        self.refresh()
        if self._scratch is not None:
            self._scratch.refresh()
        missing = [p for p in dict.fromkeys(paths) if self._known(p, not write) is None]
        infos = self._scan(missing, threads, write) if missing else []
        bad = [info for info in infos if info.error is not None]
        if bad:
            raise DataError(f"{bad[0].path}: {bad[0].error}; replace or remove the image "
                            f"(the data checks drop such files under data.on_bad_image: skip)")
        scratch = self._scratch.sources if self._scratch is not None else []
        sources: list[Source] = [s if s is not None else np.zeros((0, 1, 1, 3), np.uint8)
                                 for s in [*self.sources, *scratch]]
        placed = [self._lookup(_hash_of(path), not write) for path in paths]
        if any(found is None for found in placed):  # only if a pack vanished meanwhile
            raise DataError(f"{self.folder}: the decoded-image cache changed while fitclass "
                            f"read it; rerun")
        return PixelRows(sources, np.asarray([f[0] for f in placed if f], dtype=np.int64),
                         np.asarray([f[1] for f in placed if f], dtype=np.int64))


def _hash_of(path: str) -> str:
    key = _stat_key(path)
    if key is None or key not in _HASHES:
        raise DataError(f"{path}: changed or removed while fitclass was reading it; rerun")
    return _HASHES[key]


def _unique_fresh(found: list[tuple[ImageInfo, np.ndarray | None]],
                  known: Callable[[str], bool], pixels: bool
                  ) -> list[tuple[ImageInfo, np.ndarray | None]]:
    """Newly decoded, readable files not in the store, each content once."""
    fresh: dict[str, tuple[ImageInfo, np.ndarray | None]] = {}
    for info, array in found:
        if (info.error is None and info.dhash and not known(info.sha256)
                and (array is not None or not pixels)):
            fresh.setdefault(info.sha256, (info, array))
    return list(fresh.values())


_STORES: dict[tuple[Path, int | None], ImageStore] = {}


def image_store(side: int | None) -> ImageStore:
    """This process's store for `side` under the current cache root (one per root and side,
    so sweep trials and folds in one process share the indexes already read)."""
    key = (images_root(), side)
    if key not in _STORES:
        _STORES[key] = ImageStore(side, key[0])
    return _STORES[key]
