"""What every kind of model provides: a fitted `Classifier` and the `Backbone` that fits it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from fitclass.capabilities import Capabilities
from fitclass.data.table import TextInput

if TYPE_CHECKING:
    from fitclass.contracts.fit import FitContext, FitResult
    from fitclass.contracts.neural import FeatureEncoder
    from fitclass.precision import Policy


class Predictor(Protocol):
    """Anything that predicts class probabilities: a classifier, or a loaded run."""

    class_names: list[str]

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray: ...


class LoadedRun(Protocol):
    """A loaded run as classifiers made of runs see it: its folder, its model, its
    calibrated probabilities (`predict_proba`, its decision applied) and its model's own
    (`model_proba`); `model` predicts in place of the run's own model (an ONNX graph of it),
    the run's decision still applied."""

    path: Path
    class_names: list[str]

    @property
    def model_dir(self) -> Path: ...

    @property
    def classifier(self) -> Classifier: ...

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64, *,
                      model: Classifier | None = None) -> np.ndarray: ...

    def model_proba(self, texts: Sequence[TextInput], batch_size: int = 64,
                    model: Classifier | None = None) -> np.ndarray: ...


class RunLoader(Protocol):
    """Loads a finished run folder as a `LoadedRun` (`fitclass.runs.run.load_run`), on a
    device and in a precision; part of the `RunAccess` passed down to classifiers made of
    runs, so `models/` never imports the run layer above it."""

    def __call__(self, path: Path, *, device: str | None = None,
                 precision: str | None = None) -> LoadedRun: ...


@dataclass(frozen=True)
class RunAccess:
    """What a classifier made of runs (an ensemble) needs of the run layer above `models/`:
    whether a folder is a run (`fitclass.runs.layout.is_run`) and how to load one. The run
    layer binds it (`Classifier.bind_runs`), so the run record's layout stays its own."""

    load: RunLoader
    is_run: Callable[[Path], bool]


class Classifier(ABC):
    """A fitted model: texts in, class probabilities out; saves to and loads from a folder."""

    kind: ClassVar[str]
    #: What the kind that fitted it can do (the same object as its `Backbone`'s).
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)

    @abstractmethod
    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Probabilities, one row per text, columns in `class_names` order."""

    @abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write everything needed to predict into `model_dir` (safetensors/JSON, no pickle)."""

    def bind_runs(self, runs: RunAccess) -> None:
        """Give a classifier made of runs (an ensemble) its access to runs; the others
        ignore it."""
        del runs

    def use(self, policy: Policy) -> None:  # noqa: B027 (a default, not an abstract step)
        """Run on `policy`'s device and precision (`fitclass.precision`); kinds without a
        torch module ignore it."""

    def pixel_side(self) -> int | None:
        """The side of the squares the decoded-image cache keeps for this model's inputs, so
        that scoring's image scan decodes the pixels it reads; None for kinds without
        images (or, like ensembles, without one side of their own)."""
        return None


class Backbone(ABC):
    """A registered kind of model: how it is fitted, and how a saved one is loaded."""

    kind: ClassVar[str]
    #: What this kind can do; callers ask this, never the kind's name.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Where its pretrained weights come from (a hub id or folder); None for kinds without.
    source: str | None = None

    @abstractmethod
    def fit(self, context: FitContext) -> FitResult:
        """Train on `context.train`, select on `context.valid`, return the best classifier."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path) -> Classifier:
        """Load a classifier that `Classifier.save` wrote."""

    def feature_encoder(self) -> FeatureEncoder | None:
        """A fresh network whose `encode` gives cacheable features (kinds that declare
        `cacheable_features`, e.g. for the audit's linear probe); None for the others."""
        return None

    def token_lengths(self, texts: Sequence[TextInput]) -> np.ndarray | None:
        """Lengths in tokens before any truncation (for the data checks); None if not needed."""
        return None

    @property
    def max_length(self) -> int | None:
        """Inputs longer than this many tokens are truncated; None when nothing truncates."""
        return None

    def pixel_side(self) -> int | None:
        """The side of the squares the decoded-image cache stores for this backbone, so the
        data checks' scan fills it (`data/image_cache.py`); None for kinds without images."""
        return None
