"""Validation during training: the task's metrics plus `loss` (the training criterion) on
the validation rows, and the scalar columns they add to a history row."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fitclass.contracts.fit import FitContext
from fitclass.contracts.neural import NeuralClassifier
from fitclass.training.losses import Loss


def evaluate(classifier: NeuralClassifier, context: FitContext, loss_fn: Loss,
             batch_size: int) -> tuple[dict[str, Any], np.ndarray]:
    """Validation metrics (plus `loss`, the training criterion) and probabilities."""
    logits = torch.from_numpy(classifier.logits(context.valid.texts, batch_size))
    return metrics_of_logits(logits, context, loss_fn), context.task.probabilities(
        logits).numpy()


def metrics_of_logits(logits: torch.Tensor, context: FitContext,
                      loss_fn: Loss) -> dict[str, Any]:
    """The task's validation metrics of `logits`, plus `loss`."""
    targets = context.valid_targets
    metrics = context.task.metrics(targets, context.task.probabilities(logits).numpy())
    metrics["loss"] = float(loss_fn(logits, torch.from_numpy(targets)))
    return metrics


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """A history row's metric columns: `valid_loss` and every scalar metric."""
    columns: dict[str, Any] = {"valid_loss": metrics["loss"]}
    columns.update({k: v for k, v in metrics.items()
                    if isinstance(v, float | int) and k != "n"})
    return columns
