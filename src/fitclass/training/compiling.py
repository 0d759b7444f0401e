"""`train.compile`: the training forward through `torch.compile`.

Shapes: dynamo compiles the first batch's shapes statically and, at the first batch of
another length, recompiles once with the sequence (and batch) dimension dynamic; after that
no batch recompiles. Length-grouped or packed batches keep the padding that dynamic shapes
cost small. Evaluation and prediction run the module uncompiled (their shapes differ and a
compile there would not repay itself within one run).

The optimiser step stays outside the compiled graph: fused AdamW is one kernel per device and
dtype already, keeps its step counts on the device and takes the learning rate as a kernel
argument, so it reads nothing back from the device (`training/optim.py`). A CUDA-graph
mode (`MODE`, an experiment switch that `bench/gpu_throughput.py --compile-mode` sets) also
builds it capturable, its learning rates device tensors, ready for a step captured with the
graph; the step itself still runs eagerly after the replayed forward and backward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: The torch.compile backend (tests use `aot_eager`, which checks tracing without codegen).
BACKEND: Any = "inductor"
#: torch.compile's `mode` with the inductor backend: None is inductor's default (no CUDA
#: graphs); `reduce-overhead` or `max-autotune` replay the compiled step from CUDA graphs.
MODE: str | None = None
#: The modes whose compiled step runs from CUDA graphs.
CUDA_GRAPH_MODES = frozenset({"reduce-overhead", "max-autotune"})


def wants_compile(setting: str, device: torch.device) -> bool:
    """`on`; `auto` on CUDA only; never `off`."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def uses_cuda_graphs(setting: str, device_type: str, mode: str | None) -> bool:
    """Whether the compiled step runs from CUDA graphs: compiled on a CUDA device, in a
    CUDA-graph mode."""
    return (device_type == "cuda" and wants_compile(setting, torch.device(device_type))
            and mode in CUDA_GRAPH_MODES)


def compiled(module: nn.Module, setting: str, device: torch.device) -> nn.Module:
    """`module` compiled when the setting asks for it on this device; else `module`."""
    if not wants_compile(setting, device):
        return module
    if MODE is None:  # a mode is for inductor only; the tests' backends take none
        return torch.compile(module, backend=BACKEND)  # type: ignore[return-value]
    return torch.compile(module, backend=BACKEND, mode=MODE)  # type: ignore[return-value]
