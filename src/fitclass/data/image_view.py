"""The model's view of stored pixels, computed on the model's device.

The decoded-image cache (`data/image_cache.py`) stores squares larger than the model's input
side, uint8, channels last. A batch travels to the device in that form (a quarter of the
bytes of float32), becomes float NCHW there (`unit_nchw`: the permute of a channels-last
array is already a channels-last tensor, so nothing is copied before the division), and is
brought to the model's side either by augmentation (RandomResizedCrop, `image_augment.py`)
or by the evaluation geometry (`centre_view`: the short side to size / crop_pct, centre crop
of size), the backbone's own preprocessing. Training without cropping, evaluation,
BatchNorm recalibration and prediction all use `model_view`, so they cannot disagree.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from fitclass.data.image_cache import evaluation_side


def unit_nchw(pixels: torch.Tensor) -> torch.Tensor:
    """Float NCHW pixels in [0, 1]: from stored uint8 NHWC (last dimension 3), uint8 NCHW,
    or floats already in [0, 1] (returned as they are)."""
    if pixels.dtype != torch.uint8:
        return pixels.float()
    if pixels.ndim == 4 and pixels.shape[-1] == 3 and pixels.shape[1] != 3:
        pixels = pixels.permute(0, 3, 1, 2)
    return pixels.float().div_(255.0)


def centre_view(images: torch.Tensor, size: int, crop_pct: float) -> torch.Tensor:
    """Float NCHW images to (N, 3, size, size) by the evaluation geometry; images already
    at size x size (augmented batches) are returned unchanged."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    short = evaluation_side(size, crop_pct)
    if min(height, width) != short:
        scale = short / min(height, width)
        target = (max(short, round(height * scale)), max(short, round(width * scale)))
        images = functional.interpolate(images, size=target, mode="bilinear",
                                        antialias=True, align_corners=False)
        height, width = target
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size]


def model_view(pixels: torch.Tensor, size: int, crop_pct: float) -> torch.Tensor:
    """What the model sees before normalisation: float (N, 3, size, size) in [0, 1]."""
    return centre_view(unit_nchw(pixels), size, crop_pct)
