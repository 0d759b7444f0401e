"""Validation during training: the task's metrics plus `loss` (the training criterion) on
the validation rows, and the scalar columns they add to a history row."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from fitclass.contracts.fit import FitContext
from fitclass.contracts.neural import NeuralClassifier
from fitclass.training.losses import Loss


def evaluate(classifier: NeuralClassifier, context: FitContext, loss_fn: Loss,
             batch_size: int, accelerator: Accelerator | None = None,
             ) -> tuple[dict[str, Any], np.ndarray]:
    """Validation metrics (plus `loss`, the training criterion) and probabilities. Under
    DDP (`accelerator` with several processes) each process scores its share of the rows.
    A run without validation rows (a refit) measures nothing: no metrics, no rows."""
    texts = list(context.valid.texts)
    if not texts:
        return {}, np.zeros((0, context.task.num_labels))
    if accelerator is None or accelerator.num_processes == 1:
        array = classifier.logits(texts, batch_size)
    else:
        array = sharded_logits(classifier, texts, batch_size, accelerator)
    logits = torch.from_numpy(array)
    probs = context.task.probabilities(logits).numpy()
    return metrics_of_probs(logits, probs, context, loss_fn), probs


def sharded_logits(classifier: NeuralClassifier, texts: list[Any], batch_size: int,
                   accelerator: Accelerator) -> np.ndarray:
    """Logits of all `texts`, process r scoring rows r, r + n, r + 2n, ... and every
    process receiving all of them (one gather of equal-sized, zero-padded shares)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    share = classifier.logits(texts[rank::world], batch_size)
    width = -(-len(texts) // world)  # the largest share
    padded = np.zeros((width, share.shape[1]), dtype=np.float32)
    padded[:len(share)] = share
    gathered = accelerator.gather(torch.from_numpy(padded).to(accelerator.device))
    shares = gathered.float().cpu().numpy().reshape(world, width, -1)
    logits = np.empty((len(texts), share.shape[1]), dtype=np.float32)
    for process in range(world):
        rows = np.arange(process, len(texts), world)
        logits[rows] = shares[process, :len(rows)]
    return logits


def metrics_of_logits(logits: torch.Tensor, context: FitContext,
                      loss_fn: Loss) -> dict[str, Any]:
    """The task's validation metrics of `logits`, plus `loss` (none without validation
    rows)."""
    probs = context.task.probabilities(logits).numpy()
    return metrics_of_probs(logits, probs, context, loss_fn)


def metrics_of_probs(logits: torch.Tensor, probs: np.ndarray, context: FitContext,
                     loss_fn: Loss) -> dict[str, Any]:
    """The task's validation metrics of `probs` (the task's probabilities of `logits`,
    computed once by the caller), plus `loss` of `logits` (none without validation rows)."""
    if len(context.valid) == 0:
        return {}
    targets = context.valid_targets
    metrics = context.task.metrics(targets, probs)
    metrics["loss"] = float(loss_fn(logits, torch.from_numpy(targets)))
    return metrics


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """A history row's metric columns: `valid_loss` and every scalar metric (none when
    nothing was measured: a run without validation rows)."""
    if not metrics:
        return {}
    columns: dict[str, Any] = {"valid_loss": metrics["loss"]}
    columns.update({k: v for k, v in metrics.items()
                    if isinstance(v, float | int) and k != "n"})
    return columns
