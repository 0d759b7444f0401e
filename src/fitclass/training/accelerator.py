"""accelerate for the loop: one `Accelerator` per training run, in the precision the one
device/precision policy (`fitclass.precision`) resolves, and that policy as the loop's
evaluation, `encode` and co-teaching see it."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs

from fitclass.contracts.neural import NeuralClassifier
from fitclass.precision import Policy, training_policy
from fitclass.recipe import TrainConfig


def resolve_precision(precision: str) -> str:
    """accelerate's `mixed_precision` for `train.precision`: `auto` is bf16 on GPUs that have
    it, fp16 on older GPUs, fp32 (`no`) on CPU."""
    resolved = training_policy(precision).precision
    return "no" if resolved == "fp32" else resolved


def accelerator_policy(accelerator: Accelerator) -> Policy:
    """The policy the loop's evaluation, `encode` and co-teaching run under: the prepared
    module's device, autocast in the accelerator's mixed precision."""
    mixed = str(accelerator.mixed_precision)
    return Policy(accelerator.device, "fp32" if mixed == "no" else mixed)


def make_accelerator(precision: str, accumulation: int = 1,
                     find_unused: bool = True) -> Accelerator:
    """accelerate for this machine: GPUs when present; on CPU-only machines `cpu=True`,
    which is also what makes `torchrun`/`accelerate launch` start gloo DDP on CPUs.
    `find_unused`: DDP searches the graph for parameters without a gradient every step;
    needed when stages freeze parameters after DDP wrapped the module (DDP registers every
    parameter that required a gradient at wrap time), not otherwise (parameters no forward
    reaches are frozen before the wrap: `NeuralClassifier.unused_parameters`)."""
    ddp = DistributedDataParallelKwargs(find_unused_parameters=find_unused)
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


def freeze_unused(classifier: NeuralClassifier) -> None:
    """Parameters no forward reaches stop requiring a gradient before DDP wraps the module
    (so DDP need not look for them); a stage that trains `all` turns them on again later,
    harmlessly: they still get no gradient."""
    unused = set(classifier.unused_parameters())
    for name, parameter in classifier.module.named_parameters():
        if name in unused:
            parameter.requires_grad_(False)
