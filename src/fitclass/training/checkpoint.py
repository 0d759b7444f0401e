"""Checkpoints: the best weights, and the full training state for `--resume`.

The best checkpoint holds weights only. The training state holds what a resume needs:
weights, optimiser, scheduler and RNG in `accelerate.save_state`'s layout (read back by
`accelerate.load_state`), our loop counters and history in `loop_state.json`, and extra
arrays such as training dynamics. Under `model.peft` both leave out the `fixed` tensors
(the frozen base under the adapters, which the optimiser never holds either): a resume
rebuilds them from the backbone, and a state written with them (before this) still loads.
Each is written to a staging folder and swapped in whole, so a kill mid-save leaves the
previous checkpoint intact.

Both are written in the background when training runs on an accelerator (in place on the
CPU, `training/writer.py`): the tensors are copied to host memory now, the files written
while training goes on. Every reader here waits for the write
in flight first; the callbacks wait for it when training ends.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.checkpointing import save_accelerator_state, save_custom_state
from accelerate.utils import (
    OPTIMIZER_NAME,
    SAFE_WEIGHTS_NAME,
    SCHEDULER_NAME,
    DistributedType,
    clean_state_dict_for_safetensors,
)
from accelerate.utils import save as accelerate_save
from safetensors import safe_open
from safetensors.numpy import load_file
from safetensors.numpy import save_file as save_arrays
from safetensors.torch import _remove_duplicate_names, load_model, save_file
from torch import nn

from fitclass.atomic import follow_umask, replace_dir
from fitclass.contracts.fit import CheckpointFolder
from fitclass.errors import RunError
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.writer import finish, flush, host_copies, own_storages, submit

LAST, BEST = "last", "best"
LOOP_STATE = "loop_state.json"
ARRAYS = "arrays.safetensors"

#: Where the model, optimiser and scheduler states are plain state dicts we can copy; the
#: sharded kinds (FSDP, DeepSpeed, Megatron) and XLA save through accelerate, synchronously.
PLAIN = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
#: What wrappers put before a module's own state names (DDP, `torch.compile`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def own_name(key: str) -> str:
    """A prepared model's state name as the unwrapped module names it."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def without_fixed(state: dict[str, Any], fixed: frozenset[str]) -> dict[str, Any]:
    """`state` without the `fixed` tensors (names as a prepared model's state gives them)."""
    if not fixed:
        return state
    return {key: value for key, value in state.items() if own_name(key) not in fixed}


def fresh_folder(path: Path) -> Path:
    """An empty staging folder (what a killed save left there is not part of this one)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass(frozen=True)
class BestWeights:
    """A module's state as safetensors' `save_model` writes it (not yet copied): tensors
    that share memory (tied weights) stored once, the dropped names in the metadata; `fixed`
    tensors (a backbone under adapters, which never changes) left out."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] | None

    @classmethod
    def of(cls, module: nn.Module, fixed: frozenset[str] = frozenset()) -> BestWeights:
        state = {k: v for k, v in module.state_dict().items() if k not in fixed}
        metadata: dict[str, str] | None = None
        for kept, removed in _remove_duplicate_names(state).items():
            for name in removed:
                metadata = metadata or {}
                metadata.setdefault(name, kept)
                del state[name]
        return cls(dict(state), metadata)


def save_best(run: CheckpointFolder, module: nn.Module,
              fixed: frozenset[str] = frozenset()) -> None:
    """Copy the module's weights (but the `fixed` ones) now; write them as the best
    checkpoint in the background."""
    save_best_weights(run, BestWeights.of(module, fixed))


def save_best_weights(run: CheckpointFolder, weights: BestWeights) -> None:
    submit(run.checkpoint(BEST), partial(_write_best, run, host_copies(weights.tensors),
                                         weights.metadata))


def _write_best(run: CheckpointFolder, tensors: dict[str, torch.Tensor],
                metadata: dict[str, str] | None) -> None:
    staged = fresh_folder(run.checkpoint(f".{BEST}.staging"))
    save_file(tensors, str(staged / "model.safetensors"), metadata=metadata)
    follow_umask(staged)
    replace_dir(staged, run.checkpoint(BEST))


def load_best(run: CheckpointFolder, module: nn.Module,
              fixed: frozenset[str] = frozenset()) -> None:
    """The best checkpoint into `module`: every tensor, or every one but the `fixed` ones
    (which the checkpoint left out: the module still holds them)."""
    flush()
    missing, unexpected = load_model(module, str(run.checkpoint(BEST) / "model.safetensors"),
                                     strict=not fixed)
    left = set(missing) - fixed
    if left or unexpected:
        raise RunError(f"{run.checkpoint(BEST)}: the best checkpoint does not fit the model "
                       f"(missing {sorted(left)[:3]}, unexpected {sorted(unexpected)[:3]}); "
                       f"train again with --overwrite")


def restore_selected(run: CheckpointFolder, module: nn.Module, best_step: int | None,
                     fixed: frozenset[str] = frozenset()) -> bool:
    """Load the best checkpoint into `module` when an evaluation selected one; False (the
    final weights stay) when none did. A selected checkpoint that is missing is an error:
    falling back to other weights would describe one model in metrics.json and ship another.
    """
    flush()  # the best checkpoint may still be on its way to disk
    if best_step is None:
        return False
    path = run.checkpoint(BEST) / "model.safetensors"
    if not path.is_file():
        raise RunError(f"{path}: the best checkpoint (step {best_step}) is missing; something "
                       f"removed it while the run trained (another process writing to "
                       f"{run.path}?). Train again with --overwrite, or into another --out")
    load_best(run, module, fixed)
    return True


@dataclass
class HostState:
    """Host copies of what `accelerate.save_state` writes from the prepared objects: one
    state dict per model (aliases removed, as accelerate's safetensors save does), optimiser
    and scheduler."""

    models: list[dict[str, torch.Tensor]]
    optimizers: list[Any]
    schedulers: list[Any]
    save_on_each_node: bool = False


def copies_state(accelerator: Accelerator) -> bool:
    """Whether the prepared objects' states are copied here (False: accelerate saves them
    itself: sharded models, XLA, save hooks, automatic checkpoint naming)."""
    return not (accelerator.distributed_type not in PLAIN
                or accelerator._save_model_state_pre_hook
                or accelerator.project_configuration.automatic_checkpoint_naming)


def writes_models(accelerator: Accelerator) -> bool:
    """Whether this process writes the prepared objects (accelerate: one per node or one)."""
    each_node = accelerator.project_configuration.save_on_each_node
    return accelerator.is_local_main_process if each_node else accelerator.is_main_process


def host_state(accelerator: Accelerator, best: BestWeights | None = None,
               fixed: frozenset[str] = frozenset()
               ) -> tuple[HostState | None, dict[str, torch.Tensor] | None]:
    """The prepared objects' states copied to host memory (None where accelerate must save
    them itself, see `copies_state`), the models' without their `fixed` tensors, and
    `best`'s tensors copied with them: they are the model's own, so each is copied once and
    the two share it."""
    if not copies_state(accelerator):
        return None, None
    each_node = accelerator.project_configuration.save_on_each_node
    if not writes_models(accelerator):
        return HostState([], [], [], each_node), None  # accelerate writes these on one process
    models = [clean_state_dict_for_safetensors(
        without_fixed(accelerator.get_state_dict(model, unwrap=False), fixed))
        for model in accelerator._models]

    optimizers = [optimizer.state_dict() for optimizer in accelerator._optimizers]
    schedulers = [scheduler.state_dict() for scheduler in accelerator._schedulers]
    models, optimizers, schedulers, best_tensors = host_copies(
        (models, optimizers, schedulers, None if best is None else best.tensors))
    return HostState(models, optimizers, schedulers, each_node), best_tensors


def save_small_state(accelerator: Accelerator, folder: Path) -> None:
    """What accelerate saves besides the prepared objects, written now: the RNG states (read
    at this moment, so they cannot wait for the worker), the gradient scaler, the loaders'
    sampler states and objects registered for checkpointing. All small."""
    save_on_each_node = accelerator.project_configuration.save_on_each_node
    save_accelerator_state(str(folder), [], [], [], accelerator._dataloaders,
                           accelerator.state.process_index, accelerator.step,
                           accelerator.scaler, save_on_each_node=save_on_each_node)
    for index, obj in enumerate(accelerator._custom_objects):
        save_custom_state(obj, str(folder), index, save_on_each_node=save_on_each_node)


def weights_name(index: int) -> str:
    """accelerate's file name of the `index`-th prepared model's weights."""
    return SAFE_WEIGHTS_NAME if index == 0 else SAFE_WEIGHTS_NAME.replace(".", f"_{index}.")


def write_host_state(state: HostState, folder: Path) -> None:
    """The files `accelerate.save_state` writes for the prepared objects, from host copies
    (accelerate's `save` writes on the main process only, as `save_state` does). Runs in
    the worker thread."""
    each_node = state.save_on_each_node
    for index, weights in enumerate(state.models):
        accelerate_save(weights, folder / weights_name(index), save_on_each_node=each_node,
                        safe_serialization=True)
    for prefix, states in ((OPTIMIZER_NAME, state.optimizers), (SCHEDULER_NAME, state.schedulers)):
        for index, value in enumerate(states):
            accelerate_save(own_storages(value),
                            folder / f"{prefix}{f'_{index}' if index else ''}.bin",
                            save_on_each_node=each_node)


def save_training_state(run: CheckpointFolder, accelerator: Accelerator, loop_state: dict[str, Any],
                        arrays: dict[str, np.ndarray] | None = None,
                        best: BestWeights | None = None,
                        fixed: frozenset[str] = frozenset()) -> None:
    """Weights (but the `fixed` ones), optimiser, scheduler, RNG (accelerate's layout), loop
    counters (JSON) and extra arrays such as training dynamics (safetensors): copied now,
    the large files written in the background. `best` (this evaluation's new best weights)
    is written as the best checkpoint in the same write, from the same host copy of the
    weights. (Where accelerate saves the prepared objects itself, every weight is saved.)"""
    if best is not None and not (copies_state(accelerator) and writes_models(accelerator)):
        save_best_weights(run, best)  # apart: this process copies no weights of its own
        best = None
    copied, best_tensors = host_state(accelerator, best, fixed)
    text = json.dumps(loop_state, default=float)
    kept = {k: np.array(v, copy=True, order="C") for k, v in (arrays or {}).items()}
    flush()  # the staging folder is the previous write's until it is done
    staged = fresh_folder(run.checkpoint(f".{LAST}.staging"))
    if copied is None:
        accelerator.save_state(str(staged))
    else:
        save_small_state(accelerator, staged)
    best_write = (None if best is None or best_tensors is None
                  else partial(_write_best, run, best_tensors, best.metadata))
    submit(run.checkpoint(LAST), partial(_write_training_state, run, staged, copied, text, kept,
                                         best_write))


def _write_training_state(run: CheckpointFolder, staged: Path, copied: HostState | None,
                          text: str, arrays: dict[str, np.ndarray],
                          best_write: Callable[[], None] | None) -> None:
    if best_write is not None:  # first: the best checkpoint is what a finished run loads
        best_write()
    if copied is not None:
        write_host_state(copied, staged)
    (staged / LOOP_STATE).write_text(text, encoding="utf-8")
    if arrays:
        save_arrays(arrays, str(staged / ARRAYS))
    follow_umask(staged)
    replace_dir(staged, run.checkpoint(LAST))


def load_arrays(run: CheckpointFolder) -> dict[str, np.ndarray]:
    flush()
    path = run.checkpoint(LAST) / ARRAYS
    return load_file(str(path)) if path.is_file() else {}


def has_training_state(run: CheckpointFolder) -> bool:
    flush()
    return (run.checkpoint(LAST) / LOOP_STATE).is_file()


def load_training_state(run: CheckpointFolder, accelerator: Accelerator,
                        fixed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The last training state into the prepared objects; its loop state. With `fixed`
    tensors (a backbone under adapters) the weights file may lack them (they are the base
    model's, already in the model) but must hold every other tensor."""
    flush()
    folder: Path = run.checkpoint(LAST)
    if fixed:
        accelerator.load_state(str(folder), strict=False)
        check_trainable_saved(folder, accelerator, fixed)
    else:
        accelerator.load_state(str(folder))
    state: dict[str, Any] = json.loads((folder / LOOP_STATE).read_text(encoding="utf-8"))
    return state


def check_trainable_saved(folder: Path, accelerator: Accelerator, fixed: frozenset[str]) -> None:
    """Every tensor of each prepared model but the `fixed` ones is in its weights file (a
    tied alias counts as its saved twin); else a RunError naming the file."""
    for index, model in enumerate(accelerator._models):
        path = folder / weights_name(index)
        if not path.is_file():
            continue  # another layout (sharded): accelerate read it and checked the load
        with safe_open(str(path), framework="pt") as handle:
            covered = set(handle.keys())
        state = model.state_dict()
        for kept, removed in _remove_duplicate_names(state).items():
            if covered & {kept, *removed}:
                covered |= {kept, *removed}
        missing = sorted(key for key in state
                         if key not in covered and own_name(key) not in fixed)
        if missing:
            raise RunError(f"{path}: the training state lacks {missing[:3]} (tensors this run "
                           f"trains), so it is not this run's; start the run again with "
                           f"--overwrite")


class BestCheckpoint(Callback):
    """Saves the module's weights when an evaluation is the new best (`row["is_best"]`, set
    by `Selection`). Under DDP only the main process writes. When a `ResumeState` saves the
    same evaluation, it takes the weights over (`take`) and writes them from its own
    host copy, so the weights are copied once per evaluation, not twice."""

    def __init__(self, run: CheckpointFolder, module: Callable[[], nn.Module],
                 is_main: bool = True, fixed: frozenset[str] = frozenset()) -> None:
        self.run, self.module, self.is_main, self.fixed = run, module, is_main, fixed
        self.handed_over = False
        self._pending: BestWeights | None = None

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        if not (row.get("is_best") and self.is_main):
            return
        if self.handed_over:
            self._pending = BestWeights.of(self.module(), self.fixed)
        else:
            save_best(self.run, self.module(), self.fixed)

    def take(self) -> BestWeights | None:
        """This evaluation's new best weights, not yet copied (None when it is not a best),
        for the resume state to write; from now on the caller owns writing them."""
        pending, self._pending = self._pending, None
        return pending

    def on_train_end(self, state: LoopState) -> None:
        finish()  # the final weights are chosen from this checkpoint next


class ResumeState(Callback):
    """Saves the resumable training state after every evaluation: accelerate's state, the
    loop state and extra arrays (e.g. training dynamics). Training continues while it is
    written; it is on disk when training ends."""

    def __init__(self, run: CheckpointFolder, accelerator: Accelerator,
                 arrays: Callable[[], dict[str, np.ndarray] | None] = lambda: None,
                 best: BestCheckpoint | None = None,
                 fixed: frozenset[str] = frozenset()) -> None:
        self.run, self.accelerator, self.arrays, self.best = run, accelerator, arrays, best
        self.fixed = fixed  # a backbone under adapters: rebuilt from the base on resume
        if best is not None:
            best.handed_over = True  # its weights are written with the resume state's

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        # every process saves (sharded models gather); non-main ones write to scratch
        best = None if self.best is None else self.best.take()
        save_training_state(self.run, self.accelerator, state.to_json(), self.arrays(), best,
                            self.fixed)
        self.accelerator.wait_for_everyone()

    def on_train_end(self, state: LoopState) -> None:
        finish()
