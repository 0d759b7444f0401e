"""Checkpoints: the best weights, and the full training state for `--resume`.

The training state (weights, optimiser, scheduler, RNG) is saved by `accelerate.save_state`;
our loop counters and history ride along in `loop_state.json`. Both are written to a staging
folder and swapped in whole, so a kill mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator
from safetensors.numpy import load_file, save_file
from safetensors.torch import load_model, save_model
from torch import nn

from fitclass.atomic import follow_umask, replace_dir
from fitclass.contracts.fit import CheckpointFolder
from fitclass.errors import RunError
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState

LAST, BEST = "last", "best"
LOOP_STATE = "loop_state.json"
ARRAYS = "arrays.safetensors"


def save_best(run: CheckpointFolder, module: nn.Module) -> None:
    staged = run.checkpoint(f".{BEST}.staging")
    staged.mkdir(parents=True, exist_ok=True)
    save_model(module, str(staged / "model.safetensors"))
    follow_umask(staged)
    replace_dir(staged, run.checkpoint(BEST))


def load_best(run: CheckpointFolder, module: nn.Module) -> None:
    load_model(module, str(run.checkpoint(BEST) / "model.safetensors"))


def restore_selected(run: CheckpointFolder, module: nn.Module, best_step: int | None) -> bool:
    """Load the best checkpoint into `module` when an evaluation selected one; False (the
    final weights stay) when none did. A selected checkpoint that is missing is an error:
    falling back to other weights would describe one model in metrics.json and ship another.
    """
    if best_step is None:
        return False
    path = run.checkpoint(BEST) / "model.safetensors"
    if not path.is_file():
        raise RunError(f"{path}: the best checkpoint (step {best_step}) is missing; something "
                       f"removed it while the run trained (another process writing to "
                       f"{run.path}?). Train again with --overwrite, or into another --out")
    load_best(run, module)
    return True


def save_training_state(run: CheckpointFolder, accelerator: Accelerator, loop_state: dict[str, Any],
                        arrays: dict[str, np.ndarray] | None = None) -> None:
    """Weights, optimiser, scheduler, RNG (accelerate), loop counters (JSON) and extra
    arrays such as training dynamics (safetensors)."""
    staged = run.checkpoint(f".{LAST}.staging")
    staged.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(staged))
    (staged / LOOP_STATE).write_text(json.dumps(loop_state, default=float), encoding="utf-8")
    if arrays:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                  str(staged / ARRAYS))
    follow_umask(staged)
    replace_dir(staged, run.checkpoint(LAST))


def load_arrays(run: CheckpointFolder) -> dict[str, np.ndarray]:
    path = run.checkpoint(LAST) / ARRAYS
    return load_file(str(path)) if path.is_file() else {}


def has_training_state(run: CheckpointFolder) -> bool:
    return (run.checkpoint(LAST) / LOOP_STATE).is_file()


def load_training_state(run: CheckpointFolder, accelerator: Accelerator) -> dict[str, Any]:
    folder: Path = run.checkpoint(LAST)
    accelerator.load_state(str(folder))
    state: dict[str, Any] = json.loads((folder / LOOP_STATE).read_text(encoding="utf-8"))
    return state


class BestCheckpoint(Callback):
    """Saves the module's weights when an evaluation is the new best (`row["is_best"]`, set
    by `Selection`). Under DDP only the main process writes."""

    def __init__(self, run: CheckpointFolder, module: Callable[[], nn.Module],
                 is_main: bool = True) -> None:
        self.run, self.module, self.is_main = run, module, is_main

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        if row.get("is_best") and self.is_main:
            save_best(self.run, self.module())


class ResumeState(Callback):
    """Saves the resumable training state after every evaluation: accelerate's state, the
    loop state and extra arrays (e.g. training dynamics)."""

    def __init__(self, run: CheckpointFolder, accelerator: Accelerator,
                 arrays: Callable[[], dict[str, np.ndarray] | None] = lambda: None) -> None:
        self.run, self.accelerator, self.arrays = run, accelerator, arrays

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        # every process calls save_state (it synchronises); non-main ones write to scratch
        save_training_state(self.run, self.accelerator, state.to_json(), self.arrays())
        self.accelerator.wait_for_everyone()
