"""Shared pieces of the recipe models: strictness and the metric tables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

#: Metrics that may pick the best checkpoint, with the direction that is better.
SELECTABLE_METRICS: dict[str, Literal["max", "min"]] = {
    "accuracy": "max",
    "balanced_accuracy": "max",
    "macro_f1": "max",
    "micro_f1": "max",
    "weighted_f1": "max",
    "pr_auc_macro": "max",
    "roc_auc_macro": "max",
    "loss": "min",
    "log_loss": "min",
    "samples_f1": "max",
    "subset_accuracy": "max",
    "hamming_loss": "min",
    "lrap": "max",
}
#: Metrics that exist for only one task kind.
TASK_METRICS = {"multiclass": {"accuracy", "balanced_accuracy"},
                "multilabel": {"samples_f1", "subset_accuracy", "hamming_loss", "lrap"}}

#: Multi-class metrics of the predicted labels alone, which `decision.optimize` can fit
#: offsets for (the others score probabilities, which no decision changes).
DECISION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
