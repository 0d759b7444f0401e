"""The transfer schedule: stages that unfreeze the backbone from the top down, and
layer-wise (discriminative) learning rates.

Blocks are found from the model's structure, not its name: the `nn.ModuleList` holding the
most parameters is the stack of blocks (BERT's `encoder.layer`, a ResNet's `stages`);
parameters before it (embeddings, stem) are depth 0, block i is depth i + 1, and everything
after it (pooler, final norm, our head) is the top. Layer decay gives depth d the learning
rate lr * decay ** (top - d).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fitclass.recipe import StageConfig, TopBlocks, TrainConfig

HEAD_PREFIX = "head."


@dataclass
class Stage:
    """A resolved stage: its optimiser steps and the epochs where it starts and ends."""

    index: int
    epochs: int
    lr: float
    trainable: str | int  # "head", "all", or the number of top blocks
    first_epoch: int


def resolve_stages(config: TrainConfig) -> list[Stage]:
    """The recipe's stages, or one full fine-tune of `epochs` at `lr`."""
    raw = config.stages or [StageConfig(epochs=config.epochs, lr=config.lr, trainable="all")]
    stages, first = [], 0
    for index, stage in enumerate(raw):
        trainable: str | int = (stage.trainable.top_k_blocks
                                if isinstance(stage.trainable, TopBlocks) else stage.trainable)
        stages.append(Stage(index, stage.epochs, stage.lr, trainable, first))
        first += stage.epochs
    return stages


def stage_at(stages: list[Stage], epoch: int) -> Stage:
    return next(s for s in reversed(stages) if s.first_epoch <= epoch)


def find_blocks(module: nn.Module) -> tuple[str, int]:
    """(dotted name, length) of the ModuleList that holds the most parameters."""
    best, best_size, best_length = "", -1, 0
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and len(child) > 1 and not name.startswith("head"):
            size = sum(p.numel() for p in child.parameters())
            if size > best_size:
                best, best_size, best_length = name, size, len(child)
    return best, best_length


def parameter_depths(module: nn.Module) -> tuple[dict[str, int], int]:
    """Depth of every parameter (0 = input side), and the top depth (head and after).
    A module that knows its own blocks (`block_depths()`, e.g. timm's) answers itself."""
    own = getattr(module, "block_depths", None)
    if callable(own):
        depths_and_top: tuple[dict[str, int], int] = own()
        return depths_and_top
    blocks, count = find_blocks(module)
    top = count + 1
    depths, seen_blocks = {}, False
    for name, _ in module.named_parameters():
        if blocks and name.startswith(blocks + "."):
            seen_blocks = True
            depths[name] = int(name[len(blocks) + 1:].split(".")[0]) + 1
        else:
            depths[name] = top if (seen_blocks or name.startswith(HEAD_PREFIX)) else 0
    return depths, top


def set_trainable(module: nn.Module, trainable: str | int,
                  fixed: frozenset[str] = frozenset()) -> list[str]:
    """Freeze everything but what the stage trains; returns the trainable parameter names.
    `fixed` parameters (a backbone under adapters) stay frozen in every stage, so under
    `model.peft` `all` trains the adapters and the head, top-k blocks the adapters of those
    blocks and the head."""
    depths, top = parameter_depths(module)
    names = []
    for name, parameter in module.named_parameters():
        if name in fixed:
            on = False
        elif trainable == "all":
            on = True
        elif trainable == "head":
            on = name.startswith(HEAD_PREFIX)
        else:
            on = depths[name] > top - 1 - int(trainable)  # top blocks + everything above
        parameter.requires_grad_(on)
        if on:
            names.append(name)
    return names


def layer_decay_groups(module: nn.Module, lr: float, weight_decay: float,
                       decay: float | None,
                       fixed: frozenset[str] = frozenset()) -> list[dict[str, object]]:
    """Parameter groups with per-depth learning rates (1-D tensors never decayed).
    Every parameter is in a group, frozen or not, so one optimiser serves all stages; only
    `fixed` ones (never trained: a backbone under adapters) are left out. An adapter's depth
    is its block's, so layer decay scales adapters as it scales the weights they adapt."""
    depths, top = parameter_depths(module)
    groups: dict[tuple[int, bool], dict[str, object]] = {}
    for name, parameter in module.named_parameters():
        if name in fixed:
            continue
        depth = depths[name]
        scale = 1.0 if decay is None else decay ** (top - depth)
        key = (depth, parameter.ndim >= 2)
        group = groups.setdefault(key, {"params": [], "lr": lr * scale, "depth": depth,
                                        "weight_decay": weight_decay if key[1] else 0.0})
        group["params"].append(parameter)  # type: ignore[attr-defined]
    return [groups[k] for k in sorted(groups)]


def stage_schedule(stages: list[Stage], steps_per_epoch: int, config: TrainConfig,
                   base_lr: float) -> Callable[[int], float]:
    """A multiplier per optimiser step: each stage warms up and decays on its own, at its
    own peak rate relative to `base_lr` (so layer-decay ratios are kept)."""
    bounds = [(s.first_epoch * steps_per_epoch, s.epochs * steps_per_epoch, s.lr / base_lr)
              for s in stages]

    def multiplier(step: int) -> float:
        start, length, peak = next(b for b in reversed(bounds) if b[0] <= step)
        local = step - start
        warmup = round(config.warmup_ratio * length)
        if warmup and local < warmup:
            return peak * (local + 1) / warmup
        progress = min(1.0, (local - warmup) / max(1, length - warmup))
        if config.scheduler == "constant":
            return peak
        if config.scheduler == "cosine":
            return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak * max(0.0, 1.0 - progress)

    return multiplier
