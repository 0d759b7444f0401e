"""Recipe sections: `sweep` and `mlflow`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from fitclass.recipe.base import SELECTABLE_METRICS, Strict


class SweepConfig(Strict):
    """Search space and search strategy for `fitclass sweep`.

    `params` maps dotted recipe keys to a distribution: `{loguniform: [lo, hi]}`,
    `{uniform: [lo, hi], step: s}`, `{int: [lo, hi], step: s}` or `{categorical: [...]}`.
    """

    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    trials: int = Field(20, ge=1)
    startup_trials: int = Field(3, ge=0)

    @field_validator("params")
    @classmethod
    def _known_distributions(cls, params: dict[str, dict[str, Any]]
                             ) -> dict[str, dict[str, Any]]:
        kinds = ("loguniform", "uniform", "int", "categorical")
        for key, spec in params.items():
            found = [k for k in kinds if k in spec]
            if len(found) != 1:
                raise ValueError(f"sweep.params.{key}: give exactly one of {list(kinds)}, "
                                 f"e.g. {{loguniform: [1.0e-5, 1.0e-4]}}")
            unknown = set(spec) - set(kinds) - {"step", "log"}
            if unknown:
                raise ValueError(f"sweep.params.{key}: unknown keys {sorted(unknown)}")
            bounds = spec[found[0]]
            if found[0] != "categorical" and (not isinstance(bounds, list) or len(bounds) != 2
                                              or bounds[0] >= bounds[1]):
                raise ValueError(f"sweep.params.{key}.{found[0]}: expected [low, high] with "
                                 f"low < high")
        return params

    def resolved(self, metric: str, mode: Literal["max", "min"]) -> SweepConfig:
        """With `metric`/`mode` defaulting to `train.select`."""
        chosen = self.metric or metric
        return self.model_copy(update={"metric": chosen, "mode": self.mode or (
            SELECTABLE_METRICS.get(chosen, mode) if self.metric else mode)})


class MlflowConfig(Strict):
    """Where MLflow tracking goes (used when `tracking` lists mlflow)."""

    tracking_uri: str | None = None
    experiment: str | None = None
