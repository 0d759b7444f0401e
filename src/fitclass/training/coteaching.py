"""Co-teaching (Han et al. 2018): two networks see the same batches; each is updated on the
rows with the smallest loss under the *other* network. Mislabelled rows tend to have large
losses, so each network filters noise for its peer. The share of rows dropped ramps from 0
to `forget_rate` over `ramp_epochs`. Both are evaluated; the better one (by `select`) is kept.

Resuming restarts co-teaching from the beginning (only the single-network loop resumes).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from accelerate.utils import set_seed
from safetensors.torch import load_model, save_model
from torch.nn import functional as F

from fitclass.contracts.fit import FitContext, FitResult
from fitclass.contracts.neural import NeuralClassifier
from fitclass.recipe import CoteachingConfig
from fitclass.training.callbacks import CallbackList
from fitclass.training.loop import (
    accelerator_policy,
    eval_interval,
    evaluate,
    make_accelerator,
)
from fitclass.training.objective import build_loss
from fitclass.training.optim import build_optimizer, build_scheduler
from fitclass.training.samplers import make_sampler
from fitclass.training.selection import Selector
from fitclass.training.state import LoopState


def per_row_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Plain per-row loss used to rank rows (CE, or mean BCE over labels)."""
    if targets.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(),
                                                  reduction="none").mean(1)
    return F.cross_entropy(logits.float(), targets.long(), reduction="none")


def forget_rate(config: CoteachingConfig, epoch_progress: float) -> float:
    return config.forget_rate * min(epoch_progress / config.ramp_epochs, 1.0)


def small_loss_rows(losses: torch.Tensor, keep: int) -> torch.Tensor:
    return torch.argsort(losses.detach())[:keep]


def class_wise_small_loss_rows(losses: torch.Tensor, labels: torch.Tensor,
                               rate: float) -> torch.Tensor:
    """The `1 - rate` share of smallest-loss rows within each class of the batch, at least
    one per class present."""
    picks = []
    for label in labels.unique():
        rows = torch.nonzero(labels == label).flatten()
        keep = max(1, round((1.0 - rate) * len(rows)))
        picks.append(rows[small_loss_rows(losses[rows], keep)])
    return torch.sort(torch.cat(picks)).values


def pick_rows(losses: torch.Tensor, labels: torch.Tensor, rate: float,
              config: CoteachingConfig) -> torch.Tensor:
    """The rows one network passes to its peer: class-wise for multi-class targets when
    `per_class` (the default), else the smallest-loss share of the whole batch."""
    if config.per_class and labels.ndim == 1:
        return class_wise_small_loss_rows(losses, labels, rate)
    return small_loss_rows(losses, max(1, round((1.0 - rate) * len(labels))))


def fit_coteaching(first: NeuralClassifier, second: NeuralClassifier,
                   context: FitContext, config: CoteachingConfig) -> FitResult:
    """Train two classifiers by co-teaching; return the better one with its best weights."""
    train_config, run = context.recipe.train, context.run
    set_seed(train_config.seed)
    accelerator = make_accelerator(train_config.precision, train_config.grad_accumulation)
    targets = context.train_targets
    data = first.training_data(context.train.texts, targets, context.recipe)
    sampler = make_sampler(context.recipe.imbalance.sampler, data.lengths, targets,
                           train_config.batch_size, train_config.seed)
    loader: Any = torch.utils.data.DataLoader(data.rows, batch_sampler=sampler,
                                              collate_fn=data.collate)
    pair = torch.nn.ModuleList([first.module, second.module])
    total_steps = math.ceil(len(loader) / train_config.grad_accumulation) * train_config.epochs
    optimizer = build_optimizer(pair, train_config)
    scheduler = build_scheduler(optimizer, train_config, total_steps)
    pair, optimizer, loader, scheduler = accelerator.prepare(pair, optimizer, loader, scheduler)
    policy = accelerator_policy(accelerator)
    first.policy = second.policy = policy  # their evaluation runs in the same precision
    steps_per_epoch = math.ceil(len(loader) / train_config.grad_accumulation)
    interval = eval_interval(train_config, steps_per_epoch)
    loss_fn = build_loss(context.recipe, targets, context.class_names)
    select = train_config.select
    selectors = [Selector(select.metric, select.direction) for _ in range(2)]
    models = [first, second]
    state = LoopState(total_steps=total_steps)
    callbacks = CallbackList(context.callbacks)
    callbacks.on_train_begin(state)
    tick = time.perf_counter()
    for epoch in range(train_config.epochs):
        state.epoch = epoch
        sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        pair.train()
        for batch_index, batch in enumerate(loader):
            labels = batch.pop("labels")
            batch.pop("row")
            rate = forget_rate(config, epoch + batch_index / max(len(loader), 1))
            with accelerator.accumulate(pair):
                # the members are called unwrapped, outside accelerate's autocast forward
                with policy.autocast():
                    logits = [model(**batch)["logits"]
                              for model in accelerator.unwrap_model(pair)]
                picks = [pick_rows(per_row_loss(lg, labels), labels, rate, config)
                         for lg in logits]
                # each network learns from the rows its peer found clean
                loss = (loss_fn(logits[0][picks[1]], labels[picks[1]])
                        + loss_fn(logits[1][picks[0]], labels[picks[0]]))
                accelerator.backward(loss)
                if accelerator.sync_gradients and train_config.grad_clip:
                    accelerator.clip_grad_norm_(pair.parameters(), train_config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.train_samples += len(labels)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            callbacks.on_step_end(state)
            step = state.step
            if step % interval and step != total_steps and not state.should_stop:
                continue
            state.train_seconds += time.perf_counter() - tick
            row: dict[str, Any] = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                                   "forget_rate": rate,
                                   "train_samples_per_s": state.train_samples
                                   / state.train_seconds}
            for name, model, selector in zip("ab", models, selectors, strict=True):
                metrics, _ = evaluate(model, context, loss_fn, train_config.eval_batch_size)
                improved = selector.update(metrics.get(select.metric), step, metrics["loss"])
                row[f"{select.metric}_{name}"] = metrics.get(select.metric)
                if improved and accelerator.is_main_process:
                    run.checkpoint(f"best-{name}").mkdir(parents=True, exist_ok=True)
                    save_model(model.module, str(run.checkpoint(f"best-{name}") /
                                                 "model.safetensors"))
            state.history.append(row)
            callbacks.on_evaluate(state, row)
            context.reporter.log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in row.items()))
            pair.train()
            tick = time.perf_counter()
            if state.should_stop:
                break
        if state.should_stop:
            break
        callbacks.on_epoch_end(state)
    callbacks.on_train_end(state)
    accelerator.wait_for_everyone()
    better = _better(selectors)
    winner = models[better]
    load_model(winner.module, str(run.checkpoint(f"best-{'ab'[better]}") / "model.safetensors"))
    history, seconds = state.history, state.train_seconds
    for row in history:
        row["is_best"] = row["step"] == selectors[better].best_step
    return FitResult(classifier=winner, history=history,
                     best={"metric": select.metric, "value": selectors[better].best_value,
                           "step": selectors[better].best_step, "network": "ab"[better],
                           "valid_loss": selectors[better].best_loss},
                     train_seconds=seconds,
                     train_samples_per_second=state.train_samples / max(seconds, 1e-9))


def _better(selectors: list[Selector]) -> int:
    """The network whose best checkpoint is better; on a tie, the one with the lower
    validation loss (as `Selector` breaks ties between checkpoints)."""
    a, b = (s.best_value for s in selectors)
    if a is None or b is None:
        return 0 if b is None else 1
    if a == b:
        loss_a, loss_b = (s.best_loss for s in selectors)
        return 1 if loss_a is not None and loss_b is not None and loss_b < loss_a else 0
    if selectors[0].mode == "max":
        return 0 if a > b else 1
    return 0 if a < b else 1
