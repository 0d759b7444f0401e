"""Fine-tuning a neural classifier (text or image) through the recipe's stages, on
`accelerate`: one strategy of the one loop (`training/loop.py`).

One path for CPU, GPU (AMP) and DDP (`accelerate launch` / `torchrun`): accelerate places
tensors, scales losses, accumulates gradients and shards batches. Leading head-only stages
run first on cached features (`training/probe.py`) when the recipe allows; evaluation
happens on a step or epoch schedule, and the callbacks select the best checkpoint, save the
resume state, average weights, record dynamics and report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from fitclass.contracts.fit import FitContext, FitResult
from fitclass.contracts.neural import BatchTransform, NeuralClassifier
from fitclass.data.batching import LengthGroupedBatchSampler
from fitclass.errors import RecipeError
from fitclass.training import checkpoint, compiling
from fitclass.training.accelerator import (
    accelerator_policy,
    eval_interval,
    freeze_unused,
    make_accelerator,
)
from fitclass.training.callbacks import CallbackList
from fitclass.training.distillation import teacher_rows
from fitclass.training.dynamics import DynamicsRecorder
from fitclass.training.evaluation import evaluate, metric_columns
from fitclass.training.loop import run_loop
from fitclass.training.losses import Loss
from fitclass.training.objective import build_loss
from fitclass.training.optim import (
    build_stage_optimizer,
    build_stage_scheduler,
    capturable_adamw,
)
from fitclass.training.probe import run_cached_head_stages
from fitclass.training.samplers import batch_sampler, describe_batching, training_loader
from fitclass.training.selection import Selector
from fitclass.training.stages import Stage, resolve_stages, set_trainable, stage_at
from fitclass.training.state import LoopState
from fitclass.training.strategy import EvalSchedule, StepOutput
from fitclass.training.wiring import Wiring


@dataclass
class Prepared:
    """The prepared training objects: module, optimiser, loader and scheduler as accelerate
    returns them, the sampler under the loader and the on-device batch transform."""

    module: torch.nn.Module  # what the step runs (compiled under `train.compile`)
    optimizer: Any
    loader: Any
    scheduler: Any
    sampler: Any
    transform: BatchTransform | None
    num_rows: int
    #: how the rows were batched and why (`environment.json` -> `batching`)
    batching: dict[str, Any]
    plain: torch.nn.Module  # the prepared module, never compiled (unwrapped to save)


class FineTuneStep:
    """The standard step: forward, the recipe's loss, backward, clip, optimiser and
    scheduler step (under accelerate's gradient accumulation); stages switch the trainable
    parameters at their first epoch."""

    def __init__(self, classifier: NeuralClassifier, context: FitContext,
                 accelerator: Accelerator, prepared: Prepared, loss_fn: Loss,
                 stages: list[Stage], steps_per_epoch: int) -> None:
        self.classifier, self.context, self.accelerator = classifier, context, accelerator
        self.prepared, self.loss_fn, self.stages = prepared, loss_fn, stages
        self.config = context.recipe.train
        self.steps_per_epoch = steps_per_epoch
        self.end_epoch = self.config.total_epochs
        self.schedule = EvalSchedule(every_steps=eval_interval(self.config, steps_per_epoch),
                                     check_every=self.config.log_every)
        self.entered: int | None = None  # the stage whose trainable set this process applied
        self.teacher = teacher_rows(context, accelerator.device)  # `distil`: soft targets

    def batches(self, state: LoopState) -> Iterator[Any]:
        self._enter_stage(state.epoch)
        prepared = self.prepared
        prepared.sampler.set_epoch(state.epoch)
        # accelerate's loader re-sets the sampler's epoch from its own counter, which starts
        # at 0 in a resumed process: align it, or resumed epochs replay earlier batch orders.
        prepared.loader.set_epoch(state.epoch)
        skip = state.batches_in_epoch
        prepared.module.train()
        loader = prepared.loader
        return iter(self.accelerator.skip_first_batches(loader, skip) if skip else loader)

    def _enter_stage(self, epoch: int) -> None:
        stage = stage_at(self.stages, epoch)
        if stage.index == self.entered:
            return
        module = self.accelerator.unwrap_model(self.prepared.plain)
        trainable = set_trainable(module, stage.trainable, self.classifier.fixed_parameters())
        if self.entered is not None or (epoch == stage.first_epoch and epoch > 0):
            self.prepared.optimizer.state.clear()  # each stage starts a fresh optimiser
        self.entered = stage.index
        self.context.reporter.log(
            f"stage {stage.index}: epochs {stage.first_epoch + 1}-"
            f"{stage.first_epoch + stage.epochs}, lr {stage.lr:g}, trains "
            f"{stage.trainable} ({len(trainable)} tensors)")

    def step(self, batch: Any, state: LoopState) -> StepOutput:
        prepared, accelerator = self.prepared, self.accelerator
        labels, positions = batch.pop("labels"), batch.pop("row")
        # a distillation's teacher probabilities join the rows' targets (by position);
        # augmentation, MixUp/CutMix (soft targets); dynamics keep the given labels
        targets = labels if self.teacher is None else self.teacher.targets(labels, positions)
        transform = prepared.transform
        batch, targets = (batch, targets) if transform is None else transform(batch, targets)
        with accelerator.accumulate(prepared.plain):  # DDP no_sync lives on the plain one
            logits = prepared.module(**batch)["logits"]
            loss = self.loss_fn(logits, targets)
            accelerator.backward(loss)
            if accelerator.sync_gradients and self.config.grad_clip:
                accelerator.clip_grad_norm_(prepared.module.parameters(), self.config.grad_clip)
            prepared.optimizer.step()
            prepared.scheduler.step()
            prepared.optimizer.zero_grad(set_to_none=True)
        return StepOutput(loss=loss.detach(), rows=len(labels) * accelerator.num_processes,
                          synced=accelerator.sync_gradients, logits=logits.detach(),
                          labels=labels, positions=positions)

    def evaluate(self, state: LoopState) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": state.step, "epoch": round(state.step / self.steps_per_epoch, 4),
            "stage": stage_at(self.stages, state.epoch).index, "train_loss": state.train_loss,
            "lr": float(self.prepared.scheduler.get_last_lr()[0]),  # a tensor when capturable
            "train_samples_per_s": state.samples_per_second}
        self.classifier.module = self.accelerator.unwrap_model(self.classifier.module)
        state.metrics, _ = evaluate(self.classifier, self.context, self.loss_fn,
                                    self.config.eval_batch_size, self.accelerator)
        row.update(metric_columns(state.metrics))
        self.prepared.module.train()
        return row


def prepare(classifier: NeuralClassifier, context: FitContext,
            accelerator: Accelerator) -> Prepared:
    """The loader with the recipe's sampler, the stage-aware optimiser and scheduler, all
    through `accelerator.prepare`."""
    config = context.recipe.train
    targets = context.train_targets
    data = classifier.training_data(context.train.texts, targets, context.recipe)
    sampler = batch_sampler(context.recipe, data, targets, context.task.kind)
    batching = describe_batching(data, context.recipe)
    context.reporter.log(f"batching: {batching['mode']} ({batching['reason']})")
    if accelerator.num_processes > 1 and isinstance(sampler, LengthGroupedBatchSampler):
        sampler.short_batch_last = True
        sampler.round_size = accelerator.num_processes  # a step's batches: one length group
    loader = training_loader(data, sampler)
    schedule_steps = math.ceil(len(loader) / config.grad_accumulation)  # unsharded
    device = accelerator.device
    capturable = capturable_adamw(device.type, config.compile, compiling.MODE)
    optimizer = build_stage_optimizer(classifier.module, config,
                                      classifier.fixed_parameters(),
                                      capturable_on=device if capturable else None)
    scheduler = build_stage_scheduler(optimizer, config, schedule_steps)
    module, optimizer, loader, scheduler = accelerator.prepare(
        classifier.module, optimizer, loader, scheduler)
    # the step runs the compiled module; `classifier.module` stays the plain one (saved,
    # evaluated, averaged) and shares its parameters
    return Prepared(compiling.compiled(module, config.compile, device), optimizer, loader,
                    scheduler, sampler, data.transform, len(data.rows), batching,
                    plain=module)


def fit_transformer(classifier: NeuralClassifier, context: FitContext) -> FitResult:
    """Fine-tune `classifier` (text or image) through the recipe's stages; return it with the
    final weights (best checkpoint, or an average when `averaging` finds one better)."""
    config, reporter = context.recipe.train, context.reporter
    set_seed(config.seed)
    stages = resolve_stages(config)
    accelerator = make_accelerator(config.precision, config.grad_accumulation,
                                   find_unused=any(s.trainable != "all" for s in stages))
    reporter.enabled = reporter.enabled and accelerator.is_main_process
    freeze_unused(classifier)
    if config.gradient_checkpointing and not classifier.enable_gradient_checkpointing():
        raise RecipeError(f"train.gradient_checkpointing: {type(classifier).__name__} cannot "
                          f"recompute activations (a Hugging Face text backbone can); set "
                          f"train.gradient_checkpointing: false")
    classifier.policy = accelerator_policy(accelerator)  # before its training data's probe
    prepared = prepare(classifier, context, accelerator)
    steps_per_epoch = math.ceil(len(prepared.loader) / config.grad_accumulation)
    loss_fn = build_loss(context.recipe, context.labelled_targets, context.class_names)
    strategy = FineTuneStep(classifier, context, accelerator, prepared, loss_fn, stages,
                            steps_per_epoch)
    wiring = Wiring.for_context(context, classifier, accelerator, loss_fn)
    recorder = (DynamicsRecorder(prepared.num_rows, config.total_epochs, context.task)
                if context.recipe.noise.dynamics else None)
    state = LoopState(total_steps=steps_per_epoch * config.total_epochs)
    cached = False
    if context.resume and checkpoint.has_training_state(context.run):
        state = _resumed(context, accelerator, wiring.selector, recorder, state.total_steps,
                         classifier.fixed_parameters())
    elif (config.cache_features and stages[0].trainable == "head"
          and (encoder := classifier.feature_encoder()) is not None):
        run_cached_head_stages(encoder, context, stages, loss_fn, state, steps_per_epoch,
                               wiring)
        _fast_forward(prepared.scheduler, state.step)
        cached = True
    run_loop(strategy, state, CallbackList(
        wiring.callbacks(cached=False, recorder=recorder, after_cached=cached)))
    accelerator.wait_for_everyone()
    return _result(classifier, context, accelerator, prepared, wiring, state, recorder)


def _resumed(context: FitContext, accelerator: Accelerator, selector: Selector,
             recorder: DynamicsRecorder | None, total_steps: int,
             fixed: frozenset[str]) -> LoopState:
    """The loop state, selector and dynamics of the run's last training checkpoint (its
    weights without the `fixed` base under adapters, which the model already holds)."""
    state = LoopState.from_json(checkpoint.load_training_state(context.run, accelerator,
                                                               fixed))
    state.total_steps = total_steps
    selector.restore(state.selector or {})
    if recorder is not None:
        recorder.restore(checkpoint.load_arrays(context.run))
    context.reporter.log(f"resumed at step {state.step} of {total_steps}")
    return state


def _fast_forward(scheduler: Any, steps: int) -> None:
    """Move the schedule past the steps the cached stages took."""
    with warnings.catch_warnings():  # stepping a scheduler before its optimiser warns
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


def _result(classifier: NeuralClassifier, context: FitContext, accelerator: Accelerator,
            prepared: Prepared, wiring: Wiring, state: LoopState,
            recorder: DynamicsRecorder | None) -> FitResult:
    """The final weights (best checkpoint, then averaging's choice) and the fit's record."""
    final = accelerator.unwrap_model(prepared.plain)
    fixed = classifier.fixed_parameters()
    for name, parameter in final.named_parameters():
        parameter.requires_grad_(name not in fixed)
    selector = wiring.selector
    best: dict[str, Any] = {"metric": selector.metric, "value": selector.best_value,
                            "step": selector.best_step, "valid_loss": selector.best_loss}
    # Under DDP only the main process keeps the best weights; the others' copies are dropped.
    if accelerator.is_main_process and not checkpoint.restore_selected(
            context.run, final, selector.best_step, fixed):
        if len(context.valid) == 0:  # a refit: nothing to select on, by design
            best["weights"] = "final (no validation rows: trained on every labelled row)"
        else:
            best["weights"] = "final (no evaluation selected a best checkpoint)"
            context.reporter.log(f"warning: no evaluation gave a {selector.metric} value, so "
                                 f"no best checkpoint was selected; the final weights are kept")
    classifier.module = final
    if wiring.averager is not None:
        best["averaging"] = wiring.averager.finalize(
            final, selector.best_value, wiring.evaluate_metric,
            lambda: _input_batches(prepared.loader))
        context.reporter.log(f"averaging: final weights from {best['averaging']['final']}")
    dynamics = None if recorder is None else recorder.summary(
        context.train.ids, [str(label) for label in context.train.labels or []],
        context.class_names)
    return FitResult(classifier=classifier, history=state.history, best=best,
                     train_seconds=state.train_seconds,
                     train_samples_per_second=state.samples_per_second, dynamics=dynamics,
                     batching=prepared.batching)


def _input_batches(loader: Any, limit: int = 200) -> Any:
    """Model inputs of up to `limit` training batches (BatchNorm recalibration)."""
    for index, batch in enumerate(loader):
        if index >= limit:
            return
        yield {k: v for k, v in batch.items() if k not in ("labels", "row")}
