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
    """Counts host reads (`ops`) by the optimiser step they happen after, while `active`."""

    def __init__(self, ops: frozenset[Any] | set[Any] = HOST_READS) -> None:
        super().__init__()
        self.active = False
        self.ops = ops
        self.state: LoopState | None = None
        self.reads: Counter[tuple[int, str]] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if self.active and func in self.ops and not self._host_only():
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


#: and a boolean mask's row selection, whose output size is known only after the device ran
SELECTING = HOST_READS | {torch.ops.aten.nonzero.default}


@pytest.mark.parametrize("labelled", [[True, False, True, False], [False] * 4],
                         ids=["some labelled", "none labelled"])
def test_the_distillation_loss_never_reads_the_device(labelled: list[bool]) -> None:
    """The loss and its backward pass, with class weights and smoothing: no host read,
    where choosing the labelled rows by a boolean mask (the old form) read it."""
    import numpy as np

    from fitclass.tasks import make_task
    from fitclass.training.distillation import distillation_loss, pack
    from fitclass.training.losses import LossSpec, make_loss

    task = make_task("multiclass", ["a", "b", "c"])
    hard = make_loss("ce", LossSpec(task=task, priors=np.full(3, 1 / 3),
                                    weights=np.array([1.0, 2.0, 0.5]), label_smoothing=0.1))
    logits = torch.randn(4, 3, requires_grad=True)
    packed = pack(task.dense_rows(torch.tensor([0, 1, 2, 1]), 3),
                  torch.softmax(torch.randn(4, 3), dim=1), torch.tensor(labelled))
    loss = distillation_loss(hard, task, 0.5, 2.0)
    reads = HostReads(SELECTING)
    with reads:
        reads.active = True
        loss(logits, packed).backward()
        reads.active = False
    assert not reads.reads, reads.reads

    old = HostReads(SELECTING)  # the counter sees the old form's reads
    with old:
        old.active = True
        chosen = packed[:, -1] > 0.5
        if bool(chosen.any()):
            hard(logits[chosen], packed[chosen, :3])
        old.active = False
    assert sum(old.reads.values()) >= 1
