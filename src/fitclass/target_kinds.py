"""The two kinds of targets behind one interface: class indices (multi-class, shape (rows,))
or a 0/1 matrix (multi-label, shape (rows, labels)).

Every array computation whose form depends on the kind (counting classes, weighting rows,
strata for stratified splits, logits and probabilities, log-loss, label text) is a method
here, so no caller tells the kinds apart by an array's shape or a flag of its own. A `Task`
(`fitclass.tasks`) owns its kind (`task.kind`) and adds what needs torch or the metrics;
modules below `tasks` (`data`, `decide`, `metrics`) are handed the kind. Plain numpy: the
run listing and the CLI import this without torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_softmax, softmax

EPS = 1e-7
#: A row's label as text holds: a class name, or a multi-label row's names.
LabelValue = str | tuple[str, ...]


class TargetKind(ABC):
    """What differs between multi-class and multi-label targets, for arrays."""

    name: ClassVar[str]
    multilabel: ClassVar[bool]
    #: How `label_text` joins a row's names (`data.label_sep` of a CSV it writes).
    label_sep: ClassVar[str | None]

    @abstractmethod
    def class_counts(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        """Rows per class (multi-class) or positives per label (multi-label), as floats."""

    @abstractmethod
    def priors(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        """Class shares (multi-class) or positive rates per label (multi-label)."""

    @abstractmethod
    def rows_by_class(self, targets: np.ndarray) -> list[np.ndarray]:
        """Row indices of each class (multi-class) or of each label's positives."""

    @abstractmethod
    def row_weights(self, targets: np.ndarray) -> np.ndarray:
        """Inverse class frequency per row (multi-label: the rarest label's; rows without
        labels count as a class of their own)."""

    @abstractmethod
    def strata(self, targets: np.ndarray) -> np.ndarray:
        """One stratum per row for stratified splits: the class, or the rarest label."""

    @abstractmethod
    def to_logits(self, probs: np.ndarray) -> np.ndarray:
        """Logits that reproduce `probs` (up to a per-row constant for softmax)."""

    @abstractmethod
    def activate(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from logits: softmax over classes, or a sigmoid per label."""

    @abstractmethod
    def log_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        """Mean negative log-likelihood of `targets` under `probs` (clipped to EPS)."""

    @abstractmethod
    def nll(self, targets: np.ndarray, logits: np.ndarray) -> float:
        """Mean negative log-likelihood of `targets` under `logits`."""

    @abstractmethod
    def confidence_and_correct(self, targets: np.ndarray,
                               probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibration pairs: top-label confidence and whether it was right (multi-class),
        or every label's probability and its 0/1 outcome (multi-label)."""

    @abstractmethod
    def indicator(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        """Targets as a 0/1 matrix, one column per class."""

    @abstractmethod
    def restore(self, saved: np.ndarray) -> np.ndarray:
        """Targets saved as an array of floats (`valid_probs.safetensors`) in this kind's
        form: class indices as ints, a 0/1 matrix as it is."""

    @abstractmethod
    def label_text(self, label: LabelValue) -> str:
        """A row's label as written in CSV files (multi-label: names joined with '|')."""

    @abstractmethod
    def parse_label(self, text: object) -> LabelValue:
        """A label read back from `label_text` (multi-label: an empty cell is no label)."""


class MulticlassTargets(TargetKind):
    name = "multiclass"
    multilabel = False
    label_sep = None

    def class_counts(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        return np.bincount(targets, minlength=num_labels).astype(float)

    def priors(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        counts = self.class_counts(targets, num_labels)
        return counts / max(counts.sum(), 1.0)

    def rows_by_class(self, targets: np.ndarray) -> list[np.ndarray]:
        return [np.flatnonzero(targets == c) for c in range(int(targets.max()) + 1)]

    def row_weights(self, targets: np.ndarray) -> np.ndarray:
        counts = np.bincount(targets)
        return 1.0 / counts[targets]

    def strata(self, targets: np.ndarray) -> np.ndarray:
        return targets

    def to_logits(self, probs: np.ndarray) -> np.ndarray:
        return np.log(np.clip(probs, EPS, 1 - EPS))

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, axis=1)

    def log_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        clipped = np.clip(probs, EPS, 1 - EPS)
        return float(-np.log(clipped[np.arange(len(targets)), targets]).mean())

    def nll(self, targets: np.ndarray, logits: np.ndarray) -> float:
        return float(-log_softmax(logits, axis=1)[np.arange(len(targets)), targets].mean())

    def confidence_and_correct(self, targets: np.ndarray,
                               probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return probs.max(axis=1), (probs.argmax(axis=1) == targets).astype(float)

    def indicator(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        return np.eye(num_labels)[targets]

    def restore(self, saved: np.ndarray) -> np.ndarray:
        return saved.astype(int)

    def label_text(self, label: LabelValue) -> str:
        return str(label)

    def parse_label(self, text: object) -> LabelValue:
        return str(text)


class MultilabelTargets(TargetKind):
    name = "multilabel"
    multilabel = True
    label_sep = "|"

    def class_counts(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        return targets.sum(axis=0).astype(float)

    def priors(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        return self.class_counts(targets, num_labels) / len(targets)

    def rows_by_class(self, targets: np.ndarray) -> list[np.ndarray]:
        return [np.flatnonzero(targets[:, c]) for c in range(targets.shape[1])]

    def row_weights(self, targets: np.ndarray) -> np.ndarray:
        counts = np.maximum(targets.sum(axis=0), 1.0)
        per_label = np.where(targets > 0, 1.0 / counts, 0.0).max(axis=1)
        empty = per_label == 0
        per_label[empty] = 1.0 / max(int(empty.sum()), 1)
        return per_label

    def strata(self, targets: np.ndarray) -> np.ndarray:
        """The rarest label of each row; rows without labels form a stratum of their own."""
        counts = targets.sum(axis=0)
        ranked = np.where(targets > 0, counts, np.inf)
        strata = ranked.argmin(axis=1)
        strata[np.isinf(ranked.min(axis=1))] = targets.shape[1]
        return strata

    def to_logits(self, probs: np.ndarray) -> np.ndarray:
        clipped = np.clip(probs, EPS, 1 - EPS)
        return np.log(clipped / (1 - clipped))

    def activate(self, logits: np.ndarray) -> np.ndarray:
        return expit(logits)

    def log_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        clipped = np.clip(probs, EPS, 1 - EPS)
        return float(-(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)).mean())

    def nll(self, targets: np.ndarray, logits: np.ndarray) -> float:
        p = np.clip(expit(logits), EPS, 1 - EPS)
        return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())

    def confidence_and_correct(self, targets: np.ndarray,
                               probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return probs.ravel(), targets.ravel().astype(float)

    def indicator(self, targets: np.ndarray, num_labels: int) -> np.ndarray:
        return targets

    def restore(self, saved: np.ndarray) -> np.ndarray:
        return saved

    def label_text(self, label: LabelValue) -> str:
        return self.label_sep.join(label)

    def parse_label(self, text: object) -> LabelValue:
        return (tuple(p for p in text.split(self.label_sep) if p) if isinstance(text, str)
                else ())


MULTICLASS = MulticlassTargets()
MULTILABEL = MultilabelTargets()
KINDS: dict[str, TargetKind] = {kind.name: kind for kind in (MULTICLASS, MULTILABEL)}


def kind_for(multilabel: bool) -> TargetKind:
    """The kind a saved record names by its `multilabel` flag (decision.json, a model's or a
    combiner's saved info)."""
    return MULTILABEL if multilabel else MULTICLASS


def kind_of(targets: np.ndarray) -> TargetKind:
    """The kind of bare targets, by their shape: only for callers handed targets without
    their task (the training loop's sampler; see `training/samplers.py`)."""
    return MULTILABEL if targets.ndim == 2 else MULTICLASS
