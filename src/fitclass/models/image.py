"""Image classifiers: a Hugging Face vision encoder with our pooled linear head.

`model.backbone` is a Hugging Face image-classification model id or folder (ResNet, ConvNeXt,
ViT...; its `preprocessor_config.json` gives size, mean and std), `resnet-tiny` (a small
ResNet built from `ResNetConfig` with random weights, for offline use; needs
`model.pretrained: false`); `timm:<name>` lives in `models/timm_image.py`.
Normalisation and the evaluation geometry live inside the module (`data/image_view.py`;
mean/std buffers), so training, averaging's BatchNorm recalibration and prediction all feed
it the decoded-image cache's stored uint8 pixels (or augmented [0, 1] batches) and cannot
disagree. Pixels come from the cache (`data/image_cache.py`): decoded once, memory-mapped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from safetensors.torch import save_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from fitclass.capabilities import IMAGE_MODEL
from fitclass.contracts.fit import FitContext, FitResult
from fitclass.data.image_cache import PixelRows, image_store, stored_side
from fitclass.data.image_io import Preprocess
from fitclass.data.image_view import model_view
from fitclass.data.table import TextInput
from fitclass.errors import DataError, RecipeError
from fitclass.files import damaged, read_json_object
from fitclass.models.base import MODEL_INFO, Backbone
from fitclass.models.loading import (
    WEIGHTS,
    checked_preprocess,
    load_weights,
    read_model_info,
    require_files,
)
from fitclass.models.neural import NeuralClassifier, TrainingData
from fitclass.models.registry import register_backbone, register_kind, register_source
from fitclass.precision import inference, load_pretrained
from fitclass.recipe import ModelConfig

if TYPE_CHECKING:
    from fitclass.recipe import Recipe

PROCESSOR_CONFIG = "preprocessor_config.json"
#: The `resnet-tiny` architecture: four basic-block stages, about 0.3M parameters.
RESNET_TINY: dict[str, Any] = {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128],
                               "depths": [1, 1, 1, 1], "layer_type": "basic",
                               "downsample_in_first_stage": False}
#: Side for random-weight models when the recipe gives no `model.image_size`.
RANDOM_SIZE = 32
#: DataLoader worker processes on an accelerator (they gather stored rows and pin them
#: while the device computes); on the CPU the main process gathers, leaving the cores to
#: the model's threads.
ACCELERATOR_WORKERS = 4


class ImageModule(nn.Module):
    """Normalise, encode, pool, dropout, linear head. Returns logits (and loss)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoder: PreTrainedModel, num_labels: int, dropout: float,
                 preprocess: Preprocess) -> None:
        super().__init__()
        self.encoder = encoder
        self.size, self.crop_pct = preprocess.size, preprocess.crop_pct
        self.register_buffer("mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.std).view(1, 3, 1, 1))
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():  # the pooled width, whatever the architecture
            was_training = encoder.training
            encoder.eval()
            try:
                width = self.pool(torch.zeros(1, 3, preprocess.size, preprocess.size)).shape[1]
            except RuntimeError as error:
                raise RecipeError(
                    f"the image encoder cannot take {preprocess.size}x{preprocess.size} images "
                    f"({error}); raise model.image_size") from None
            encoder.train(was_training)
        self.head = nn.Linear(int(width), num_labels)

    def pool(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled features of stored uint8 pixels (NHWC, any side: the evaluation geometry
        brings them to the model's side), uint8 NCHW, or floats in [0, 1] at the side."""
        x = model_view(pixel_values, self.size, self.crop_pct)
        return self.encode((x - self.mean) / self.std).flatten(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of normalised pixels (the HF encoder's pooler output)."""
        out = self.encoder(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:  # ViT-style encoders: the class token of the last layer
            pooled = out.last_hidden_state[:, 0]
        return torch.as_tensor(pooled)

    def forward(self, pixel_values: torch.Tensor,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.head(self.dropout(self.pool(pixel_values)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.float(), labels)
        return out


class ImageRows(torch.utils.data.Dataset[dict[str, Any]]):
    """Training rows: stored pixels read through the cache's memory map (uint8, side x side
    x 3; never decoded here), the target and the row position."""

    def __init__(self, pixels: PixelRows, targets: np.ndarray) -> None:
        self.pixels, self.targets = pixels, targets

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"pixel_values": self.pixels[index], "labels": self.targets[index],
                "row": index}


def collate_images(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """One batch; the pixels stacked by numpy (one memcpy per row), not `torch.stack`,
    whose parallel copy waits on OpenMP barriers when the cores are busy (0.4 s for 24
    images on the 2 shared cores, against 3 ms)."""
    return {"pixel_values": torch.from_numpy(np.stack([row["pixel_values"] for row in rows])),
            "labels": torch.as_tensor(np.asarray([row["labels"] for row in rows])),
            "row": torch.as_tensor([row["row"] for row in rows])}


class ImageClassifier(NeuralClassifier):
    """An `ImageModule` and its preprocessing; inputs are image file paths."""

    kind = "image"
    capabilities = IMAGE_MODEL
    module: ImageModule

    def __init__(self, class_names: Sequence[str], module: ImageModule, preprocess: Preprocess,
                 multilabel: bool = False) -> None:
        super().__init__(class_names)
        self.module, self.preprocess, self.multilabel = module, preprocess, multilabel

    @property
    def stored_side(self) -> int:
        """The side of the squares the decoded-image cache keeps for this model."""
        return stored_side(self.preprocess.size, self.preprocess.crop_pct)

    def pixel_side(self) -> int:
        return self.stored_side

    def _pixels(self, paths: Sequence[str]) -> np.ndarray:
        """Stored pixels of `paths`: from the cache, or the scratch store where scoring's
        scan put the files it lacks (predicting on new images does not grow the cache)."""
        return image_store(self.stored_side).rows(paths, write=False).take(slice(None))

    def logits(self, inputs: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        paths = [_path(value) for value in inputs]
        out = np.zeros((len(paths), len(self.class_names)), dtype=np.float32)
        with inference(self.module, self.policy) as device:
            for start in range(0, len(paths), batch_size):
                pixels = torch.from_numpy(self._pixels(paths[start:start + batch_size]))
                logits = self.module(pixel_values=pixels.to(device))["logits"]
                out[start:start + len(pixels)] = logits.float().cpu().numpy()
        return out

    def training_data(self, inputs: Sequence[TextInput], targets: np.ndarray,
                      recipe: Recipe) -> TrainingData:
        """Rows read from the decoded-image cache (the data checks' scan filled it; files it
        lacks are decoded and stored now, once), moved as uint8 and augmented per batch on
        the model's device; on an accelerator, persistent workers gather and pin them."""
        from fitclass.data.image_augment import BatchAugmenter

        paths = [_path(value) for value in inputs]
        threads = recipe.data.images.threads if recipe.data.images is not None else 0
        pixels = image_store(self.stored_side).rows(paths, threads)
        accelerated = self.policy.device.type != "cpu"
        workers = max(1, min(ACCELERATOR_WORKERS, (os.cpu_count() or 2) - 1)) \
            if accelerated else 0
        augment = BatchAugmenter(recipe.augment, self.preprocess.size, len(self.class_names),
                                 recipe.train.seed, self.preprocess.crop_pct)
        return TrainingData(rows=ImageRows(pixels, targets),
                            lengths=np.ones(len(paths), dtype=int), collate=collate_images,
                            transform=augment, workers=workers,
                            pin_memory=self.policy.device.type == "cuda")

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        self.save_architecture(model_dir)
        (model_dir / PROCESSOR_CONFIG).write_text(
            json.dumps(self.preprocess.to_processor_config(), indent=2), encoding="utf-8")
        save_model(self.module, str(model_dir / WEIGHTS))
        (model_dir / MODEL_INFO).write_text(json.dumps(self.model_info(), indent=2),
                                            encoding="utf-8")

    def save_architecture(self, model_dir: Path) -> None:
        """What rebuilds the encoder without weights: the HF config."""
        self.module.encoder.config.save_pretrained(model_dir)

    def model_info(self) -> dict[str, Any]:
        return {"kind": self.kind, "class_names": self.class_names,
                "dropout": self.module.dropout.p, "multilabel": self.multilabel}


def _path(value: TextInput) -> str:
    if not isinstance(value, str):
        raise DataError(f"image inputs are file paths; got a text pair {value!r}")
    return value


def saved_preprocess(model_dir: Path) -> Preprocess:
    """The preprocessing a saved image model was trained with, checked to be safe to run."""
    path = model_dir / PROCESSOR_CONFIG
    config = read_json_object(path, {"image_mean": (list, int, float),
                                     "image_std": (list, int, float)})
    try:
        preprocess = Preprocess.from_processor_config(config, str(model_dir))
    except (DataError, TypeError, ValueError) as error:
        raise damaged(path, f"cannot be used ({error})") from None
    return checked_preprocess(preprocess, model_dir)


def read_processor_config(source: str) -> dict[str, Any]:
    """The model's `preprocessor_config.json` from its folder or the hub cache."""
    folder = Path(source)
    if folder.is_dir():
        path: str | None = str(folder / PROCESSOR_CONFIG)
        if not Path(str(path)).is_file():
            raise RecipeError(f"{folder}: no {PROCESSOR_CONFIG}; an image model folder needs "
                              f"one with image_mean, image_std and size (save the model's "
                              f"image processor with it)")
    else:
        from transformers.utils import cached_file

        try:
            path = cached_file(source, PROCESSOR_CONFIG)
        except (OSError, ValueError) as error:
            raise RecipeError(f"model.backbone {source!r}: its {PROCESSOR_CONFIG} could not be "
                              f"loaded ({error}); give a local model folder") from None
    config: dict[str, Any] = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    return config


@register_kind
class ImageBackbone(Backbone):
    """Fine-tunes an image encoder with fitclass's loop (`training/loop.py`)."""

    kind = "image"
    capabilities = IMAGE_MODEL
    source: str

    def __init__(self, source: str, config: ModelConfig,
                 architecture: PretrainedConfig | None = None) -> None:
        self.source, self.config = source, config
        self.architecture = architecture  # set: built from this config with random weights

    def pixel_side(self) -> int:
        preprocess = self.preprocess()
        return stored_side(preprocess.size, preprocess.crop_pct)

    def preprocess(self) -> Preprocess:
        size = self.config.image_size
        if self.architecture is not None:  # no pretrained statistics to match
            return Preprocess(size=size or RANDOM_SIZE, mean=(0.5,) * 3, std=(0.5,) * 3)
        return Preprocess.from_processor_config(read_processor_config(self.source),
                                                self.source, size)

    def build(self, class_names: Sequence[str], multilabel: bool = False) -> ImageClassifier:
        """A fresh classifier: the encoder (pretrained unless `pretrained: false`) + new head."""
        preprocess = self.preprocess()
        try:
            if self.architecture is not None:
                model = load_pretrained(AutoModelForImageClassification.from_config,
                                        self.architecture)
            elif self.config.pretrained:
                model = load_pretrained(AutoModelForImageClassification.from_pretrained,
                                        self.source)
            else:
                model = load_pretrained(AutoModelForImageClassification.from_config,
                                        AutoConfig.from_pretrained(self.source))
        except OSError as error:
            raise RecipeError(
                f"model.backbone {self.source!r}: could not load it as a Hugging Face image "
                f"model folder or hub id ({error}); give a folder with config.json, "
                f"{PROCESSOR_CONFIG} and weights (or set model.pretrained: false)") from None
        module = ImageModule(cast(PreTrainedModel, model.base_model), len(class_names),
                             self.config.dropout, preprocess)
        return ImageClassifier(class_names, module, preprocess, multilabel)

    def fit(self, context: FitContext) -> FitResult:
        if context.recipe.data.images is None:
            raise RecipeError(f"model.backbone {self.source!r} is an image model; set "
                              f"data.images (see docs/recipe.md) to train it on images")
        return context.train_neural(lambda: self._build_for_training(context))

    def _build_for_training(self, context: FitContext) -> ImageClassifier:
        classifier = self.build(context.class_names, context.task.multilabel)
        if torch.cuda.is_available():  # convolutions run faster channels-last with AMP
            classifier.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return classifier

    @classmethod
    def load(cls, model_dir: Path) -> ImageClassifier:
        info = read_model_info(model_dir, {"dropout": (int, float)})
        require_files(model_dir, "config.json", PROCESSOR_CONFIG, WEIGHTS)
        preprocess = saved_preprocess(model_dir)
        model = load_pretrained(AutoModelForImageClassification.from_config,
                                AutoConfig.from_pretrained(model_dir))
        module = ImageModule(cast(PreTrainedModel, model.base_model), len(info["class_names"]),
                             info["dropout"], preprocess)
        load_weights(module, model_dir / WEIGHTS)
        module.eval()
        return ImageClassifier(info["class_names"], module, preprocess,
                               bool(info.get("multilabel", False)))


def model_type(source: str) -> str | None:
    """`model_type` from a model folder's (or the hub cache's) config.json, if there is one."""
    folder = Path(source)
    try:
        if folder.is_dir():
            path: str | None = str(folder / "config.json")
        else:
            from transformers.utils import cached_file

            path = cached_file(source, "config.json")
        if path is None or not Path(path).is_file():
            return None
        value = json.loads(Path(path).read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    return str(value) if value else None


def is_image_model(source: str) -> bool:
    """An HF id or folder whose architecture has an image-classification model."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    )

    kind = model_type(source)
    return kind is not None and kind in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES


@register_source(is_image_model)
def hf_image_model(source: str, config: ModelConfig) -> Backbone:
    return ImageBackbone(source, config)


@register_backbone("resnet-tiny")
def resnet_tiny(config: ModelConfig) -> Backbone:
    """A small ResNet from `ResNetConfig` with random weights (no download, CPU-friendly)."""
    if config.pretrained:
        raise RecipeError("model.backbone 'resnet-tiny' has no pretrained weights (it is built "
                          "from a config); set model.pretrained: false")
    from transformers import ResNetConfig

    return ImageBackbone("resnet-tiny", config, ResNetConfig(**RESNET_TINY))
