"""The fine-tuning loop for transformer classifiers, on `accelerate`.

One loop for CPU, GPU (AMP) and DDP (`accelerate launch` / `torchrun`): accelerate places
tensors, scales losses, accumulates gradients and shards batches. Evaluation happens on a
step or epoch schedule; each evaluation may become the best checkpoint, saves the resumable
training state, and feeds early stopping.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from fitclass.metrics import headline
from fitclass.models.text import TransformerClassifier, tokenize
from fitclass.recipe import TrainConfig
from fitclass.train import checkpoint
from fitclass.train.batching import Collator, rows_from_encoding
from fitclass.train.context import FitContext, FitResult
from fitclass.train.dynamics import DynamicsRecorder
from fitclass.train.losses import Loss
from fitclass.train.objective import build_loss
from fitclass.train.optim import build_optimizer, build_scheduler
from fitclass.train.samplers import make_sampler
from fitclass.train.selection import Selector


def resolve_precision(precision: str) -> str:
    """`auto`: bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU."""
    if precision == "fp32":
        return "no"
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def eval_interval(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps between evaluations."""
    every = config.eval_every
    steps = every.value if every.unit == "steps" else every.value * steps_per_epoch
    return max(1, round(steps))


def evaluate(classifier: TransformerClassifier, context: FitContext, loss_fn: Loss,
             batch_size: int) -> tuple[dict[str, Any], np.ndarray]:
    """Validation metrics (plus `loss`, the training criterion) and probabilities."""
    logits = torch.from_numpy(classifier.logits(context.valid.texts, batch_size))
    targets = context.valid_targets
    probs = context.task.probabilities(logits).numpy()
    metrics = context.task.metrics(targets, probs)
    metrics["loss"] = float(loss_fn(logits, torch.from_numpy(targets)))
    return metrics, probs


def fit_transformer(classifier: TransformerClassifier, context: FitContext) -> FitResult:
    """Fine-tune `classifier` on `context.train`; return it with the best weights loaded."""
    config, run = context.recipe.train, context.run
    set_seed(config.seed)
    accelerator = Accelerator(mixed_precision=resolve_precision(config.precision),
                              gradient_accumulation_steps=config.grad_accumulation)
    context.reporter.enabled = context.reporter.enabled and accelerator.is_main_process
    encoded = tokenize(classifier.tokenizer, context.train.texts, classifier.max_length)
    train_targets = context.train_targets
    sampler = make_sampler(context.recipe.imbalance.sampler,
                           np.array([len(x) for x in encoded["input_ids"]]), train_targets,
                           config.batch_size, config.seed)
    rows: Any = rows_from_encoding(encoded, train_targets)  # a list is a map dataset
    loader: Any = torch.utils.data.DataLoader(
        rows, batch_sampler=sampler,
        collate_fn=Collator(classifier.tokenizer))
    total_steps = math.ceil(len(loader) / config.grad_accumulation) * config.epochs
    optimizer = build_optimizer(classifier.module, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    module, optimizer, loader, scheduler = accelerator.prepare(
        classifier.module, optimizer, loader, scheduler)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accumulation)
    total_steps = steps_per_epoch * config.epochs
    interval = eval_interval(config, steps_per_epoch)
    loss_fn = build_loss(context.recipe, train_targets, context.class_names)
    selector = Selector(config.select.metric, config.select.direction,
                        config.early_stopping.min_delta if config.early_stopping else 0.0)
    state: dict[str, Any] = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "history": [],
                             "train_seconds": 0.0, "train_samples": 0}
    recorder = (DynamicsRecorder(len(rows), config.epochs, context.task.multilabel)
                if context.recipe.noise.dynamics else None)
    if context.resume and checkpoint.has_training_state(run):
        state = checkpoint.load_training_state(run, accelerator)
        selector.restore(state["selector"])
        if recorder is not None:
            recorder.restore(checkpoint.load_arrays(run))
        context.reporter.log(f"resumed at step {state['step']} of {total_steps}")
    reporter = context.reporter
    reporter.start(total_steps, done=state["step"])
    running_loss, running_batches, stop = 0.0, 0, False
    tick = time.perf_counter()
    for epoch in range(state["epoch"], config.epochs):
        sampler.set_epoch(epoch)  # type: ignore[attr-defined]  # all our samplers have it
        # accelerate's loader re-sets the sampler's epoch from its own counter, which starts
        # at 0 in a resumed process: align it, or resumed epochs replay earlier batch orders.
        loader.set_epoch(epoch)
        skip = state["batches_in_epoch"] if epoch == state["epoch"] else 0
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        state["epoch"], state["batches_in_epoch"] = epoch, skip
        module.train()
        for batch in batches:
            labels, positions = batch.pop("labels"), batch.pop("row")
            with accelerator.accumulate(module):
                logits = module(**batch)["logits"]
                loss = loss_fn(logits, labels)
                if recorder is not None:
                    recorder.record(epoch, positions, logits.detach(), labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.grad_clip:
                    accelerator.clip_grad_norm_(module.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state["batches_in_epoch"] += 1
            state["train_samples"] += len(labels) * accelerator.num_processes
            running_loss, running_batches = running_loss + loss.item(), running_batches + 1
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            elapsed = state["train_seconds"] + time.perf_counter() - tick
            reporter.step(running_loss / running_batches, state["train_samples"] / elapsed)
            if state["step"] % interval and state["step"] != total_steps:
                continue
            state["train_seconds"] = elapsed
            row = {"step": state["step"], "epoch": round(state["step"] / steps_per_epoch, 4),
                   "train_loss": running_loss / running_batches,
                   "lr": scheduler.get_last_lr()[0],
                   "train_samples_per_s": state["train_samples"] / elapsed}
            running_loss, running_batches = 0.0, 0
            stop = _evaluate_and_checkpoint(classifier, context, accelerator, loss_fn, selector,
                                            state, row, recorder)
            module.train()
            tick = time.perf_counter()
            if stop:
                break
        if stop:
            break
    reporter.close()
    accelerator.wait_for_everyone()
    checkpoint.load_best(run, accelerator.unwrap_model(module))
    classifier.module = accelerator.unwrap_model(module)
    samples_per_s = state["train_samples"] / max(state["train_seconds"], 1e-9)
    dynamics = None if recorder is None else recorder.summary(
        context.train.ids, [str(label) for label in context.train.labels or []],
        context.class_names)
    return FitResult(classifier=classifier, history=state["history"],
                     best={"metric": selector.metric, "value": selector.best_value,
                           "step": selector.best_step},
                     train_seconds=state["train_seconds"], train_samples_per_second=samples_per_s,
                     dynamics=dynamics)


def _evaluate_and_checkpoint(classifier: TransformerClassifier, context: FitContext,
                             accelerator: Accelerator, loss_fn: Loss, selector: Selector,
                             state: dict[str, Any], row: dict[str, Any],
                             recorder: DynamicsRecorder | None = None) -> bool:
    """Evaluate, update best and history, save state; True when early stopping says stop."""
    config, run = context.recipe.train, context.run
    classifier.module = accelerator.unwrap_model(classifier.module)
    metrics, _ = evaluate(classifier, context, loss_fn, config.eval_batch_size)
    row["valid_loss"] = metrics["loss"]
    row.update({k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "n"})
    improved = selector.update(metrics.get(config.select.metric), state["step"])
    row["is_best"] = improved
    state["history"].append(row)
    state["selector"] = selector.state()
    if accelerator.is_main_process:
        if improved:
            checkpoint.save_best(run, classifier.module)
        checkpoint.save_training_state(run, accelerator, state,
                                       recorder.state() if recorder is not None else None)
    accelerator.wait_for_everyone()
    context.reporter.evaluated(row | headline(metrics, config.select.metric),
                               config.select.metric, improved)
    patience = config.early_stopping.patience if config.early_stopping else None
    if patience is not None and selector.evals_without_improvement >= patience:
        context.reporter.log(f"early stopping: no {config.select.metric} improvement in "
                             f"{patience} evaluations")
        return True
    return False

