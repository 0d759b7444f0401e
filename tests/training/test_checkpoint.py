"""The best checkpoint at the end of training: restored, or a clear error when it is missing,
never a silent fallback to the last weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import fitclass
from fitclass.errors import RunError
from fitclass.runs.folder import RunDir
from fitclass.training import checkpoint


def test_restore_selected_loads_the_best_or_says_none_was_selected(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    best, final = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    checkpoint.save_best(run, best)
    assert checkpoint.restore_selected(run, final, best_step=None) is False
    assert not torch.equal(final.weight, best.weight)  # nothing selected: final weights stay
    assert checkpoint.restore_selected(run, final, best_step=3) is True
    assert torch.equal(final.weight, best.weight)


def test_restore_selected_refuses_a_missing_best(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(RunError, match=r"checkpoints/best/model.safetensors: the best "
                                       r"checkpoint \(step 6\) is missing"):
        checkpoint.restore_selected(run, torch.nn.Linear(2, 2), best_step=6)


def test_a_best_checkpoint_removed_during_training_fails_the_run(
        tmp_path: Path, train_csv: Path, recipe_for: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a second process deleting the folder's checkpoints looks like: the run fails
    naming the file instead of writing metrics for weights it never selected."""
    monkeypatch.setattr(checkpoint, "save_best", lambda run, module: None)
    out = tmp_path / "run"
    with pytest.raises(RunError, match=r"the best checkpoint .* is missing"):
        fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}), out=out)
    record = json.loads((out / "status.json").read_text())
    assert record["status"] == "failed" and "best checkpoint" in record["error"]
    assert not (out / "metrics.json").exists()
