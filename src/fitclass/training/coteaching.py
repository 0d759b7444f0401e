"""Co-teaching (Han et al. 2018): two networks see the same batches; each is updated on the
rows with the smallest loss under the *other* network. Mislabelled rows tend to have large
losses, so each network filters noise for its peer. The share of rows dropped ramps from 0
to `forget_rate` over `ramp_epochs`. Both are evaluated; the better one (by `select`) is kept.

Co-teaching is a step strategy of the one loop (`training/loop.py`); the two networks'
selection and best checkpoints are its own callback (`PairSelection`). Resuming restarts
co-teaching from the beginning (only the single-network fine-tune resumes).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_model, save_model

from fitclass.contracts.fit import CheckpointFolder, FitContext, FitResult
from fitclass.contracts.neural import NeuralClassifier
from fitclass.precision import Policy
from fitclass.recipe import CoteachingConfig
from fitclass.training.accelerator import (
    accelerator_policy,
    eval_interval,
    freeze_unused,
    make_accelerator,
)
from fitclass.training.callbacks import Callback, CallbackList
from fitclass.training.evaluation import evaluate
from fitclass.training.loop import run_loop
from fitclass.training.losses import Loss
from fitclass.training.objective import build_loss
from fitclass.training.optim import build_optimizer, build_scheduler
from fitclass.training.progress import format_metrics
from fitclass.training.samplers import batch_sampler, describe_batching, training_loader
from fitclass.training.selection import Selector
from fitclass.training.state import LoopState
from fitclass.training.strategy import EvalSchedule, StepOutput


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
              config: CoteachingConfig, multilabel: bool) -> torch.Tensor:
    """The rows one network passes to its peer: class-wise for multi-class targets when
    `per_class` (the default), else the smallest-loss share of the whole batch."""
    if config.per_class and not multilabel:
        return class_wise_small_loss_rows(losses, labels, rate)
    return small_loss_rows(losses, max(1, round((1.0 - rate) * len(labels))))


class CoteachingStep:
    """Both networks see each batch; each learns from the rows its peer's loss ranks clean.
    Evaluation scores both (columns `<metric>_a`, `<metric>_b`, `valid_loss_a`, ...)."""

    def __init__(self, models: list[NeuralClassifier], context: FitContext,
                 config: CoteachingConfig, accelerator: Accelerator, prepared: tuple[Any, ...],
                 sampler: Any, loss_fn: Loss, steps_per_epoch: int) -> None:
        self.models, self.context, self.config = models, context, config
        self.accelerator, self.loss_fn = accelerator, loss_fn
        self.pair, self.optimizer, self.loader, self.scheduler = prepared
        self.sampler, self.steps_per_epoch = sampler, steps_per_epoch
        train = context.recipe.train
        self.end_epoch = train.epochs
        self.schedule = EvalSchedule(every_steps=eval_interval(train, steps_per_epoch),
                                     check_every=train.log_every)
        self.policy: Policy = accelerator_policy(accelerator)
        self.rate = 0.0

    def batches(self, state: LoopState) -> Iterator[Any]:
        self.sampler.set_epoch(state.epoch)
        self.pair.train()
        return iter(self.loader)

    def step(self, batch: Any, state: LoopState) -> StepOutput:
        accelerator, train = self.accelerator, self.context.recipe.train
        labels = batch.pop("labels")
        batch.pop("row")
        progress = state.epoch + state.batches_in_epoch / max(len(self.loader), 1)
        self.rate = forget_rate(self.config, progress)
        with accelerator.accumulate(self.pair):
            # the members are called unwrapped, outside accelerate's autocast forward
            with self.policy.autocast():
                logits = [model(**batch)["logits"]
                          for model in accelerator.unwrap_model(self.pair)]
            task = self.context.task
            picks = [pick_rows(task.per_row_loss(lg, labels), labels, self.rate, self.config,
                               task.multilabel)
                     for lg in logits]
            # each network learns from the rows its peer found clean
            loss = (self.loss_fn(logits[0][picks[1]], labels[picks[1]])
                    + self.loss_fn(logits[1][picks[0]], labels[picks[0]]))
            accelerator.backward(loss)
            if accelerator.sync_gradients and train.grad_clip:
                accelerator.clip_grad_norm_(self.pair.parameters(), train.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return StepOutput(loss=loss.detach(), rows=len(labels),
                          synced=accelerator.sync_gradients)

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        row: dict[str, Any] = {"step": state.step,
                               "epoch": round(state.step / self.steps_per_epoch, 4),
                               "forget_rate": self.rate, "train_loss": state.train_loss,
                               "train_samples_per_s": state.samples_per_second}
        metric = self.context.recipe.train.select.metric
        batch_size = self.context.recipe.train.eval_batch_size
        for name, model in zip("ab", self.models, strict=True):
            metrics, _ = evaluate(model, self.context, self.loss_fn, batch_size)
            row[f"{metric}_{name}"] = metrics.get(metric)
            row[f"valid_loss_{name}"] = metrics["loss"]
        self.pair.train()
        return row


class PairSelection(Callback):
    """One selector and best checkpoint (`best-a`, `best-b`) per network, and the log line
    of each evaluation."""

    def __init__(self, models: list[NeuralClassifier], selectors: list[Selector],
                 run: CheckpointFolder, is_main: bool, log: Any) -> None:
        self.models, self.selectors, self.run = models, selectors, run
        self.is_main, self.log = is_main, log

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        for name, model, selector in zip("ab", self.models, self.selectors, strict=True):
            improved = selector.update(row[f"{selector.metric}_{name}"], state.step,
                                       row[f"valid_loss_{name}"])
            if improved and self.is_main:
                folder = self.run.checkpoint(f"best-{name}")
                folder.mkdir(parents=True, exist_ok=True)
                save_model(model.module, str(folder / "model.safetensors"))
        self.log(format_metrics(row, list(row)))


def fit_coteaching(first: NeuralClassifier, second: NeuralClassifier,
                   context: FitContext, config: CoteachingConfig) -> FitResult:
    """Train two classifiers by co-teaching; return the better one with its best weights."""
    train_config, run = context.recipe.train, context.run
    set_seed(train_config.seed)
    # both networks' parameters are all reached (the poolers are frozen before the wrap)
    accelerator = make_accelerator(train_config.precision, train_config.grad_accumulation,
                                   find_unused=False)
    for network in (first, second):
        freeze_unused(network)
    targets = context.train_targets
    first.policy = accelerator_policy(accelerator)  # its training data's probe runs in it
    data = first.training_data(context.train.texts, targets, context.recipe)
    sampler = batch_sampler(context.recipe, data, targets, context.task.kind)
    loader: Any = training_loader(data, sampler)
    pair = torch.nn.ModuleList([first.module, second.module])
    total_steps = math.ceil(len(loader) / train_config.grad_accumulation) * train_config.epochs
    optimizer = build_optimizer(pair, train_config)
    scheduler = build_scheduler(optimizer, train_config, total_steps)
    prepared = accelerator.prepare(pair, optimizer, loader, scheduler)
    models = [first, second]
    steps_per_epoch = math.ceil(len(prepared[2]) / train_config.grad_accumulation)
    loss_fn = build_loss(context.recipe, targets, context.class_names)
    strategy = CoteachingStep(models, context, config, accelerator, prepared, sampler,
                              loss_fn, steps_per_epoch)
    first.policy = second.policy = strategy.policy  # their evaluation runs in that precision
    select = train_config.select
    selectors = [Selector(select.metric, select.direction) for _ in range(2)]
    state = run_loop(strategy, LoopState(total_steps=total_steps), CallbackList([
        PairSelection(models, selectors, run, accelerator.is_main_process,
                      context.reporter.log), *context.callbacks]))
    accelerator.wait_for_everyone()
    better = _better(selectors)
    winner = models[better]
    load_model(winner.module, str(run.checkpoint(f"best-{'ab'[better]}") / "model.safetensors"))
    for row in state.history:
        row["is_best"] = row["step"] == selectors[better].best_step
    return FitResult(classifier=winner, history=state.history,
                     best={"metric": select.metric, "value": selectors[better].best_value,
                           "step": selectors[better].best_step, "network": "ab"[better],
                           "valid_loss": selectors[better].best_loss},
                     train_seconds=state.train_seconds,
                     train_samples_per_second=state.samples_per_second,
                     batching=describe_batching(data, context.recipe))


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
