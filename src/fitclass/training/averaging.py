"""Weight averaging: EMA during training; SWA over evaluated checkpoints and a greedy soup
after it. Every candidate is evaluated on validation and the run records which checkpoints
went into the final weights.

Checkpoints that SWA or the soup may need are kept as safetensors under
`checkpoints/evals/` (only the last k for `pick: last` without a soup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fitclass.contracts.fit import CheckpointFolder
from fitclass.recipe import AveragingConfig
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState

#: Evaluates the module's current weights: returns the select metric's value.
Evaluate = Callable[[nn.Module], float | None]


def state_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()
            if v.is_floating_point()}


def load_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    current = module.state_dict()
    module.load_state_dict({**current, **{k: v.to(device=current[k].device,
                                                  dtype=current[k].dtype)
                                          for k, v in state.items()}})


def on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform mean of several state dicts (float tensors)."""
    return {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}


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
    snapshots: list[Snapshot] = field(default_factory=list)
    ema: dict[str, torch.Tensor] | None = None
    ema_updates: int = 0
    ema_best: float | None = None

    def better(self, a: float | None, b: float | None) -> bool:
        if a is None:
            return False
        if b is None:
            return True
        return a > b if self.mode == "max" else a < b

    def after_step(self, module: nn.Module) -> None:
        if self.config.ema is None:
            return
        if self.ema is None:  # kept on the model's device: updated every step
            self.ema = {k: v.detach().float().clone() for k, v in module.state_dict().items()
                        if v.is_floating_point()}
            return
        self.ema_updates += 1
        decay = self.config.ema.decay
        if self.config.ema.warmup:
            decay = min(decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        with torch.no_grad():
            for key, value in module.state_dict().items():
                if key in self.ema:
                    self.ema[key].mul_(decay).add_(value.detach().float(), alpha=1 - decay)

    def after_eval(self, module: nn.Module, step: int, epoch: float, value: float | None,
                   evaluate: Evaluate) -> dict[str, Any]:
        """Snapshot for SWA/soup; evaluate the EMA. Returns extra history columns."""
        extra: dict[str, Any] = {}
        if self.config.swa is not None or self.config.soup:
            folder = self.run.checkpoint("evals")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"step-{step}.safetensors"
            save_file(state_of(module), str(path))
            self.snapshots.append(Snapshot(step, epoch, value, path))
            self._prune()
        if self.ema is not None:
            extra["ema_value"] = self._evaluate_state(module, self.ema, evaluate)
            if self.better(extra["ema_value"], self.ema_best):
                self.ema_best = extra["ema_value"]
                path = self.run.checkpoint("best-ema.safetensors")
                path.parent.mkdir(parents=True, exist_ok=True)  # EMA alone: nothing made it
                save_file(on_cpu(self.ema), str(path))
        return extra

    def _prune(self) -> None:
        swa = self.config.swa
        if self.config.soup or swa is None or swa.pick != "last":
            return
        while len(self.snapshots) > swa.k:
            self.snapshots.pop(0).path.unlink(missing_ok=True)

    def _evaluate_state(self, module: nn.Module, state: dict[str, torch.Tensor],
                        evaluate: Evaluate) -> float | None:
        original = state_of(module)
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
        """Wortsman et al. 2022: add checkpoints, best first, while validation improves."""
        ranked = sorted((s for s in self.snapshots if s.value is not None),
                        key=lambda s: s.value or 0.0, reverse=self.mode == "max")
        if not ranked:
            return [], None
        members, states = [ranked[0]], [load_file(str(ranked[0].path))]
        score = ranked[0].value
        for candidate in ranked[1:]:
            trial = [*states, load_file(str(candidate.path))]
            value = self._evaluate_state(module, average(trial), evaluate)
            if value is not None and not self.better(score, value):  # ties join the soup
                members, states, score = [*members, candidate], trial, value
        load_state(module, average(states))
        return [s.step for s in members], score

    def finalize(self, module: nn.Module, best_value: float | None, evaluate: Evaluate,
                 bn_batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> dict[str, Any]:
        """Choose the final weights among best checkpoint, SWA, EMA and soup (the module
        holds the best checkpoint on entry, and the chosen weights on return)."""
        record: dict[str, Any] = {"final": "best_checkpoint", "best_checkpoint": best_value}
        chosen_state, chosen_value = state_of(module), best_value
        if self.config.swa is not None and len(self.swa_members()) >= 2:
            members = self.swa_members()
            candidate = average([load_file(str(s.path)) for s in members])
            best_state = state_of(module)
            load_state(module, candidate)
            if has_batchnorm(module):
                recalibrate_batchnorm(module, bn_batches())
                candidate = state_of(module)
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
            best_state = state_of(module)
            steps, value = self.greedy_soup(module, evaluate)
            soup_state = state_of(module)
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
