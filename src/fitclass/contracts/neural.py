"""What the training loop needs from a neural classifier, whatever its inputs are.

The loop (`training/loop.py`) never tokenizes or decodes: it asks the classifier for its
`TrainingData` (a map dataset, a collate function, row lengths for the sampler, and an
optional on-device batch transform such as image augmentation) and for validation `logits`.
Text classifiers tokenize; image classifiers decode, resize and augment.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from fitclass.contracts.model import Classifier
from fitclass.data.table import TextInput
from fitclass.precision import FP32_CPU, Policy

if TYPE_CHECKING:
    from fitclass.recipe import Recipe

#: A batch of model inputs (without `labels` / `row`).
Batch = dict[str, torch.Tensor]
#: (model inputs, labels) -> (model inputs, training targets), applied on the model's device.
BatchTransform = Callable[[Batch, torch.Tensor], tuple[Batch, torch.Tensor]]


@dataclass(frozen=True)
class Batching:
    """How training rows become batches: `packed` side by side without padding (attention
    kept within each row), `padded` to the longest row rounded up to `pad_multiple`, or
    `fixed` (inputs of one size, such as images); and why (`train.packing`, what the model
    supports). Recorded in the run's environment."""

    mode: Literal["packed", "padded", "fixed"] = "fixed"
    pad_multiple: int = 1
    #: how attention stays within a row of a packed batch, e.g. "block-diagonal mask (sdpa)"
    attention: str | None = None
    reason: str = "inputs of one size: nothing to pad or pack"
    #: token-budget batches take rows of similar length (padding, bins); False where one
    #: sequence holds the whole batch and nothing is wasted (varlen attention)
    group_by_length: bool = True

    @property
    def packed(self) -> bool:
        return self.mode == "packed"

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "attention": self.attention,
                "pad_to_multiple_of": self.pad_multiple, "reason": self.reason,
                "group_by_length": self.group_by_length}


@dataclass
class TrainingData:
    """The training rows in the form one classifier kind trains on."""

    rows: Any  # a map-style dataset; each row a dict with `labels` and `row` (its position)
    lengths: np.ndarray  # per-row lengths for length-grouped sampling (all equal for images)
    collate: Callable[[list[dict[str, Any]]], Batch]
    transform: BatchTransform | None = None
    workers: int = 0  # DataLoader worker processes (decoding); 0 decodes in the main process
    pin_memory: bool = False
    batching: Batching = field(default_factory=Batching)


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Sigmoid per label (multi-label) or softmax over classes."""
    tensor = torch.from_numpy(logits)
    return (torch.sigmoid(tensor) if multilabel else torch.softmax(tensor, dim=-1)).numpy()


class FeatureEncoder(Protocol):
    """A classifier whose head can train on cached encoder features (head-only stages)."""

    #: where the pretrained weights came from (the feature cache key); None when not cached
    feature_source: str | None
    max_length: int
    #: the device and precision its `encode` runs in
    policy: Policy

    def use(self, policy: Policy) -> None: ...

    @property
    def pooling(self) -> str: ...

    @property
    def head(self) -> nn.Module: ...

    @property
    def head_dropout(self) -> nn.Module: ...

    def encode(self, inputs: Sequence[TextInput], batch_size: int = 64) -> np.ndarray: ...


class NeuralClassifier(Classifier):
    """A classifier with a torch `module` that fitclass's training loop fine-tunes."""

    module: nn.Module
    multilabel: bool
    #: How `logits`/`encode` run: autocast precision (the module's device is where it is).
    policy: Policy = FP32_CPU

    def use(self, policy: Policy) -> None:
        """Move the module to `policy.device` (fp32 master weights, eval mode) and run its
        forward passes in `policy.precision`."""
        policy.place(self.module)
        self.policy = policy

    @abstractmethod
    def logits(self, inputs: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Raw scores, one row per input, columns in `class_names` order."""

    @abstractmethod
    def training_data(self, inputs: Sequence[TextInput], targets: np.ndarray,
                      recipe: Recipe) -> TrainingData:
        """The training rows, collate function and batch transform for the loop."""

    def feature_encoder(self) -> FeatureEncoder | None:
        """Itself when its kind declares `cacheable_features`; None otherwise."""
        return None

    def unused_parameters(self) -> list[str]:
        """Names of parameters no forward reaches (a text encoder's pooler, when the head
        reads token states). Training freezes them before DDP wraps the module, so DDP need
        not search the graph for unused parameters every step."""
        return []

    def fixed_parameters(self) -> frozenset[str]:
        """Names of parameters that never train (a backbone's own weights under `model.peft`
        adapters): no stage unfreezes them, the optimiser and averaging leave them out."""
        return frozenset()

    def enable_gradient_checkpointing(self) -> bool:
        """Recompute activations in the backward pass (`train.gradient_checkpointing`);
        False where the module cannot."""
        return False

    def predict_proba(self, inputs: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return probabilities(self.logits(inputs, batch_size), self.multilabel)
