"""`Decision`: how probabilities become labels in a run, fitted on validation (by the task,
`Task.fit_decision`), saved in `decision.json`, and applied by predict, evaluate and every
report."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from fitclass.decide import calibration, priors, thresholds
from fitclass.decide.offsets import predict_with_offsets
from fitclass.errors import RecipeError
from fitclass.target_kinds import TargetKind, kind_for


@dataclass
class HeldOut:
    """Labels for the rows a decision was fitted on, each decided without that row
    (cross-fitted offsets): how those rows are scored. Kept in memory, never saved."""

    targets: np.ndarray
    probs: np.ndarray
    predictions: np.ndarray

    def covers(self, targets: np.ndarray, probs: np.ndarray) -> bool:
        return (np.shape(probs) == self.probs.shape and np.array_equal(probs, self.probs)
                and np.array_equal(np.asarray(targets), self.targets))


@dataclass
class Decision:
    """Calibration (temperature, prior correction), then thresholds, or argmax (with
    per-class log-probability offsets fitted for a metric) or least cost."""

    multilabel: bool
    temperature: float = 1.0
    thresholds: list[float] | None = None
    at_least_one: bool = False
    class_weights: list[float] | None = None  # prior correction factors (multi-class)
    cost_matrix: list[list[float]] | None = None
    offsets: list[float] | None = None  # added to log-probabilities (decision.optimize)
    report: dict[str, Any] = field(default_factory=dict)
    held_out: HeldOut | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> TargetKind:
        """The targets' kind this decision was fitted for (saved as `multilabel`)."""
        return kind_for(self.multilabel)

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities after temperature scaling and prior correction."""
        probs = calibration.scale(probs, self.temperature, self.kind)
        if self.class_weights is not None:
            probs = priors.reweight(probs, np.asarray(self.class_weights))
        return probs

    def predict(self, calibrated: np.ndarray) -> np.ndarray:
        """Label indices (multi-class) or a 0/1 matrix (multi-label) from calibrated probs."""
        if self.multilabel:
            cut = np.asarray(self.thresholds if self.thresholds is not None
                             else [0.5] * calibrated.shape[1])
            return thresholds.apply_thresholds(calibrated, cut, self.at_least_one)
        if self.cost_matrix is not None:
            return priors.least_cost(calibrated, np.asarray(self.cost_matrix))
        if self.offsets is not None:
            return predict_with_offsets(calibrated, np.asarray(self.offsets))
        return calibrated.argmax(axis=1)

    def predictions_on(self, targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The labels that score rows with known targets: on the very rows the offsets were
        fitted on, each row's cross-fitted label (so no row is scored by offsets fitted on
        it); on any other rows, the decision's own labels."""
        if self.held_out is not None and self.held_out.covers(targets, probs):
            return self.held_out.predictions
        return self.predict(self.calibrate(probs))

    def metrics_sections(self) -> dict[str, Any]:
        """The decision's part of metrics.json: `calibration` (ECE before/after, temperature)
        and, with decision.optimize, `optimize` (offsets, scores, class shares)."""
        sections: dict[str, Any] = {"calibration": {k: v for k, v in self.report.items()
                                                    if k != "optimize"}}
        if "optimize" in self.report:
            sections["optimize"] = self.report["optimize"]
        return sections

    @property
    def warnings(self) -> list[str]:
        """What the user should know about how the decision was fitted."""
        return [str(w) for w in self.report.get("optimize", {}).get("warnings", [])]

    def to_dict(self) -> dict[str, Any]:
        """What decision.json holds (everything but the in-memory `held_out`)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if f.name != "held_out"}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Decision:
        """A saved decision; files from before `offsets` existed load with none."""
        return cls(**payload)


def _plain(value: Any) -> Any:
    """A JSON-ready copy (lists and dicts copied, so the file never aliases the object)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def prior_factors(setting: str | dict[str, float] | None, train_priors: np.ndarray,
                   class_names: list[str]) -> list[float] | None:
    if setting in (None, "none"):
        return None
    if setting == "uniform":
        target = np.full(len(class_names), 1.0 / len(class_names))
    elif isinstance(setting, dict):
        unknown = sorted(set(setting) - set(class_names))
        if unknown:
            raise RecipeError(f"decision.prior_correction: {unknown} are not classes; "
                              f"classes are {class_names}")
        target = np.array([float(setting.get(name, 0.0)) for name in class_names])
        if target.sum() <= 0:
            raise RecipeError("decision.prior_correction: target shares must sum to > 0")
        target = target / target.sum()
    else:
        raise RecipeError(f"decision.prior_correction: {setting!r} is not none, uniform or a "
                          f"mapping class -> share")
    return priors.prior_weights(train_priors, target).tolist()


def checked_costs(matrix: list[list[float]], num_classes: int) -> list[list[float]]:
    """`decision.cost_matrix`, refused unless it is classes x classes."""
    array = np.asarray(matrix, dtype=float)
    if array.shape != (num_classes, num_classes):
        raise RecipeError(f"decision.cost_matrix: expected {num_classes}x{num_classes} "
                          f"(rows = true class, columns = predicted), got {array.shape}")
    return array.tolist()
