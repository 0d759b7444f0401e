"""Recipe sections for images: `data.images` (layout and checks) and `augment`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from fitclass.recipe.base import Strict


class ImagesConfig(Strict):
    """Image inputs. `data.train` is then a folder (`<class>/*.png`, or a root holding
    `train/` and an optional `valid/`) or a table whose `column` holds image paths relative
    to the table file."""

    column: str = "path"
    #: Images smaller than this on either side, or larger, are listed as extreme sizes.
    min_side: int = Field(8, ge=1)
    max_side: int = Field(8192, ge=1)
    #: Longer side / shorter side above this is an extreme aspect ratio.
    max_aspect: float = Field(4.0, ge=1.0)
    #: dHash bits that may differ for two images to count as near duplicates (0 turns it off).
    near_duplicate_bits: int = Field(3, ge=0, le=32)
    #: Decode threads for the checks (0: as many as CPU cores, at most 8).
    threads: int = Field(0, ge=0)


class MixConfig(Strict):
    """MixUp or CutMix on a share `p` of training batches, mixing weight ~ Beta(alpha, alpha)."""

    p: float = Field(0.5, ge=0.0, le=1.0)
    alpha: float = Field(0.2, gt=0.0)


class RandAugmentConfig(Strict):
    """RandAugment (Cubuk et al. 2020): `n` random operations per image at magnitude `m`."""

    n: int = Field(2, ge=1, le=10)
    m: int = Field(9, ge=0, le=30)


class AugmentConfig(Strict):
    """Train-time augmentation of image batches (kornia, on the model's device)."""

    #: RandomResizedCrop area range; null turns cropping off.
    crop_scale: tuple[float, float] | None = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    flip: bool = True
    #: Colour jitter strength (brightness, contrast, saturation; hue at a quarter of it).
    color_jitter: float = Field(0.0, ge=0.0, le=1.0)
    randaugment: RandAugmentConfig | None = None
    mixup: MixConfig | None = None
    cutmix: MixConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _mix_shorthand(cls, value: Any) -> Any:
        """`mixup: 0.5` is `mixup: {p: 0.5}`; `cutmix: true` uses the defaults."""
        if isinstance(value, dict):
            value = dict(value)
            for key in ("mixup", "cutmix", "randaugment"):
                raw = value.get(key)
                if raw is True:
                    value[key] = {}
                elif raw is False:
                    value[key] = None
                elif (key != "randaugment" and isinstance(raw, int | float)
                      and not isinstance(raw, bool)):
                    value[key] = {"p": raw}
        return value

    @model_validator(mode="after")
    def _valid_ranges(self) -> AugmentConfig:
        if self.crop_scale is not None and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError("augment.crop_scale must be [low, high] with 0 < low <= high <= 1")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError("augment.crop_ratio must be [low, high] with 0 < low <= high")
        if self.mixup and self.cutmix and self.mixup.p + self.cutmix.p > 1.0:
            raise ValueError("augment.mixup.p + augment.cutmix.p must be at most 1 (a batch "
                             "gets MixUp, CutMix or neither)")
        return self
