"""Reading image files: decode once for the checks (modes, orientation, sizes, hashes) and
decode + resize for the model, with the backbone's own preprocessing settings.

Every image is opened with EXIF orientation applied and converted to RGB (transparent
pixels composited on white), so the checks, training and prediction see the same pixels.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


def resize_crop(image: Image.Image, preprocess: Preprocess) -> np.ndarray:
    """Shorter side to size / crop_pct, centre crop to size x size; uint8 (3, size, size)."""
    size = preprocess.size
    short = max(size, round(size / preprocess.crop_pct))
    width, height = image.size
    scale = short / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))),
                           Image.Resampling.BILINEAR)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(cropped, dtype=np.uint8).transpose(2, 0, 1))


def decode(path: str | Path, preprocess: Preprocess) -> np.ndarray:
    """One image as the model sees it before normalisation: uint8 (3, size, size)."""
    return resize_crop(open_rgb(path), preprocess)


def default_threads(threads: int = 0) -> int:
    return threads or min(8, os.cpu_count() or 1)


def decode_many(paths: Sequence[str], preprocess: Preprocess, threads: int = 0) -> np.ndarray:
    """Decode and resize many images in a thread pool (PIL releases the GIL); (N, 3, S, S)."""
    out = np.zeros((len(paths), 3, preprocess.size, preprocess.size), dtype=np.uint8)
    if not paths:
        return out
    with ThreadPoolExecutor(default_threads(threads)) as pool:
        for index, array in enumerate(pool.map(lambda p: decode(p, preprocess), paths)):
            out[index] = array
    return out


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


def scan_image(path: str) -> ImageInfo:
    """Read and fully decode one file; never raises (problems go into `error`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return ImageInfo(path, error="file not found")
    except OSError as error:
        return ImageInfo(path, error=f"cannot read the file ({error.strerror or error})")
    info = ImageInfo(path, sha256=hashlib.sha256(data).hexdigest())
    if not data:
        info.error = "empty file"
        return info
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # raises on truncated data
            info.mode = image.mode
            info.rotated = image.getexif().get(ORIENTATION_TAG, 1) not in (0, 1)
            upright = ImageOps.exif_transpose(image)
            info.width, info.height = upright.size
            info.dhash = dhash(to_rgb(upright))
    except DECODE_ERRORS as error:
        info.error = f"cannot decode ({type(error).__name__}: {error})"
    return info


def scan_images(paths: Sequence[str], threads: int = 0) -> list[ImageInfo]:
    """`scan_image` over many files in a thread pool, results in input order."""
    if not paths:
        return []
    with ThreadPoolExecutor(default_threads(threads)) as pool:
        return list(pool.map(scan_image, paths))
