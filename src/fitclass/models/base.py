"""What every kind of model provides: a fitted `Classifier` and the `Backbone` that fits it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fitclass.data.table import TextInput

if TYPE_CHECKING:
    from fitclass.precision import Policy
    from fitclass.training.context import FitContext, FitResult

#: File in every saved model folder naming its kind, so `load_classifier` finds the loader.
MODEL_INFO = "fitclass_model.json"


class Classifier(ABC):
    """A fitted model: texts in, class probabilities out; saves to and loads from a folder."""

    kind: ClassVar[str]

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)

    @abstractmethod
    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Probabilities, one row per text, columns in `class_names` order."""

    @abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write everything needed to predict into `model_dir` (safetensors/JSON, no pickle)."""

    def use(self, policy: Policy) -> None:  # noqa: B027 (a default, not an abstract step)
        """Run on `policy`'s device and precision (`fitclass.precision`); kinds without a
        torch module ignore it."""


class Backbone(ABC):
    """A registered kind of model: how it is fitted, and how a saved one is loaded."""

    kind: ClassVar[str]
    #: Whether `fit` learns a different model under another `train.seed` (initialisation,
    #: data order, dropout). A kind whose fit is deterministic says False: several seeds
    #: would train identical models, so `train --seeds N` refuses it.
    seed_sensitive: ClassVar[bool] = True

    @abstractmethod
    def fit(self, context: FitContext) -> FitResult:
        """Train on `context.train`, select on `context.valid`, return the best classifier."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path) -> Classifier:
        """Load a classifier that `Classifier.save` wrote."""

    def token_lengths(self, texts: Sequence[TextInput]) -> np.ndarray | None:
        """Lengths in tokens before any truncation (for the data checks); None if not needed."""
        return None

    @property
    def max_length(self) -> int | None:
        """Inputs longer than this many tokens are truncated; None when nothing truncates."""
        return None
