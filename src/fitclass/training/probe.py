"""Head-only stages on cached features: while the backbone is frozen its pooled outputs do
not change, so they are computed once (and cached on disk, `training/cache.py`) and the head
trains on them, orders of magnitude faster than running the frozen backbone every epoch.
A step strategy of the one loop (`training/loop.py`), evaluated after every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from fitclass.contracts.fit import FitContext
from fitclass.contracts.neural import FeatureEncoder
from fitclass.training.cache import FeatureCache, feature_key
from fitclass.training.callbacks import CallbackList
from fitclass.training.distillation import teacher_rows
from fitclass.training.evaluation import metric_columns, metrics_of_logits
from fitclass.training.loop import run_loop
from fitclass.training.losses import Loss
from fitclass.training.optim import adamw
from fitclass.training.stages import Stage, stage_at, stage_schedule
from fitclass.training.state import LoopState
from fitclass.training.strategy import EvalSchedule, StepOutput
from fitclass.training.wiring import Wiring


def cached_features(classifier: FeatureEncoder, source: str | None, texts: list[Any],
                    batch_size: int) -> torch.Tensor:
    """Pooled features of `texts`, from the disk cache keyed by `source`'s weights; with
    `source` None (weights not loaded from it, e.g. `pretrained: false`) never cached."""
    if source is None:
        array = classifier.encode(texts, batch_size)
    else:
        key = feature_key(source, classifier.max_length, classifier.pooling, texts,
                          classifier.policy.precision)
        array = FeatureCache().get_or_compute(key, lambda: classifier.encode(texts, batch_size))
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


class CachedHeadStep:
    """Trains `encoder.head` on the cached features of the training rows; each stage gets a
    fresh optimiser and its own schedule, and its batch order restarts from the seed. After
    each epoch `state.step` is re-aligned to the full loop's step count, so the schedule,
    history and resume of the stages that follow line up as if the backbone had run."""

    def __init__(self, encoder: FeatureEncoder, context: FitContext, stages: list[Stage],
                 loss_fn: Loss, steps_per_epoch: int) -> None:
        self.encoder, self.context, self.stages, self.loss_fn = encoder, context, stages, loss_fn
        self.config = context.recipe.train
        self.steps_per_epoch = steps_per_epoch
        self.end_epoch = stages[-1].first_epoch + stages[-1].epochs
        self.schedule = EvalSchedule(at_epoch_end=True, check_every=self.config.log_every)
        source = encoder.feature_source
        if not context.recipe.model.pretrained:  # random weights: the source's features are
            source = None  # not these weights' features, so nothing is cached
        start = time.perf_counter()
        batch = self.config.eval_batch_size
        train_x = cached_features(encoder, source, list(context.train.texts), batch)
        valid_x = (cached_features(encoder, source, list(context.valid.texts), batch)
                   if len(context.valid) else torch.zeros((0, train_x.shape[1])))
        self.feature_seconds = time.perf_counter() - start
        device = next(encoder.head.parameters()).device  # the prepared module may be on a GPU
        self.train_x, self.valid_x = train_x.to(device), valid_x.to(device)
        self.targets = torch.as_tensor(context.train_targets, device=device)
        self.teacher = teacher_rows(context, device)
        self.entered: Stage | None = None
        self.epoch_seconds: list[float] = []

    def _enter(self, stage: Stage) -> None:
        config = self.config
        self.optimizer = adamw(self.encoder.head.parameters(), lr=config.lr,
                               weight_decay=config.weight_decay)
        head_steps = math.ceil(len(self.train_x) / config.batch_size)
        local = Stage(0, stage.epochs, stage.lr, "head", 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, stage_schedule([local], head_steps, config, config.lr))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.entered, self.epoch_seconds = stage, []

    def batches(self, state: LoopState) -> Iterator[torch.Tensor]:
        stage = stage_at(self.stages, state.epoch)
        if stage is not self.entered:
            self._enter(stage)
        self.encoder.head.train()
        self.epoch_start = time.perf_counter()
        order = torch.randperm(len(self.train_x), generator=self.generator)
        return iter(order.split(self.config.batch_size))

    def step(self, rows: torch.Tensor, state: LoopState) -> StepOutput:
        with self.encoder.policy.autocast():  # the loop's precision, as on the backbone
            logits = self.encoder.head(self.encoder.head_dropout(self.train_x[rows]))
        targets = self.targets[rows]
        if self.teacher is not None:  # `distil`: the rows' teacher probabilities join
            targets = self.teacher.targets(targets, rows)
        loss = self.loss_fn(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return StepOutput(loss=loss.detach(), rows=len(rows))

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        seconds = time.perf_counter() - self.epoch_start
        self.epoch_seconds.append(seconds)
        head = self.encoder.head
        head.eval()
        with torch.no_grad(), self.encoder.policy.autocast():
            valid_logits = head(self.valid_x).float().cpu()
        head.train()
        state.step = (state.epoch + 1) * self.steps_per_epoch
        state.metrics = metrics_of_logits(valid_logits, self.context, self.loss_fn)
        stage = stage_at(self.stages, state.epoch)
        row: dict[str, Any] = {
            "step": state.step, "epoch": float(state.epoch + 1), "stage": stage.index,
            "train_loss": state.train_loss, "lr": self.scheduler.get_last_lr()[0],
            "cached_features": True, "feature_seconds": round(self.feature_seconds, 3),
            "epoch_seconds": seconds,
            "train_samples_per_s": len(self.train_x) / max(seconds, 1e-9)}
        row.update(metric_columns(state.metrics))
        if state.epoch + 1 == stage.first_epoch + stage.epochs:
            self.context.reporter.log(
                f"stage {stage.index} trained the head on cached features: "
                f"{float(np.mean(self.epoch_seconds)):.3f}s per epoch")
        return row


def run_cached_head_stages(encoder: FeatureEncoder, context: FitContext, stages: list[Stage],
                           loss_fn: Loss, state: LoopState, steps_per_epoch: int,
                           wiring: Wiring) -> None:
    """Run the leading head-only stages of `stages` on cached features through the loop;
    `state` ends at the first epoch of the stage that trains the backbone."""
    leading = []
    for stage in stages:
        if stage.trainable != "head":
            break
        leading.append(stage)
    strategy = CachedHeadStep(encoder, context, leading, loss_fn, steps_per_epoch)
    run_loop(strategy, state, CallbackList(wiring.callbacks(cached=True)))
