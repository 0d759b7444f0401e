"""What a model kind can do, declared as data: never match a kind's name, ask its capabilities.

Each built-in kind's declaration lives here as data (no torch, no model code), so the recipe
can validate `model.backbone` against it without importing a model; the kind classes in
`models/` point their `capabilities` at the same objects, and a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fitclass.registry import Registry

Modality = Literal["text", "image", "any"]


@dataclass(frozen=True)
class Capabilities:
    """The abilities one model kind declares."""

    #: fitted by `fitclass train` from a recipe; False for an ensemble (built from runs)
    trainable: bool = True
    #: fine-tuned by the training loop (a torch module); False for classical/ensemble kinds
    neural: bool = True
    #: the inputs it reads: "text", "image", or "any" (an ensemble takes its members')
    modality: Modality = "text"
    #: `encode()` gives features that may be cached on disk (head-only stages, linear probe)
    cacheable_features: bool = False
    #: has blocks that `train.stages` can unfreeze top-down and `train.layer_decay` can scale
    block_structure: bool = True
    #: another `train.seed` trains a different model (init, data order, dropout); a kind whose
    #: fit is deterministic says False, and `train --seeds N` refuses it
    seed_sensitive: bool = True
    #: supports `noise.coteaching` (two peer networks)
    coteaching: bool = False
    #: supports `self_training` (pseudo-labels from its own predictions)
    self_training: bool = False
    #: supports `imbalance.minority_augment`
    minority_augmentation: bool = False
    #: `fitclass export --onnx` can export it
    onnx_export: bool = False
    #: `fitclass pretrain` can continue its masked-language-model training (a Hugging Face
    #: text encoder whose backbone names its weights' `source`)
    masked_lm: bool = False
    #: rows of different lengths can be packed side by side into one sequence, attention
    #: kept within each row (`train.packing`); the encoder a run loads is probed as well
    packing: bool = False
    #: `model.peft` can wrap it (LoRA/IA3 adapters through the `peft` library: a Hugging
    #: Face transformer whose Linear layers the adapters attach to)
    peft: bool = False
    #: a fast classical baseline the report sets a run beside (same data)
    report_baseline: bool = False
    #: `model` keys only this kind reads (refused for other kinds)
    model_keys: tuple[str, ...] = ()


#: A Hugging Face text encoder fine-tuned with a classification head (minilm, hub ids).
TEXT_TRANSFORMER = Capabilities(cacheable_features=True, coteaching=True, self_training=True,
                                minority_augmentation=True, onnx_export=True, masked_lm=True,
                                packing=True, peft=True)
#: A Hugging Face or built-in image classifier (resnet-tiny, ViT/ConvNeXt ids and folders).
IMAGE_MODEL = Capabilities(modality="image")
#: A timm image model (`timm:<name>`).
TIMM_IMAGE = Capabilities(modality="image")
#: TF-IDF features and a linear head: deterministic, no layers, no checkpoints.
TFIDF = Capabilities(neural=False, block_structure=False, seed_sensitive=False,
                     self_training=True, minority_augmentation=True, report_baseline=True,
                     model_keys=("analyzer", "ngram_range", "max_features", "C", "classifier"))
#: A run made of runs: combines its members' probabilities.
ENSEMBLE = Capabilities(trainable=False, neural=False, modality="any", block_structure=False,
                        seed_sensitive=False)

#: Recipe backbone names (and claimed sources) to their kind's declared capabilities.
DECLARED: Registry[Capabilities] = Registry("backbone", "model.backbone")
DECLARED.add("minilm", TEXT_TRANSFORMER)
DECLARED.add("tfidf", TFIDF)
DECLARED.add("resnet-tiny", IMAGE_MODEL)
DECLARED.add("ensemble", ENSEMBLE)
DECLARED.claim(lambda name: name.startswith("timm:"))(TIMM_IMAGE)


def capabilities_for(backbone: str) -> Capabilities | None:
    """The declared capabilities of `model.backbone`; None for a Hugging Face id or folder,
    whose kind (text or image) is known only once its config is read."""
    return DECLARED.find(backbone)


def kinds_reading(key: str) -> list[str]:
    """The declared backbone names whose kind alone reads `model.<key>`."""
    return [name for name, caps in DECLARED.items() if key in caps.model_keys]


def kind_only_keys() -> set[str]:
    """Every `model` key that only some kinds read."""
    return {key for _, caps in DECLARED.items() for key in caps.model_keys}
