"""Reading image files: one decode gives what the checks learn (modes, orientation, sizes,
hashes) and the pixels the decoded-image cache stores (`data/image_cache.py`).

Every image is opened with EXIF orientation applied and converted to RGB (transparent
pixels composited on white), so the checks, training and prediction see the same pixels.
The backbone's preprocessing (`Preprocess`: side, crop share, mean, std) is applied on the
device (`data/image_view.py`, `models/image.py`).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from fitclass.errors import DataError

#: File suffixes read as images in folder layouts.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: The EXIF tag holding the camera orientation.
ORIENTATION_TAG = 0x0112
#: EXIF orientations that turn the image a quarter (width and height swap).
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
#: Smallest side a checks-only decode keeps (JPEG draft): plenty for the 9x8 dHash.
SCAN_DRAFT = 64
#: A JPEG stored at side s is drafted to at least DRAFT_GAP x s, then resampled: PIL's own
#: `thumbnail` default (`reducing_gap=2`), which halves the difference from a full decode
#: that drafting straight to s leaves (DCT scaling aliases fine texture). Changing it, or
#: anything else `decode_bytes` stores, changes cached pixels: bump `image_cache.LAYOUT`.
DRAFT_GAP = 2.0
#: Errors PIL raises for unreadable, truncated or hostile files.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Preprocess:
    """How a backbone wants its pixels: square side, resize-then-centre-crop share, mean/std.
    Read from the model's `preprocessor_config.json`; saved with every image model."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 1.0

    @classmethod
    def from_processor_config(cls, config: dict[str, Any], source: str,
                              size: int | None = None) -> Preprocess:
        """From an HF image processor config (`image_mean`, `image_std`, `size`, `crop_pct`);
        `size` overrides the config's side (`model.image_size`)."""
        try:
            mean, std = config["image_mean"], config["image_std"]
        except KeyError as missing:
            raise DataError(f"{source}: preprocessor_config.json has no {missing}; it needs "
                            f"image_mean and image_std (the model's normalisation)") from None
        if size is None:
            raw = config.get("size", config.get("crop_size"))
            if isinstance(raw, dict):
                raw = raw.get("shortest_edge", raw.get("height"))
            if not isinstance(raw, int | float):
                raise DataError(f"{source}: preprocessor_config.json gives no image size; "
                                f"set model.image_size")
            size = int(raw)
        return cls(size=size, mean=_three(mean, source), std=_three(std, source),
                   crop_pct=float(config.get("crop_pct") or 1.0))

    def to_processor_config(self) -> dict[str, Any]:
        return {"image_mean": list(self.mean), "image_std": list(self.std),
                "size": {"height": self.size, "width": self.size}, "crop_pct": self.crop_pct,
                "do_resize": True, "do_normalize": True}


def _three(value: Any, source: str) -> tuple[float, float, float]:
    """A per-channel statistic: one number for all channels, or one per RGB channel."""
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 3:
        raise DataError(f"{source}: preprocessor_config.json image_mean/image_std need 3 "
                        f"values (RGB), got {value!r}")
    return values[0], values[1], values[2]


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparency (RGBA, LA, palette with transparency) composited on white."""
    if image.mode == "RGB":
        return image
    if "A" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def open_rgb(path: str | Path) -> Image.Image:
    """The decoded image, EXIF orientation applied, in RGB; `DataError` naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except DECODE_ERRORS as error:
        raise DataError(f"{path}: cannot decode the image ({error}); replace or remove it, "
                        f"or set data.on_bad_image: skip") from None


def default_threads(threads: int = 0) -> int:
    return threads or min(8, os.cpu_count() or 1)


@dataclass
class ImageInfo:
    """What the checks learn from decoding one file once."""

    path: str
    error: str | None = None
    mode: str = ""
    width: int = 0
    height: int = 0
    rotated: bool = False  # an EXIF orientation other than 'normal' was applied
    sha256: str = ""
    dhash: str = ""  # 64-bit difference hash, 16 hex digits


def dhash(image: Image.Image) -> str:
    """Difference hash: 9x8 greyscale thumbnail, one bit per left/right brightness step."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR),
                       dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return np.packbits(bits).tobytes().hex()


def square(image: Image.Image, side: int) -> np.ndarray:
    """The centre square of `image` resized to side x side in one resampling (PIL's
    antialiasing bilinear over the crop box); uint8 (side, side, 3)."""
    width, height = image.size
    short = min(width, height)
    left, top = (width - short) / 2, (height - short) / 2
    resized = image.resize((side, side), Image.Resampling.BILINEAR,
                           box=(left, top, left + short, top + short))
    return np.asarray(resized, dtype=np.uint8)


_DECODES_LOCK = threading.Lock()
_decoded = 0


def decode_count() -> int:
    """Images decoded by this process so far (`decode_bytes` calls that reached the decoder):
    how tests and benchmarks prove the cache decodes each image once."""
    return _decoded


def _count_decode() -> None:
    global _decoded
    with _DECODES_LOCK:
        _decoded += 1


def read_bytes(path: str) -> bytes | ImageInfo:
    """The file's bytes, or an `ImageInfo` saying why they cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return ImageInfo(path, error="file not found")
    except OSError as error:
        return ImageInfo(path, error=f"cannot read the file ({error.strerror or error})")


def decode_bytes(data: bytes, path: str, side: int | None,
                 digest: str = "") -> tuple[ImageInfo, np.ndarray | None]:
    """Decode one file's bytes once: what the checks learn (`ImageInfo`, `sha256` of the
    bytes) and, when `side` is given, the stored pixels (`square` at `side`). Never raises.

    A JPEG is decoded by DCT scaling (`draft`) to the smallest of 1/1, 1/2, 1/4, 1/8 that
    keeps both sides at least `DRAFT_GAP` x `side` (`SCAN_DRAFT` when only checking), which
    is several times faster than a full decode of a large photo; the whole stream is still
    read, so truncation is caught. EXIF orientation and RGB conversion (transparency on
    white) follow; the dHash is taken from this decode. Mode and size are the file's own,
    before any of it.
    `digest`: the bytes' SHA-256 when the caller has it already."""
    info = ImageInfo(path, sha256=digest or hashlib.sha256(data).hexdigest())
    if not data:
        info.error = "empty file"
        return info, None
    _count_decode()
    try:
        with Image.open(io.BytesIO(data)) as image:
            info.mode = image.mode
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            info.rotated = orientation not in (0, 1)
            info.width, info.height = image.size
            if orientation in SWAPPING_ORIENTATIONS:
                info.width, info.height = info.height, info.width
            draft = round(side * DRAFT_GAP) if side else SCAN_DRAFT
            image.draft("RGB", (draft, draft))
            image.load()  # raises on truncated data
            upright = to_rgb(ImageOps.exif_transpose(image))
            info.dhash = dhash(upright)
            return info, None if side is None else square(upright, side)
    except DECODE_ERRORS as error:
        info.error = f"cannot decode ({type(error).__name__}: {error})"
        return info, None
