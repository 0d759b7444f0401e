"""Weight averaging: EMA during training; SWA over evaluated checkpoints and a greedy soup
after it. Every candidate is evaluated on validation and the run records which checkpoints
went into the final weights.

Checkpoints that SWA or the soup may need are kept as safetensors under
`checkpoints/evals/` (only the last k for `pick: last` without a soup), written in the
background (`training/writer.py`). The EMA is updated with one fused `torch._foreach_lerp_`
over all tensors on the model's device; SWA and the soup keep one running sum of their
members' weights and read the snapshots from disk one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fitclass.contracts.fit import CheckpointFolder
from fitclass.recipe import AveragingConfig
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.writer import finish, flush, host_copies, submit

#: Evaluates the module's current weights: returns the select metric's value.
Evaluate = Callable[[nn.Module], float | None]
State = dict[str, torch.Tensor]


def floats_of(module: nn.Module, fixed: frozenset[str] = frozenset()) -> State:
    """The module's floating-point tensors (views) that can change in training: all of them
    but the `fixed` ones (a backbone under adapters: averaging them changes nothing, and
    copying them would cost a copy of the whole model per snapshot)."""
    return {k: v for k, v in module.state_dict().items()
            if v.is_floating_point() and k not in fixed}


def state_of(module: nn.Module, fixed: frozenset[str] = frozenset()) -> State:
    return {k: v.detach().float().cpu().clone() for k, v in floats_of(module, fixed).items()}


def load_state(module: nn.Module, state: State) -> None:
    current = module.state_dict()
    module.load_state_dict({**current, **{k: v.to(device=current[k].device,
                                                  dtype=current[k].dtype)
                                          for k, v in state.items()}})


def add_into(total: State, state: State) -> State:
    """`total += state`, tensor by tensor in one fused call; returns `total`."""
    keys = list(total)
    torch._foreach_add_([total[k] for k in keys], [state[k] for k in keys])
    return total


def divided(total: State, count: int) -> State:
    """A new state: `total / count`."""
    keys = list(total)
    return dict(zip(keys, torch._foreach_div([total[k] for k in keys], count), strict=True))


def average(states: Iterable[State]) -> State:
    """The uniform mean of state dicts (float tensors), summed one at a time: one running
    total in memory, however many states (pass a generator that loads them)."""
    total: State | None = None
    count = 0
    for state in states:
        total = {k: v.clone() for k, v in state.items()} if total is None else add_into(
            total, state)
        count += 1
    if total is None:
        raise ValueError("average() of no states")
    return divided(total, count)


def write_snapshot(path: Path, state: State) -> None:
    """Write a state in the background (`state`: host copies from `writer.host_copies`)."""
    submit(path, partial(save_file, state, str(path)))


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> None:
    """Recompute BatchNorm running statistics for averaged weights (Izmailov et al. 2018):
    the average of running stats is not the stats of the averaged network."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass
    was_training = module.training
    module.train()
    for batch in batches:
        module(**batch)
    module.train(was_training)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


@dataclass
class Snapshot:
    step: int
    epoch: float
    value: float | None
    path: Path


@dataclass
class Averager:
    """Keeps the EMA and the evaluated checkpoints; picks the final weights at the end."""

    config: AveragingConfig
    run: CheckpointFolder
    mode: str  # "max" or "min": the select metric's direction
    #: state keys that never train (`NeuralClassifier.fixed_parameters`): not averaged
    fixed: frozenset[str] = frozenset()
    snapshots: list[Snapshot] = field(default_factory=list)
    ema: State | None = None
    ema_updates: int = 0
    ema_best: float | None = None
    #: The module's tensors the EMA follows, in `ema`'s order (views: they see in-place
    #: optimiser steps and `load_state_dict`), taken once from `_followed` per module.
    _sources: list[torch.Tensor] = field(default_factory=list, repr=False)
    _followed: nn.Module | None = field(default=None, repr=False)

    def better(self, a: float | None, b: float | None) -> bool:
        if a is None:
            return False
        if b is None:
            return True
        return a > b if self.mode == "max" else a < b

    def after_step(self, module: nn.Module) -> None:
        """`ema = decay * ema + (1 - decay) * weights`: one fused lerp over every tensor, on
        the model's device (no host sync, no per-tensor Python loop)."""
        if self.config.ema is None:
            return
        if self.ema is None:  # kept on the model's device: updated every step
            self.ema = {k: v.detach().float().clone()
                        for k, v in floats_of(module, self.fixed).items()}
            return
        self.ema_updates += 1
        decay = self.config.ema.decay
        if self.config.ema.warmup:
            decay = min(decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        targets = list(self.ema.values())
        sources = [s if s.dtype == torch.float32 else s.float() for s in self._track(module)]
        with torch.no_grad():
            torch._foreach_lerp_(targets, sources, 1 - decay)

    def _track(self, module: nn.Module) -> list[torch.Tensor]:
        """The module's tensors behind the EMA's keys. A state dict holds views of the
        parameters and buffers, which optimiser steps and `load_state_dict` update in place,
        so they are looked up once per module rather than every step."""
        if module is not self._followed:
            assert self.ema is not None
            state = module.state_dict()
            self._sources = [state[k].detach() for k in self.ema]
            self._followed = module
        return self._sources

    def after_eval(self, module: nn.Module, step: int, epoch: float, value: float | None,
                   evaluate: Evaluate) -> dict[str, Any]:
        """Snapshot for SWA/soup; evaluate the EMA. Returns extra history columns."""
        extra: dict[str, Any] = {}
        if self.config.swa is not None or self.config.soup:
            folder = self.run.checkpoint("evals")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"step-{step}.safetensors"
            floats = floats_of(module, self.fixed)
            write_snapshot(path, host_copies(floats, torch.float32))
            self.snapshots.append(Snapshot(step, epoch, value, path))
            self._prune()  # older snapshots: written before this one was queued
        if self.ema is not None:
            extra["ema_value"] = self._evaluate_state(module, self.ema, evaluate)
            if self.better(extra["ema_value"], self.ema_best):
                self.ema_best = extra["ema_value"]
                path = self.run.checkpoint("best-ema.safetensors")
                path.parent.mkdir(parents=True, exist_ok=True)  # EMA alone: nothing made it
                write_snapshot(path, host_copies(self.ema))
        return extra

    def _prune(self) -> None:
        swa = self.config.swa
        if self.config.soup or swa is None or swa.pick != "last":
            return
        while len(self.snapshots) > swa.k:
            self.snapshots.pop(0).path.unlink(missing_ok=True)

    def _evaluate_state(self, module: nn.Module, state: State,
                        evaluate: Evaluate) -> float | None:
        original = state_of(module, self.fixed)
        load_state(module, state)
        try:
            return evaluate(module)
        finally:
            load_state(module, original)

    def swa_members(self) -> list[Snapshot]:
        swa = self.config.swa
        assert swa is not None
        pool = [s for s in self.snapshots
                if swa.from_epoch is None or s.epoch >= swa.from_epoch]
        if swa.pick == "top":
            ranked = sorted((s for s in pool if s.value is not None),
                            key=lambda s: s.value or 0.0, reverse=self.mode == "max")
            return sorted(ranked[:swa.k], key=lambda s: s.step)
        return pool[-swa.k:]

    def greedy_soup(self, module: nn.Module, evaluate: Evaluate) -> tuple[list[int], float | None]:
        """Wortsman et al. 2022: add checkpoints, best first, while validation improves.
        Keeps the running sum of the members' weights and reads one candidate at a time:
        each trial is `(sum + candidate) / (n + 1)`. Leaves the soup in `module`."""
        flush()
        ranked = sorted((s for s in self.snapshots if s.value is not None),
                        key=lambda s: s.value or 0.0, reverse=self.mode == "max")
        if not ranked:
            return [], None
        members, score = [ranked[0]], ranked[0].value
        total = load_file(str(ranked[0].path))
        for candidate in ranked[1:]:
            trial = add_into(load_file(str(candidate.path)), total)  # the sum if it joins
            load_state(module, divided(trial, len(members) + 1))
            value = evaluate(module)
            if value is not None and not self.better(score, value):  # ties join the soup
                members, total, score = [*members, candidate], trial, value
        load_state(module, divided(total, len(members)))
        return [s.step for s in members], score

    def finalize(self, module: nn.Module, best_value: float | None, evaluate: Evaluate,
                 bn_batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """Choose the final weights among best checkpoint, SWA, EMA and soup (the module
        holds the best checkpoint on entry, and the chosen weights on return)."""
        flush()  # the snapshots and the best EMA may still be on their way to disk
        record: dict[str, Any] = {"final": "best_checkpoint", "best_checkpoint": best_value}
        chosen_state, chosen_value = state_of(module, self.fixed), best_value
        if self.config.swa is not None and len(self.swa_members()) >= 2:
            members = self.swa_members()
            candidate = average(load_file(str(s.path)) for s in members)
            best_state = state_of(module, self.fixed)
            load_state(module, candidate)
            if has_batchnorm(module):
                recalibrate_batchnorm(module, bn_batches())
                candidate = state_of(module, self.fixed)
                record["swa_bn_recalibrated"] = True
            value = evaluate(module)
            load_state(module, best_state)
            record["swa"] = {"steps": [s.step for s in members], "value": value}
            if self.config.swa.keep == "always" or self.better(value, chosen_value):
                chosen_state, chosen_value, record["final"] = candidate, value, "swa"
        if self.ema is not None and self.run.checkpoint("best-ema.safetensors").is_file():
            record["ema"] = {"value": self.ema_best, "decay": self.config.ema.decay
                             if self.config.ema else None}
            if self.better(self.ema_best, chosen_value):
                chosen_state = load_file(str(self.run.checkpoint("best-ema.safetensors")))
                chosen_value, record["final"] = self.ema_best, "ema"
        if self.config.soup:
            best_state = state_of(module, self.fixed)
            steps, value = self.greedy_soup(module, evaluate)
            soup_state = state_of(module, self.fixed)
            load_state(module, best_state)
            record["soup"] = {"steps": steps, "value": value}
            if self.better(value, chosen_value):
                chosen_state, chosen_value, record["final"] = soup_state, value, "soup"
        load_state(module, chosen_state)
        record["final_value"] = chosen_value
        return record


class Averaging(Callback):
    """Feeds the loop to an `Averager`: the EMA after every optimiser step (when `each_step`)
    and a snapshot (plus the EMA's score, as column `ema_<metric>`) after every evaluation.
    The cached head stages pass `each_step=False`: their steps move only the head."""

    def __init__(self, averager: Averager, module: Callable[[], nn.Module], metric: str,
                 evaluate: Evaluate, each_step: bool = True) -> None:
        self.averager, self.module, self.metric = averager, module, metric
        self.evaluate, self.each_step = evaluate, each_step

    def on_step_end(self, state: LoopState) -> None:
        if self.each_step:
            self.averager.after_step(self.module())

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        extra = self.averager.after_eval(self.module(), state.step, row["epoch"],
                                         row.get(self.metric), self.evaluate)
        if "ema_value" in extra:
            row[f"ema_{self.metric}"] = extra["ema_value"]

    def on_train_end(self, state: LoopState) -> None:
        finish()
