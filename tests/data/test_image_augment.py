"""MixUp/CutMix targets, batch augmentation shapes and dtypes, and soft-target losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitclass.data.image_augment import (
    BatchAugmenter,
    cutmix,
    cutmix_box,
    dense_targets,
    mixup,
)
from fitclass.recipe import AugmentConfig
from fitclass.tasks import make_task
from fitclass.training.losses import LossSpec, make_loss


def _batch(n: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    return images, torch.arange(n) % 4


def test_mixup_and_cutmix_targets_sum_to_one() -> None:
    images, labels = _batch()
    targets = dense_targets(labels, 4)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    mixed, soft = mixup(images.float() / 255, targets, 0.3, order)
    assert mixed.shape == images.shape
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.allclose(soft, 0.3 * targets + 0.7 * targets[order])
    box = cutmix_box(16, 16, 0.75, torch.Generator().manual_seed(2))
    cut, soft = cutmix(images.float(), targets, box, order)
    top, bottom, left, right = box
    area = (bottom - top) * (right - left) / 256
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.allclose(soft, (1 - area) * targets + area * targets[order])
    assert torch.equal(cut[:, :, top:bottom, left:right],
                       images.float()[order, :, top:bottom, left:right])


@pytest.mark.parametrize("augment", [
    {},
    {"color_jitter": 0.3},
    {"randaugment": {"n": 2, "m": 9}, "flip": False},
    {"mixup": {"p": 1.0, "alpha": 0.4}},
    {"cutmix": {"p": 1.0, "alpha": 1.0}},
    {"crop_scale": None, "flip": False, "mixup": 0.5, "cutmix": 0.5},
])
def test_augmenter_keeps_shapes_and_dtypes(augment: dict[str, object]) -> None:
    images, labels = _batch()
    augmenter = BatchAugmenter(AugmentConfig.model_validate(augment), 16, 4, seed=0)
    out, targets = augmenter({"pixel_values": images}, labels)
    pixels = out["pixel_values"]
    assert pixels.shape == images.shape and pixels.dtype == torch.float32
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    if targets.ndim == 2:  # mixed: soft rows summing to one
        assert targets.dtype == torch.float32
        assert torch.allclose(targets.sum(1), torch.ones(8), atol=1e-6)
    else:
        assert torch.equal(targets, labels)


def test_multilabel_mix_stays_in_unit_interval() -> None:
    images, _ = _batch()
    labels = (torch.rand(8, 5, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    augmenter = BatchAugmenter(AugmentConfig.model_validate({"mixup": 1.0}), 16, 5, seed=0)
    _, targets = augmenter({"pixel_values": images}, labels)
    assert targets.shape == (8, 5) and 0.0 <= float(targets.min()) <= float(targets.max()) <= 1


def test_soft_targets_in_ce_with_label_smoothing() -> None:
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    spec = LossSpec(task=make_task("multiclass", list("abcd")), priors=np.full(4, 0.25),
                    label_smoothing=0.1)
    loss = make_loss("ce", spec)
    # one-hot soft targets give exactly the index loss (torch's CE with label smoothing)
    hard = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(loss(logits, dense_targets(labels, 4)), hard)
    assert torch.allclose(loss(logits, labels), hard)
    soft = 0.3 * dense_targets(labels, 4) + 0.7 * dense_targets(labels.flip(0), 4)
    q = soft * 0.9 + 0.1 / 4
    expected = -(q * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(loss(logits, soft), expected)


def test_mix_probabilities_must_not_exceed_one() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        AugmentConfig.model_validate({"mixup": 0.7, "cutmix": 0.5})
