"""`Scored`: one model's outputs on labelled rows, the input of every interval and test.

Targets and predictions have the targets' kind's form (class indices, or a 0/1 matrix for
multi-label); `probs` are the calibrated probabilities the metrics were computed from. The
decision that made `predictions` is held fixed: an interval over rows measures how the
score moves with the rows drawn, not with refitting the decision on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitclass.target_kinds import TargetKind


@dataclass(frozen=True)
class Scored:
    targets: np.ndarray
    probs: np.ndarray
    predictions: np.ndarray
    kind: TargetKind

    def __post_init__(self) -> None:
        # metrics.py computes in float64: float32 probabilities clip 1 - 1e-12 to 1
        object.__setattr__(self, "probs", np.asarray(self.probs, dtype=np.float64))
        rows = {len(self.targets), len(self.probs), len(self.predictions)}
        if len(rows) != 1:
            raise ValueError(f"Scored: targets, probs and predictions differ in rows "
                             f"({len(self.targets)}, {len(self.probs)}, "
                             f"{len(self.predictions)})")

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def columns(self) -> int:
        """Classes (multi-class) or labels (multi-label)."""
        return int(self.probs.shape[1])

    def take(self, rows: np.ndarray) -> Scored:
        """These rows (repeats allowed: a bootstrap resample)."""
        return Scored(self.targets[rows], self.probs[rows], self.predictions[rows], self.kind)

    def correct(self) -> np.ndarray:
        """Per row, whether the prediction is right (multi-label: every label right)."""
        if self.kind.multilabel:
            return np.all(self.predictions.astype(int) == self.targets.astype(int), axis=1)
        return self.predictions.astype(int) == self.targets.astype(int)

    def same_rows(self, other: Scored) -> bool:
        """Whether `other` scores the same targets (the rows of a paired comparison)."""
        return (self.kind is other.kind and self.targets.shape == other.targets.shape
                and bool(np.array_equal(self.targets, other.targets)))


def stacked(first: Scored, second: Scored) -> Scored:
    """`first`'s rows then `second`'s: a paired permutation weighs each row of one of them."""
    return Scored(np.concatenate([first.targets, second.targets]),
                  np.concatenate([first.probs, second.probs]),
                  np.concatenate([first.predictions, second.predictions]), first.kind)
