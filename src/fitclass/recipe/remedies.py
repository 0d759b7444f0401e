"""Recipe sections: `imbalance`, `noise`, `self_training` and `decision`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fitclass.recipe.base import DECISION_METRICS, SELECTABLE_METRICS, Strict


class MinorityAugmentConfig(Strict):
    """Extra AEDA-augmented copies of rare classes' training rows (never validation rows).

    `ratio`: extra copies per row, for every minority class (a number) or per class (a
    mapping); a class is a minority when it has fewer than `below` x the largest class's rows.
    """

    ratio: float | dict[str, float] = Field(1.0)
    below: float = Field(0.5, gt=0.0, le=1.0)
    seed: int = 0


class ImbalanceConfig(Strict):
    """Remedies for skewed classes: loss weights, samplers, losses, minority augmentation."""

    class_weights: Literal["none", "inverse", "sqrt_inverse", "effective_number"] | list[
        float] | dict[str, float] = "none"
    beta: float = Field(0.999, gt=0.0, lt=1.0)
    pos_weight: Literal["none", "auto"] | list[float] = "none"
    pos_weight_cap: float = Field(10.0, gt=0.0)
    sampler: str = "none"
    loss: str = "ce"
    gamma: float = Field(2.0, ge=0.0)
    alpha: float | list[float] | Literal["auto"] | None = None
    tau: float = Field(1.0, ge=0.0)
    minority_augment: MinorityAugmentConfig | None = None


class BootstrapConfig(Strict):
    """Bootstrapping loss (Reed et al. 2015): target = (1 - beta) * label + beta * prediction
    (`soft`: the predicted probabilities; `hard`: the predicted class)."""

    mode: Literal["soft", "hard"] = "soft"
    beta: float = Field(0.2, ge=0.0, lt=1.0)


class CoteachingConfig(Strict):
    """Co-teaching (Han et al. 2018): two networks, each updated on the small-loss rows the
    other picks; the share of rows dropped ramps up to `forget_rate` over `ramp_epochs`."""

    forget_rate: float = Field(0.2, ge=0.0, lt=1.0)
    ramp_epochs: float = Field(1.0, gt=0.0)
    #: Drop the forget share within each class of a batch (multi-class), not batch-wide: a
    #: rare class's rows have large losses early on and a batch-wide cut discards them all.
    per_class: bool = True


class NoiseConfig(Strict):
    """Resisting label noise during training, and acting on an audit's suspects."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    bootstrap: BootstrapConfig | None = None
    coteaching: CoteachingConfig | None = None
    dynamics: bool = True
    action: Literal["none", "drop", "relabel"] = "none"
    suspects: Path | None = None
    min_score: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _action_needs_suspects(self) -> NoiseConfig:
        if self.action != "none" and self.suspects is None:
            raise ValueError(f"noise.action: {self.action} needs noise.suspects, the "
                             f"suspects.csv written by `fitclass audit`")
        return self


class SelfTrainingConfig(Strict):
    """Pseudo-labelling rounds on an unlabelled table (same text column(s) as data.text)."""

    unlabelled: Path
    rounds: int = Field(1, ge=1)
    tau: float | dict[str, float] = 0.9
    max_per_class: int | Literal["proportional"] = "proportional"
    limit: int | None = Field(None, ge=1)


class DecisionConfig(Strict):
    """How probabilities become labels; fitted on validation, saved in the run."""

    thresholds: Literal["auto", "per_class", "global", "none"] = "auto"
    min_support: int = Field(5, ge=1)
    at_least_one: bool = False
    calibration: Literal["none", "temperature"] = "temperature"
    prior_correction: Literal["none", "uniform"] | dict[str, float] = "none"
    cost_matrix: list[list[float]] | None = None
    #: Multi-class: fit per-class log-probability offsets for this metric (`none`: argmax).
    optimize: str = "none"
    optimize_folds: int = Field(5, ge=2)

    @model_validator(mode="after")
    def _optimize_is_a_metric(self) -> DecisionConfig:
        if self.optimize != "none" and self.optimize not in SELECTABLE_METRICS:
            raise ValueError(f"decision.optimize: {self.optimize!r} is not a metric fitclass "
                             f"reports; use none or one of {', '.join(DECISION_METRICS)}")
        if self.optimize != "none" and self.cost_matrix is not None:
            raise ValueError("decision.optimize and decision.cost_matrix both choose the "
                             "label; keep one: cost_matrix for known costs of each error, "
                             "optimize to fit offsets for a metric")
        return self
