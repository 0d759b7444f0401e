"""Head-only stages on cached features: while the backbone is frozen its pooled outputs do
not change, so they are computed once (and cached on disk, `training/cache.py`) and the head
trains on them, orders of magnitude faster than running the frozen backbone every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fitclass.contracts.fit import FitContext
from fitclass.contracts.neural import FeatureEncoder
from fitclass.training.cache import FeatureCache, feature_key
from fitclass.training.callbacks import Callback
from fitclass.training.losses import Loss
from fitclass.training.optim import adamw
from fitclass.training.stages import Stage, stage_schedule
from fitclass.training.state import LoopState


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


def train_head(classifier: FeatureEncoder, context: FitContext, stage: Stage,
               source: str | None, loss_fn: Loss,
               on_eval: Callable[[dict[str, Any], np.ndarray], None],
               state: LoopState | None = None, callbacks: Callback | None = None) -> float:
    """Train `classifier.head` for `stage.epochs` on cached features; `on_eval` gets
    each epoch's history row and validation logits (and may re-align `state.step` to the
    full loop's step count). Each head step advances `state` and calls `callbacks`.
    Returns the seconds per epoch."""
    config = context.recipe.train
    start = time.perf_counter()
    train_x = cached_features(classifier, source, list(context.train.texts),
                              config.eval_batch_size)
    valid_x = cached_features(classifier, source, list(context.valid.texts),
                              config.eval_batch_size)
    extract_seconds = time.perf_counter() - start
    head, dropout = classifier.head, classifier.head_dropout
    device = next(head.parameters()).device  # the prepared module may be on a GPU
    train_x, valid_x = train_x.to(device), valid_x.to(device)
    targets = torch.as_tensor(context.train_targets, device=device)
    optimizer = adamw(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    local = Stage(0, stage.epochs, stage.lr, "head", 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, stage_schedule([local], steps_per_epoch, config, config.lr))
    generator = torch.Generator().manual_seed(config.seed)
    state = state if state is not None else LoopState()
    callbacks = callbacks if callbacks is not None else Callback()
    epoch_seconds = []
    for epoch in range(stage.epochs):
        tick = time.perf_counter()
        head.train()
        order = torch.randperm(len(train_x), generator=generator)
        total = 0.0
        for begin in range(0, len(order), config.batch_size):
            rows = order[begin:begin + config.batch_size]
            with classifier.policy.autocast():  # the loop's precision, as on the backbone
                logits = head(dropout(train_x[rows]))
            loss = loss_fn(logits, targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(rows)
            state.step += 1
            callbacks.on_step_end(state)
        epoch_seconds.append(time.perf_counter() - tick)
        head.eval()
        with torch.no_grad(), classifier.policy.autocast():
            valid_logits = head(valid_x).float().cpu().numpy()
        on_eval({"epoch": float(stage.first_epoch + epoch + 1), "stage": stage.index,
                 "train_loss": total / len(train_x), "lr": scheduler.get_last_lr()[0],
                 "cached_features": True, "feature_seconds": round(extract_seconds, 3),
                 "epoch_seconds": epoch_seconds[-1],
                 "train_samples_per_s": len(train_x) / max(epoch_seconds[-1], 1e-9)},
                valid_logits)
        callbacks.on_epoch_end(state)
    return float(np.mean(epoch_seconds))
