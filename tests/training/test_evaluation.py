"""Validation under DDP: each process scores its share of the rows and all of them get the
logits of every row, in row order (the torchrun test in tests/test_ddp.py runs it for real)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from fitclass.training.evaluation import sharded_logits


class ScoresTexts:
    """A classifier whose logits are (text's number, its square)."""

    def __init__(self) -> None:
        self.scored: list[str] = []

    def logits(self, texts: list[Any], batch_size: int) -> np.ndarray:
        self.scored += texts
        values = np.array([float(text) for text in texts], dtype=np.float32)
        return np.stack([values, values ** 2], axis=1).reshape(len(texts), 2)


class Processes:
    """`world` processes' gather: collects each process's tensor, then hands all out."""

    def __init__(self, world: int) -> None:
        self.num_processes, self.process_index = world, 0
        self.device = torch.device("cpu")
        self.parts: dict[int, torch.Tensor] = {}

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        self.parts[self.process_index] = tensor
        return torch.cat([self.parts.get(rank, tensor) for rank in range(self.num_processes)])


@pytest.mark.parametrize(("rows", "world"), [(10, 3), (9, 3), (2, 4), (7, 1)])
def test_each_process_scores_its_share_and_gets_every_row(rows: int, world: int) -> None:
    texts = [str(i) for i in range(rows)]
    processes = Processes(world)
    classifier = ScoresTexts()
    for rank in range(world):  # the shares first, as the processes would send them
        processes.process_index = rank
        sharded_logits(classifier, texts, 4, processes)  # type: ignore[arg-type]
    scored = len(classifier.scored)
    for rank in range(world):  # then every process's view, now that all shares are in
        processes.process_index = rank
        logits = sharded_logits(ScoresTexts(), texts, 4, processes)  # type: ignore[arg-type]
        expected = np.stack([np.arange(rows), np.arange(rows) ** 2], axis=1)
        np.testing.assert_array_equal(logits, expected.astype(np.float32))
    assert scored == rows  # each row scored by one process only
