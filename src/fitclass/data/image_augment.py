"""Train-time image augmentation on whole batches, on the model's device.

Geometric and colour augmentation come from kornia (RandomResizedCrop, horizontal flip,
colour jitter, RandAugment). MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) are plain
functions on (images, targets): they mix a batch with a permutation of itself and return soft
targets (rows summing to one for multi-class; mixed 0/1 rows for multi-label), which every loss in
`training/losses.py` accepts, label smoothing included.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fitclass.data.image_view import centre_view, unit_nchw
from fitclass.errors import RecipeError
from fitclass.recipe import AugmentConfig


def dense_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices to one-hot rows; probability or 0/1 rows are returned as floats."""
    if targets.ndim == 2:
        return targets.float()
    # scatter, not `F.one_hot`: that checks the indices' range and so reads the device
    # twice per batch (the same reason as `tasks.one_hot`, a layer this one may not import)
    rows = torch.zeros(len(targets), num_classes, device=targets.device)
    return rows.scatter_(1, targets.long().unsqueeze(1), 1.0)


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float,
          order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lam * each row + (1 - lam) * the row `order` pairs it with, for images and targets."""
    mixed = lam * images + (1.0 - lam) * images[order]
    return mixed, lam * targets + (1.0 - lam) * targets[order]


def cutmix_box(height: int, width: int, lam: float,
               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """A box (top, bottom, left, right) covering about 1 - lam of the image, centre uniform."""
    cut_h, cut_w = round(height * math.sqrt(1.0 - lam)), round(width * math.sqrt(1.0 - lam))
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    return top, bottom, left, right


def cutmix(images: torch.Tensor, targets: torch.Tensor, box: tuple[int, int, int, int],
           order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the paired rows' pixels into `box`; targets weighted by the pasted area."""
    top, bottom, left, right = box
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[order, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (images.shape[-2] * images.shape[-1])
    return mixed, lam * targets + (1.0 - lam) * targets[order]


class BatchAugmenter:
    """(inputs, labels) -> (augmented inputs in [0, 1] at size x size, targets): the loop's
    batch transform, on the device. Inputs are the cache's stored pixels (uint8 NHWC,
    larger than `size`): RandomResizedCrop takes its crops from them, or without cropping
    the evaluation geometry (`image_view.centre_view`) brings them to `size`. Targets stay
    as given unless MixUp or CutMix ran on the batch."""

    def __init__(self, config: AugmentConfig, size: int, num_classes: int, seed: int,
                 crop_pct: float = 1.0) -> None:
        try:
            import kornia.augmentation as K
        except ImportError:
            raise RecipeError("image augmentation needs kornia: pip install kornia "
                              "(or pip install 'fitclass[images]')") from None
        ops: list[nn.Module] = []
        if config.crop_scale is not None:
            ops.append(K.RandomResizedCrop((size, size), scale=config.crop_scale,
                                           ratio=config.crop_ratio))
        if config.flip:
            ops.append(K.RandomHorizontalFlip())
        if config.color_jitter:
            strength = config.color_jitter
            ops.append(K.ColorJitter(strength, strength, strength, strength / 4, p=0.8))
        if config.randaugment is not None:
            from kornia.augmentation.auto import RandAugment

            ops.append(RandAugment(n=config.randaugment.n, m=config.randaugment.m))
        self.ops = nn.Sequential(*ops)
        self.config, self.size, self.crop_pct = config, size, crop_pct
        self.num_classes = num_classes
        # Mixing decisions have their own stream, so they do not shift kornia's draws.
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict[str, torch.Tensor],
                 labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        images = unit_nchw(batch["pixel_values"])
        if self.config.crop_scale is None:
            images = centre_view(images, self.size, self.crop_pct)
        if len(self.ops):
            images = self.ops(images).clamp_(0.0, 1.0)
        images, targets = self.mix(images, labels)
        if images.is_cuda:  # convolutions run channels-last (the module is converted too)
            images = images.contiguous(memory_format=torch.channels_last)
        return {**batch, "pixel_values": images}, targets

    def mix(self, images: torch.Tensor,
            labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp with probability mixup.p, else CutMix with probability cutmix.p."""
        mix_up, cut_mix = self.config.mixup, self.config.cutmix
        draw = float(torch.rand((), generator=self.generator))
        chosen = (mix_up if mix_up is not None and draw < mix_up.p else
                  cut_mix if cut_mix is not None
                  and draw < (mix_up.p if mix_up else 0.0) + cut_mix.p else None)
        if chosen is None or len(images) < 2:
            return images, labels
        beta = torch.distributions.Beta(chosen.alpha, chosen.alpha)
        lam = float(beta.sample())
        order = torch.randperm(len(images), generator=self.generator).to(images.device)
        targets = dense_targets(labels, self.num_classes).to(images.device)
        if chosen is mix_up:
            return mixup(images, targets, lam, order)
        box = cutmix_box(images.shape[-2], images.shape[-1], lam, self.generator)
        return cutmix(images, targets, box, order)
