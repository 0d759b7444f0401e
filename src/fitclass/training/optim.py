"""Optimiser and schedule: AdamW without decay on biases and norms; warmup then decay."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import get_scheduler

from fitclass.recipe import TrainConfig
from fitclass.training.compiling import uses_cuda_graphs

SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Decay matrices only: one-dimensional tensors are biases and norm scales."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def capturable_adamw(device_type: str, compile_setting: str, compile_mode: str | None) -> bool:
    """Whether a run's AdamW is capturable: only where the step is compiled on a CUDA device
    in a CUDA-graph mode. Capturable keeps the learning rates as device tensors too (fused
    AdamW already keeps its step counts there), which a step captured in a CUDA graph needs (a
    float would be baked into the graph); the scheduler then writes them on the device
    (`fill_`), never reading back. Elsewhere a float learning rate is a kernel argument,
    read by no one on the device, and a tensor would only add a kernel per group and step."""
    return uses_cuda_graphs(compile_setting, device_type, compile_mode)


def adamw(params: Any, lr: float, weight_decay: float = 0.01,
          capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one pass over all tensors) where the parameters' device
    has one: on CPU its step is over 20x faster than the default multi-tensor path for a
    MiniLM-sized model (fused is also what Hugging Face Trainer uses by default).

    `capturable_on`: fused and capturable, every group's learning rate a tensor on that
    device (the device the parameters train on; `capturable_adamw` says when)."""
    if capturable_on is not None:
        return torch.optim.AdamW(device_lr_groups(params, lr, capturable_on),
                                 lr=torch.tensor(lr, device=capturable_on),
                                 weight_decay=weight_decay, fused=True, capturable=True)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def device_lr_groups(params: Any, lr: float, device: torch.device) -> list[dict[str, Any]]:
    """Parameter groups (or one group of the given parameters) with each group's learning
    rate (its own, else `lr`) as a 0-d float32 tensor on `device`."""
    items = list(params)
    groups: list[dict[str, Any]] = (
        items if items and isinstance(items[0], dict) else [{"params": items}])
    return [{**group, "lr": torch.tensor(float(group.get("lr", lr)), dtype=torch.float32,
                                         device=device)} for group in groups]


def build_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return adamw(parameter_groups(module, config.weight_decay), lr=config.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    warmup = round(config.warmup_ratio * total_steps)
    return get_scheduler(SCHEDULERS[config.scheduler], optimizer, num_warmup_steps=warmup,
                         num_training_steps=total_steps)


def build_stage_optimizer(module: nn.Module, config: TrainConfig,
                          fixed: frozenset[str] = frozenset(),
                          capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
    """AdamW over every parameter but the `fixed` ones in per-depth groups (layer decay when
    set); frozen parameters have no gradient and are skipped until a stage unfreezes them.
    `capturable_on`: as `adamw` takes it."""
    from fitclass.training.stages import layer_decay_groups

    return adamw(layer_decay_groups(module, config.lr, config.weight_decay,
                                    config.layer_decay, fixed), lr=config.lr,
                 capturable_on=capturable_on)


def build_stage_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                          steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Warmup and decay restarting at each stage, at the stage's peak learning rate."""
    from fitclass.training.stages import resolve_stages, stage_schedule

    multiplier = stage_schedule(resolve_stages(config), steps_per_epoch, config, config.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
