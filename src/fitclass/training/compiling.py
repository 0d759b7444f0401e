"""`train.compile`: the training forward through `torch.compile`.

Shapes: dynamo compiles the first batch's shapes statically and, at the first batch of
another length, recompiles once with the sequence (and batch) dimension dynamic; after that
no batch recompiles. Length-grouped or packed batches keep the padding that dynamic shapes
cost small. Evaluation and prediction run the module uncompiled (their shapes differ and a
compile there would not repay itself within one run).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: The torch.compile backend (tests use `aot_eager`, which checks tracing without codegen).
BACKEND: Any = "inductor"


def wants_compile(setting: str, device: torch.device) -> bool:
    """`on`; `auto` on CUDA only; never `off`."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def compiled(module: nn.Module, setting: str, device: torch.device) -> nn.Module:
    """`module` compiled when the setting asks for it on this device; else `module`."""
    if not wants_compile(setting, device):
        return module
    return torch.compile(module, backend=BACKEND)  # type: ignore[return-value]
