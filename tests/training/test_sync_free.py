"""Between evaluations the training loop never waits for the accelerator: a dispatch mode
counts the operations that read a device value on the host (`.item()`, `float(tensor)`,
`bool(tensor)`) while the loop trains, outside its evaluations, and finds none except the
running loss's non-finite check every `train.log_every` steps."""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fitclass
from fitclass.training import loop
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState

#: aten operations that copy a device value to the host and so wait for the device
HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default,
              torch.ops.aten.equal.default}
#: Reads of tensors that live on the host on every machine: the DataLoader draws its base
#: seed from a CPU generator when an epoch's iterator starts.
HOST_ONLY = ("torch/utils/data/",)


class HostReads(TorchDispatchMode):
    """Counts host reads by the optimiser step they happen after, while `active`."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False
        self.state: LoopState | None = None
        self.reads: Counter[tuple[int, str]] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if self.active and func in HOST_READS and not self._host_only():
            step = -1 if self.state is None else self.state.step
            self.reads[(step, str(func))] += 1
        return func(*args, **(kwargs or {}))


    @staticmethod
    def _host_only() -> bool:
        frames = traceback.extract_stack(limit=12)
        return any(part in frame.filename for frame in frames for part in HOST_ONLY)


class Watch(Callback):
    """Turns counting on for training (evaluations turn it off) and shows it the state."""

    def __init__(self, reads: HostReads) -> None:
        self.reads = reads

    def on_train_begin(self, state: LoopState) -> None:
        self.reads.active, self.reads.state = True, state

    def on_train_end(self, state: LoopState) -> None:
        self.reads.active = False


@pytest.mark.parametrize("extra", [{}, {"noise": {"dynamics": True}},
                                   {"averaging": {"ema": {"decay": 0.9}}}],
                         ids=["plain", "dynamics", "ema"])
def test_no_host_reads_between_evaluations(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> None:
    reads = HostReads()
    real = loop._evaluate

    def evaluate_unwatched(*args: Any, **kwargs: Any) -> None:
        reads.active = False
        try:
            real(*args, **kwargs)
        finally:
            reads.active = True

    monkeypatch.setattr(loop, "_evaluate", evaluate_unwatched)
    recipe = recipe_for("tiny_bert", train_csv, train={
        "epochs": 2, "batch_size": 16, "log_every": 4, "precision": "fp32"}) | extra
    with reads:
        fitclass.train(recipe, out=tmp_path / "run", callbacks=[Watch(reads)])
    # 6 steps per epoch: the loss is read for the non-finite check at steps 4, 8 and 12 only
    steps = sorted({step for step, _ in reads.reads})
    assert steps == [4, 8, 12], reads.reads
    assert all(count == 1 for count in reads.reads.values()), reads.reads
