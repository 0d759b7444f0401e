"""How AdamW is built: fused everywhere; capturable (learning rates as device tensors, step
counts on the device) only where the step is compiled on a CUDA device in a CUDA-graph mode.
No GPU here: the choice is a pure function of (device type, compile settings), and the
capturable build is checked on the CPU (fused AdamW ignores `capturable` there)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fitclass.training import compiling
from fitclass.training.optim import adamw, capturable_adamw, device_lr_groups


@pytest.mark.parametrize(("device_type", "setting", "mode", "expected"), [
    ("cuda", "on", "reduce-overhead", True),
    ("cuda", "auto", "max-autotune", True),
    ("cuda", "on", None, False),  # inductor's default mode: no CUDA graphs
    ("cuda", "on", "max-autotune-no-cudagraphs", False),
    ("cuda", "off", "reduce-overhead", False),  # not compiled
    ("cpu", "on", "reduce-overhead", False),
    ("cpu", "auto", "reduce-overhead", False),  # auto compiles on CUDA only
    ("mps", "on", "reduce-overhead", False),
])
def test_capturable_only_where_a_cuda_graph_replays_the_step(
        device_type: str, setting: str, mode: str | None, expected: bool) -> None:
    assert capturable_adamw(device_type, setting, mode) is expected


def test_fitclass_compiles_without_cuda_graphs_by_default() -> None:
    """`train.compile` on CUDA keeps today's optimiser: fused, float learning rates."""
    assert compiling.MODE is None
    assert not capturable_adamw("cuda", "on", compiling.MODE)


def two_groups(module: nn.Linear) -> list[dict[str, object]]:
    return [{"params": [module.weight], "lr": 1e-2, "weight_decay": 0.01},
            {"params": [module.bias], "lr": 5e-3, "weight_decay": 0.0}]


def test_capturable_build_keeps_each_groups_learning_rate_as_a_device_tensor() -> None:
    module = nn.Linear(4, 2)
    optimizer = adamw(two_groups(module), lr=1e-2, capturable_on=torch.device("cpu"))
    groups = optimizer.param_groups
    assert all(group["fused"] and group["capturable"] for group in groups)
    assert all(isinstance(group["lr"], torch.Tensor) and group["lr"].ndim == 0
               for group in groups)
    assert [float(group["lr"]) for group in groups] == pytest.approx([1e-2, 5e-3])
    # the scheduler writes the tensors in place (`fill_`): a captured graph keeps reading them
    tensors = [group["lr"] for group in groups]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    module(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert all(group["lr"] is tensor for group, tensor in zip(groups, tensors, strict=True))
    assert [float(group["lr"]) for group in groups] == pytest.approx([5e-3, 2.5e-3])
    assert float(scheduler.get_last_lr()[0]) == pytest.approx(5e-3)


def test_capturable_step_moves_the_weights_as_the_plain_fused_step_does() -> None:
    torch.manual_seed(0)
    plain, captured = nn.Linear(4, 2), nn.Linear(4, 2)
    captured.load_state_dict(plain.state_dict())
    optimizers = [adamw(two_groups(plain), lr=1e-2),
                  adamw(two_groups(captured), lr=1e-2, capturable_on=torch.device("cpu"))]
    inputs = torch.randn(8, 4)
    for _ in range(3):
        for module, optimizer in zip((plain, captured), optimizers, strict=True):
            module(inputs).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    for ours, theirs in zip(plain.parameters(), captured.parameters(), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-7)


def test_device_lr_groups_wraps_plain_parameters_in_one_group() -> None:
    module = nn.Linear(4, 2)
    groups = device_lr_groups(module.parameters(), 3e-4, torch.device("cpu"))
    assert len(groups) == 1 and len(groups[0]["params"]) == 2
    assert float(groups[0]["lr"]) == pytest.approx(3e-4)
