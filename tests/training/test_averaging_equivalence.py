"""The fused EMA update and the running-sum average and greedy soup equal the per-tensor
versions they replaced (kept here as references): same values, same chosen checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fitclass.recipe import AveragingConfig, EmaConfig
from fitclass.runs.folder import RunDir
from fitclass.training.averaging import Averager, Snapshot, average


def averager(tmp_path: Path, mode: str = "max", **config: Any) -> Averager:
    return Averager(AveragingConfig(**config), RunDir(tmp_path), mode)


def set_linear(module: nn.Linear, weight: float, bias: float) -> None:
    with torch.no_grad():
        module.weight.fill_(weight)
        module.bias.fill_(bias)




def stacked_mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The average before running sums: every state stacked."""
    return {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}


def test_average_of_a_stream_equals_the_stacked_mean() -> None:
    torch.manual_seed(0)
    states = [{"w": torch.randn(5, 3), "b": torch.randn(3)} for _ in range(10)]
    kept = [{k: v.clone() for k, v in s.items()} for s in states]
    mean = average(iter(states))
    for key, value in stacked_mean(states).items():
        assert torch.allclose(mean[key], value, atol=1e-6), key
    for state, copy in zip(states, kept, strict=True):  # the inputs are not summed into
        assert all(torch.equal(state[k], copy[k]) for k in state)
    with pytest.raises(ValueError, match="no states"):
        average([])


class Mixed(nn.Module):
    """Parameters, float buffers (BatchNorm's running statistics), an integer buffer the
    EMA skips, and a half-precision buffer it follows in float32."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)
        self.register_buffer("scale", torch.zeros(2, dtype=torch.float16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


def old_ema(module: nn.Module, steps: int, decay: float, warmup: bool,
            move: Callable[[nn.Module], None]) -> dict[str, torch.Tensor]:
    """The per-tensor EMA loop before the fused update."""
    ema = {k: v.detach().float().clone() for k, v in module.state_dict().items()
           if v.is_floating_point()}
    for update in range(1, steps):
        move(module)
        rate = min(decay, (1 + update) / (10 + update)) if warmup else decay
        for key, value in module.state_dict().items():
            if key in ema:
                ema[key].mul_(rate).add_(value.detach().float(), alpha=1 - rate)
    return ema


@pytest.mark.parametrize(("decay", "warmup"), [(0.9, False), (0.999, True), (0.5, True)])
def test_fused_ema_equals_the_per_tensor_update(tmp_path: Path, decay: float,
                                                warmup: bool) -> None:
    def move(module: nn.Module) -> None:  # an optimiser step and a forward in train mode
        with torch.no_grad():
            for tensor in module.parameters():
                tensor.add_(torch.randn_like(tensor))
            module.scale.add_(torch.randn(2).half())
        module(torch.randn(8, 4))

    torch.manual_seed(3)
    module = Mixed()
    torch.manual_seed(4)
    expected = old_ema(module, 30, decay, warmup, move)
    torch.manual_seed(3)
    module = Mixed()
    torch.manual_seed(4)
    averaging = averager(tmp_path, ema=EmaConfig(decay=decay, warmup=warmup))
    averaging.after_step(module)
    for _ in range(29):
        move(module)
        averaging.after_step(module)
    assert averaging.ema is not None
    assert set(averaging.ema) == set(expected)
    assert "norm.num_batches_tracked" not in averaging.ema
    assert averaging.ema["scale"].dtype == torch.float32
    for key, value in expected.items():
        assert torch.allclose(averaging.ema[key], value, atol=1e-6, rtol=1e-5), key


def test_the_ema_follows_a_new_module_object(tmp_path: Path) -> None:
    averaging = averager(tmp_path, ema=EmaConfig(decay=0.5, warmup=False))
    first, second = nn.Linear(1, 1), nn.Linear(1, 1)
    set_linear(first, 0.0, 0.0)
    set_linear(second, 4.0, 0.0)
    averaging.after_step(first)
    averaging.after_step(first)
    averaging.after_step(second)  # e.g. the classifier's module was rebuilt
    assert averaging.ema is not None
    assert averaging.ema["weight"].item() == pytest.approx(2.0)


def old_greedy_soup(averaging: Averager, module: nn.Module,
                    evaluate: Callable[[nn.Module], float | None]
                    ) -> tuple[list[int], float | None]:
    """The soup before running sums: every member's state kept, all re-averaged per trial."""
    ranked = sorted((s for s in averaging.snapshots if s.value is not None),
                    key=lambda s: s.value or 0.0, reverse=averaging.mode == "max")
    members, states = [ranked[0]], [load_file(str(ranked[0].path))]
    score = ranked[0].value
    for candidate in ranked[1:]:
        trial = [*states, load_file(str(candidate.path))]
        module.load_state_dict(stacked_mean(trial))
        value = evaluate(module)
        if value is not None and not averaging.better(score, value):
            members, states, score = [*members, candidate], trial, value
    module.load_state_dict(stacked_mean(states))
    return [s.step for s in members], score


def scripted(values: list[float | None]) -> Callable[[nn.Module], float | None]:
    answers = iter(values)
    return lambda _module: next(answers)


SNAPSHOT_VALUES = [0.3, 0.8, 0.5, 0.1, 0.9, 0.2, 0.6, 0.4, 0.7, 0.05]


@pytest.mark.parametrize(("mode", "script", "joined"), [
    ("max", [0.8, 0.9, 0.95, None, 0.94, 0.95, 0.2, 0.99, 0.5], 5),
    ("min", [0.3, 0.05, None, 0.04, 0.5, 0.04, 0.01, 0.4, 0.02], 5),
    ("max", [0.9] * 9, 10),  # every trial ties with the best: all join
    ("max", [None] * 9, 1),  # none evaluated: the best snapshot alone
])
def test_the_running_sum_soup_chooses_and_weighs_as_before(
        tmp_path: Path, mode: str, script: list[float | None], joined: int) -> None:
    torch.manual_seed(0)
    averaging = averager(tmp_path, mode, soup=True)
    for index, value in enumerate(SNAPSHOT_VALUES):
        step = 10 * (index + 1)
        path = tmp_path / f"step-{step}.safetensors"
        layer = nn.Linear(6, 4)
        save_file({k: v.detach().clone() for k, v in layer.state_dict().items()}, str(path))
        averaging.snapshots.append(Snapshot(step, float(index), value, path))
    old_module, new_module = nn.Linear(6, 4), nn.Linear(6, 4)
    old_steps, old_score = old_greedy_soup(averaging, old_module, scripted(script))
    new_steps, new_score = averaging.greedy_soup(new_module, scripted(script))
    assert new_steps == old_steps and new_score == old_score
    assert len(new_steps) == joined
    for key, value in old_module.state_dict().items():
        assert torch.allclose(new_module.state_dict()[key], value, atol=1e-6), key
