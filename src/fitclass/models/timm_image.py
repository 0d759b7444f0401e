"""timm image backbones: `model.backbone: timm:<name>` (timm:resnet50, timm:convnext_tiny...).

The encoder is `timm.create_model(name, pretrained=..., num_classes=0)`, which returns pooled
features without timm's classifier; fitclass puts its own dropout and linear head on top, so
stages, layer-wise learning rates, SWA with BatchNorm recalibration, decisions, ensembles,
predict and evaluate work exactly as for Hugging Face image models (`models/image.py`).

- Size, mean, std and crop share come from timm's own pretrained config
  (`timm.data.resolve_model_data_config`), never from fitclass; `model.image_size` overrides
  the side.
- Depths for `train.stages` and `train.layer_decay` come from the model's own description
  of its blocks (`group_matcher`, via `timm.models.group_parameters`), since timm's
  architectures keep their blocks in many shapes (`layer1..4`, `stages`, `blocks`).
- Pretrained weights come from timm's usual cache (`HF_HUB_OFFLINE=1` keeps it offline).
- timm needs torchvision: where it does not import, the recipe is refused with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch
from torch import nn
from transformers import PreTrainedModel

from fitclass.capabilities import TIMM_IMAGE
from fitclass.data.image_io import Preprocess
from fitclass.errors import RecipeError
from fitclass.files import damaged
from fitclass.models.base import MODEL_INFO
from fitclass.models.image import (
    PROCESSOR_CONFIG,
    ImageBackbone,
    ImageClassifier,
    ImageModule,
    saved_preprocess,
)
from fitclass.models.loading import WEIGHTS, load_weights, read_model_info, require_files
from fitclass.models.registry import register_kind, register_source
from fitclass.recipe import ModelConfig

PREFIX = "timm:"


def import_timm(source: str) -> ModuleType:
    """The `timm` module, or a `RecipeError` saying why it does not import here."""
    try:
        import timm
    except Exception as error:  # timm fails with ImportError or torchvision's RuntimeError
        raise RecipeError(
            f"model.backbone {source!r}: timm does not import here ({type(error).__name__}: "
            f"{error}); install timm and a matching torchvision, or use a Hugging Face image "
            f"model id/folder or resnet-tiny") from None
    return cast(ModuleType, timm)


def timm_preprocess(timm: ModuleType, encoder: nn.Module, size: int | None) -> Preprocess:
    """Preprocessing from timm's resolved data config (input_size, mean, std, crop_pct)."""
    data = timm.data.resolve_model_data_config(encoder)
    side = size or int(data["input_size"][-1])
    return Preprocess(size=side, mean=cast(Any, tuple(float(v) for v in data["mean"])),
                      std=cast(Any, tuple(float(v) for v in data["std"])),
                      crop_pct=float(data.get("crop_pct") or 1.0))


class TimmModule(ImageModule):
    """Normalise, timm encoder (pooled features), dropout, linear head."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """timm models built with `num_classes=0` return pooled features directly."""
        return torch.as_tensor(self.encoder(x))

    def block_depths(self) -> tuple[dict[str, int], int]:
        """Depth of every parameter (0 = stem) from the encoder's `group_matcher`, and the
        top depth (the head). Read by `training.stages` instead of its generic search."""
        from timm.models import group_parameters

        encoder = cast(Any, self.encoder)
        groups: dict[str, int] = {}
        if hasattr(encoder, "group_matcher"):
            groups = group_parameters(encoder, encoder.group_matcher(coarse=False),
                                      reverse=True)
        top = max(groups.values(), default=0) + 1
        depths = {f"encoder.{name}": groups.get(name, top - 1)
                  for name, _ in encoder.named_parameters()}
        depths.update({name: top for name, _ in self.named_parameters()
                       if not name.startswith("encoder.")})
        return depths, top


class TimmClassifier(ImageClassifier):
    """A `TimmModule` and its preprocessing; saved with the timm architecture name."""

    kind = "timm-image"
    capabilities = TIMM_IMAGE
    module: TimmModule

    def __init__(self, class_names: Sequence[str], module: TimmModule, preprocess: Preprocess,
                 multilabel: bool, architecture: str) -> None:
        super().__init__(class_names, module, preprocess, multilabel)
        self.architecture = architecture

    def save_architecture(self, model_dir: Path) -> None:
        """Nothing to write: timm rebuilds the encoder from its name (in `model_info`)."""

    def model_info(self) -> dict[str, Any]:
        return super().model_info() | {"timm_architecture": self.architecture}


@register_kind
class TimmBackbone(ImageBackbone):
    """Fine-tunes a timm model with fitclass's loop (fit is `ImageBackbone.fit`)."""

    kind = "timm-image"
    capabilities = TIMM_IMAGE

    def __init__(self, source: str, config: ModelConfig) -> None:
        super().__init__(source, config)
        self.timm = import_timm(source)
        self.name = source[len(PREFIX):]
        if not self.name:
            raise RecipeError(f"model.backbone {source!r}: name the timm model after "
                              f"'timm:', e.g. timm:resnet50")

    def create(self, pretrained: bool) -> nn.Module:
        try:
            return cast(nn.Module, self.timm.create_model(self.name, pretrained=pretrained,
                                                          num_classes=0))
        except Exception as error:  # unknown name, or weights missing from the cache
            raise RecipeError(
                f"model.backbone {self.source!r}: timm could not create {self.name!r} "
                f"(pretrained={pretrained}): {type(error).__name__}: {error}. Check the name "
                f"(timm.list_models()), or cache its weights first, or set "
                f"model.pretrained: false") from None

    def preprocess(self) -> Preprocess:
        return timm_preprocess(self.timm, self.create(False), self.config.image_size)

    def build(self, class_names: Sequence[str], multilabel: bool = False) -> TimmClassifier:
        encoder = self.create(self.config.pretrained)
        preprocess = timm_preprocess(self.timm, encoder, self.config.image_size)
        module = TimmModule(cast(PreTrainedModel, encoder), len(class_names),
                            self.config.dropout, preprocess)
        return TimmClassifier(class_names, module, preprocess, multilabel, self.name)

    @classmethod
    def load(cls, model_dir: Path) -> TimmClassifier:
        info = read_model_info(model_dir, {"timm_architecture": str, "dropout": (int, float)})
        name = info["timm_architecture"]
        if not re.fullmatch(r"[A-Za-z0-9_.]+", name):  # no `hf-hub:`/`local-dir:` sources
            raise damaged(model_dir / MODEL_INFO, f"names timm architecture {name!r}; expected "
                                                  f"a plain timm model name")
        require_files(model_dir, PROCESSOR_CONFIG, WEIGHTS)
        timm = import_timm(PREFIX + name)
        preprocess = saved_preprocess(model_dir)
        encoder = timm.create_model(name, pretrained=False, num_classes=0)
        module = TimmModule(encoder, len(info["class_names"]), info["dropout"], preprocess)
        load_weights(module, model_dir / WEIGHTS)
        module.eval()
        return TimmClassifier(info["class_names"], module, preprocess,
                              bool(info.get("multilabel", False)), name)


@register_source(lambda name: name.startswith(PREFIX))
def timm_model(source: str, config: ModelConfig) -> TimmBackbone:
    return TimmBackbone(source, config)
