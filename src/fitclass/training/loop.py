"""The fine-tuning loop for transformer classifiers, on `accelerate`.

One loop for CPU, GPU (AMP) and DDP (`accelerate launch` / `torchrun`): accelerate places
tensors, scales losses, accumulates gradients and shards batches. Evaluation happens on a
step or epoch schedule; each evaluation may become the best checkpoint, saves the resumable
training state, and feeds early stopping.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, set_seed

from fitclass.contracts.fit import FitContext, FitResult
from fitclass.contracts.neural import BatchTransform, FeatureEncoder, NeuralClassifier
from fitclass.data.batching import LengthGroupedBatchSampler
from fitclass.errors import FitclassError
from fitclass.metrics import headline
from fitclass.precision import Policy, training_policy
from fitclass.recipe import TrainConfig
from fitclass.training import checkpoint
from fitclass.training.averaging import Averager
from fitclass.training.callbacks import CallbackList
from fitclass.training.dynamics import DynamicsRecorder
from fitclass.training.losses import Loss
from fitclass.training.objective import build_loss
from fitclass.training.optim import build_stage_optimizer, build_stage_scheduler
from fitclass.training.probe import train_head
from fitclass.training.samplers import make_sampler
from fitclass.training.selection import Selector
from fitclass.training.stages import Stage, resolve_stages, set_trainable, stage_at
from fitclass.training.state import LoopState


def resolve_precision(precision: str) -> str:
    """accelerate's `mixed_precision` for `train.precision`, resolved by the one policy
    (`fitclass.precision`): `auto` is bf16 on GPUs that have it, fp16 on older GPUs, fp32
    (`no`) on CPU."""
    resolved = training_policy(precision).precision
    return "no" if resolved == "fp32" else resolved


def accelerator_policy(accelerator: Accelerator) -> Policy:
    """The policy the loop's evaluation, `encode` and co-teaching run under: the prepared
    module's device, autocast in the accelerator's mixed precision."""
    mixed = str(accelerator.mixed_precision)
    return Policy(accelerator.device, "fp32" if mixed == "no" else mixed)


def make_accelerator(precision: str, accumulation: int = 1) -> Accelerator:
    """accelerate for this machine: GPUs when present; on CPU-only machines `cpu=True`,
    which is also what makes `torchrun`/`accelerate launch` start gloo DDP on CPUs."""
    # Kept on although it costs an extra graph walk per step under DDP: parameters without
    # a gradient are the rule here, not an accident. Text encoders' poolers never get one
    # (the head reads `last_hidden_state`), and stages freeze parameters after DDP wrapped
    # the module (DDP registers every parameter that required a gradient at wrap time).
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    mixed = resolve_precision(precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed:
        # accelerate keeps one process-wide state and refuses another precision; a process
        # that trains several recipes (tests, sweeps over train.precision) starts it afresh.
        # The distributed (PartialState) part is kept.
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed,
                       gradient_accumulation_steps=accumulation,
                       cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])


def eval_interval(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps between evaluations."""
    every = config.eval_every
    steps = every.value if every.unit == "steps" else every.value * steps_per_epoch
    return max(1, round(steps))


def evaluate(classifier: NeuralClassifier, context: FitContext, loss_fn: Loss,
             batch_size: int) -> tuple[dict[str, Any], np.ndarray]:
    """Validation metrics (plus `loss`, the training criterion) and probabilities."""
    logits = torch.from_numpy(classifier.logits(context.valid.texts, batch_size))
    targets = context.valid_targets
    probs = context.task.probabilities(logits).numpy()
    metrics = context.task.metrics(targets, probs)
    metrics["loss"] = float(loss_fn(logits, torch.from_numpy(targets)))
    return metrics, probs


def _loader(classifier: NeuralClassifier,
            context: FitContext) -> tuple[Any, Any, int, BatchTransform | None]:
    """(DataLoader with the recipe's sampler, the sampler, number of training rows, the
    classifier's on-device batch transform)."""
    config = context.recipe.train
    targets = context.train_targets
    data = classifier.training_data(context.train.texts, targets, context.recipe)
    sampler = make_sampler(context.recipe.imbalance.sampler, data.lengths, targets,
                           config.batch_size, config.seed)
    loader = torch.utils.data.DataLoader(data.rows, batch_sampler=sampler,
                                         collate_fn=data.collate, num_workers=data.workers,
                                         pin_memory=data.pin_memory,
                                         persistent_workers=data.workers > 0)
    return loader, sampler, len(data.rows), data.transform


def fit_transformer(classifier: NeuralClassifier, context: FitContext) -> FitResult:
    """Fine-tune `classifier` (text or image) through the recipe's stages; return it with the
    final weights (best checkpoint, or an average when `averaging` finds one better)."""
    config, run, reporter = context.recipe.train, context.run, context.reporter
    set_seed(config.seed)
    accelerator = make_accelerator(config.precision, config.grad_accumulation)
    reporter.enabled = reporter.enabled and accelerator.is_main_process
    loader, sampler, num_rows, transform = _loader(classifier, context)
    if accelerator.num_processes > 1 and isinstance(sampler, LengthGroupedBatchSampler):
        sampler.short_batch_last = True
    schedule_steps = math.ceil(len(loader) / config.grad_accumulation)  # unsharded
    optimizer = build_stage_optimizer(classifier.module, config)
    scheduler = build_stage_scheduler(optimizer, config, schedule_steps)
    module, optimizer, loader, scheduler = accelerator.prepare(
        classifier.module, optimizer, loader, scheduler)
    classifier.policy = accelerator_policy(accelerator)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accumulation)
    stages, epochs = resolve_stages(config), config.total_epochs
    total_steps = steps_per_epoch * epochs
    interval = eval_interval(config, steps_per_epoch)
    loss_fn = build_loss(context.recipe, context.train_targets, context.class_names)
    selector = Selector(config.select.metric, config.select.direction,
                        config.early_stopping.min_delta if config.early_stopping else 0.0)
    averager = (Averager(context.recipe.averaging, run, config.select.direction)
                if context.recipe.averaging.active else None)
    state = LoopState(total_steps=total_steps)
    callbacks = CallbackList(context.callbacks)
    recorder = (DynamicsRecorder(num_rows, epochs, context.task.multilabel)
                if context.recipe.noise.dynamics else None)
    if context.resume and checkpoint.has_training_state(run):
        state = LoopState.from_json(checkpoint.load_training_state(run, accelerator))
        state.total_steps = total_steps
        selector.restore(state.selector or {})
        if recorder is not None:
            recorder.restore(checkpoint.load_arrays(run))
        reporter.log(f"resumed at step {state.step} of {total_steps}")
    elif (config.cache_features and stages[0].trainable == "head"
          and (encoder := classifier.feature_encoder()) is not None):
        _cached_head_stages(classifier, encoder, context, stages, loss_fn, selector, state,
                            accelerator, averager, callbacks)
        with warnings.catch_warnings():  # fast-forward the schedule past the cached stages
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state.step):
                scheduler.step()
    reporter.start(total_steps, done=state.step)
    callbacks.on_train_begin(state)
    running_loss, running_batches = 0.0, 0
    entered: int | None = None  # the stage whose trainable set is applied in this process
    tick = time.perf_counter()
    for epoch in range(state.epoch, epochs):
        stage = stage_at(stages, epoch)
        if stage.index != entered:
            trainable = set_trainable(accelerator.unwrap_model(module), stage.trainable)
            if entered is not None or (epoch == stage.first_epoch and epoch > 0):
                optimizer.state.clear()  # each stage starts a fresh optimiser
            entered = stage.index
            reporter.log(f"stage {stage.index}: epochs {stage.first_epoch + 1}-"
                         f"{stage.first_epoch + stage.epochs}, lr {stage.lr:g}, trains "
                         f"{stage.trainable} ({len(trainable)} tensors)")
        sampler.set_epoch(epoch)
        # accelerate's loader re-sets the sampler's epoch from its own counter, which starts
        # at 0 in a resumed process: align it, or resumed epochs replay earlier batch orders.
        loader.set_epoch(epoch)
        skip = state.batches_in_epoch if epoch == state.epoch else 0
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        state.epoch, state.batches_in_epoch = epoch, skip
        module.train()
        for batch in batches:
            labels, positions = batch.pop("labels"), batch.pop("row")
            # augmentation, MixUp/CutMix (soft targets); dynamics keep the given labels
            batch, targets = (batch, labels) if transform is None else transform(batch, labels)
            with accelerator.accumulate(module):
                logits = module(**batch)["logits"]
                loss = loss_fn(logits, targets)
                if recorder is not None:
                    recorder.record(epoch, positions, logits.detach(), labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.grad_clip:
                    accelerator.clip_grad_norm_(module.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            state.train_samples += len(labels) * accelerator.num_processes
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise FitclassError(f"training diverged: loss is {loss_value} at step "
                                    f"{state.step + 1}; lower train.lr or use "
                                    f"train.grad_clip")
            running_loss, running_batches = running_loss + loss_value, running_batches + 1
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            if averager is not None:
                averager.after_step(accelerator.unwrap_model(module))
            elapsed = state.train_seconds + time.perf_counter() - tick
            reporter.step(running_loss / running_batches, state.train_samples / elapsed)
            callbacks.on_step_end(state)
            if state.step % interval and state.step != total_steps and not state.should_stop:
                continue
            state.train_seconds = elapsed
            row = {"step": state.step, "epoch": round(state.step / steps_per_epoch, 4),
                   "stage": stage.index, "train_loss": running_loss / running_batches,
                   "lr": scheduler.get_last_lr()[0],
                   "train_samples_per_s": state.train_samples / elapsed}
            running_loss, running_batches = 0.0, 0
            _evaluate_and_checkpoint(classifier, context, accelerator, loss_fn, selector,
                                     state, row, recorder, averager)
            callbacks.on_evaluate(state, row)
            module.train()
            tick = time.perf_counter()
            if state.should_stop:
                break
        if state.should_stop:
            break
        callbacks.on_epoch_end(state)
    callbacks.on_train_end(state)
    reporter.close()
    accelerator.wait_for_everyone()
    final = accelerator.unwrap_model(module)
    for parameter in final.parameters():
        parameter.requires_grad_(True)
    best: dict[str, Any] = {"metric": selector.metric, "value": selector.best_value,
                            "step": selector.best_step, "valid_loss": selector.best_loss}
    # Under DDP only the main process keeps the best weights; the others' copies are dropped.
    if accelerator.is_main_process and not checkpoint.restore_selected(run, final,
                                                                       selector.best_step):
        best["weights"] = "final (no evaluation selected a best checkpoint)"
        reporter.log(f"warning: no evaluation gave a {selector.metric} value, so no best "
                     f"checkpoint was selected; the final weights are kept")
    classifier.module = final
    if averager is not None:
        best["averaging"] = averager.finalize(
            final, selector.best_value,
            lambda _: evaluate(classifier, context, loss_fn,
                               config.eval_batch_size)[0].get(config.select.metric),
            lambda: _input_batches(loader))
        reporter.log(f"averaging: final weights from {best['averaging']['final']}")
    samples_per_s = state.train_samples / max(state.train_seconds, 1e-9)
    dynamics = None if recorder is None else recorder.summary(
        context.train.ids, [str(label) for label in context.train.labels or []],
        context.class_names)
    return FitResult(classifier=classifier, history=state.history, best=best,
                     train_seconds=state.train_seconds, train_samples_per_second=samples_per_s,
                     dynamics=dynamics)


def _input_batches(loader: Any, limit: int = 200) -> Any:
    """Model inputs of up to `limit` training batches (BatchNorm recalibration)."""
    for index, batch in enumerate(loader):
        if index >= limit:
            return
        yield {k: v for k, v in batch.items() if k not in ("labels", "row")}


def _cached_head_stages(classifier: NeuralClassifier, encoder: FeatureEncoder,
                        context: FitContext, stages: list[Stage], loss_fn: Loss,
                        selector: Selector, state: LoopState, accelerator: Accelerator,
                        averager: Averager | None, callbacks: CallbackList) -> None:
    """Run the leading head-only stages on cached features; advance `state` past them."""
    source = encoder.feature_source
    if not context.recipe.model.pretrained:  # random weights: the source's features are not
        source = None  # these weights' features, so nothing is cached
    config = context.recipe.train
    steps_per_epoch = math.ceil(len(context.train) / config.batch_size /
                                config.grad_accumulation)
    for stage in stages:
        if stage.trainable != "head":
            break

        def on_eval(row: dict[str, Any], valid_logits: np.ndarray) -> None:
            state.epoch = int(row["epoch"])
            state.step = state.epoch * steps_per_epoch
            logits = torch.from_numpy(valid_logits)
            probs = context.task.probabilities(logits).numpy()
            metrics = context.task.metrics(context.valid_targets, probs)
            metrics["loss"] = float(loss_fn(logits, torch.from_numpy(context.valid_targets)))
            row = {"step": state.step, **row, "valid_loss": metrics["loss"]}
            row.update({k: v for k, v in metrics.items()
                        if isinstance(v, float | int) and k != "n"})
            improved = selector.update(metrics.get(config.select.metric), state.step,
                                       metrics["loss"])
            row["is_best"] = improved
            state.history.append(row)
            if improved and accelerator.is_main_process:
                checkpoint.save_best(context.run, classifier.module)
            if averager is not None:
                averager.after_eval(classifier.module, state.step, row["epoch"],
                                    metrics.get(config.select.metric), lambda _: None)
            context.reporter.evaluated(row | headline(metrics, config.select.metric),
                                       config.select.metric, improved,
                                       more_follows=row["epoch"] < config.total_epochs)
            callbacks.on_evaluate(state, row)

        seconds = train_head(encoder, context, stage, source, loss_fn, on_eval,
                             state, callbacks)
        context.reporter.log(f"stage {stage.index} trained the head on cached features: "
                             f"{seconds:.3f}s per epoch")
    state.batches_in_epoch = 0


def _evaluate_and_checkpoint(classifier: NeuralClassifier, context: FitContext,
                             accelerator: Accelerator, loss_fn: Loss, selector: Selector,
                             state: LoopState, row: dict[str, Any],
                             recorder: DynamicsRecorder | None = None,
                             averager: Averager | None = None) -> None:
    """Evaluate, update best and history, save state; set `state.should_stop` when early
    stopping says stop. The reporter's stop checks (a sweep's pruner) hear only evaluations
    that more training follows."""
    config, run = context.recipe.train, context.run
    classifier.module = accelerator.unwrap_model(classifier.module)
    metrics, _ = evaluate(classifier, context, loss_fn, config.eval_batch_size)
    row["valid_loss"] = metrics["loss"]
    row.update({k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "n"})
    improved = selector.update(metrics.get(config.select.metric), state.step,
                               metrics["loss"])
    row["is_best"] = improved
    if averager is not None:
        extra = averager.after_eval(
            classifier.module, state.step, row["epoch"], metrics.get(config.select.metric),
            lambda _: evaluate(classifier, context, loss_fn,
                               config.eval_batch_size)[0].get(config.select.metric))
        if "ema_value" in extra:
            row[f"ema_{config.select.metric}"] = extra["ema_value"]
    state.history.append(row)
    state.selector = selector.state()
    if improved and accelerator.is_main_process:
        checkpoint.save_best(run, classifier.module)
    # every process calls save_state (it synchronises); non-main ones write to scratch
    checkpoint.save_training_state(run, accelerator, state.to_json(),
                                   recorder.state() if recorder is not None else None)
    accelerator.wait_for_everyone()
    patience = config.early_stopping.patience if config.early_stopping else None
    stop = patience is not None and selector.evals_without_improvement >= patience
    state.should_stop = state.should_stop or stop
    last = state.should_stop or state.step >= state.total_steps
    context.reporter.evaluated(row | headline(metrics, config.select.metric),
                               config.select.metric, improved, more_follows=not last)
    if stop:
        context.reporter.log(f"early stopping: no {config.select.metric} improvement in "
                             f"{patience} evaluations")

