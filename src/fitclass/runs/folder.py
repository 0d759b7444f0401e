"""One run's folder: created under the overwrite rule, locked while a process writes it,
its status, and atomic writes of its files.

Every file is written to a temporary name and renamed into place, so a killed process never
leaves half a file. `status.json` says whether the run is running, finished, failed or
interrupted, and carries `"tool": "fitclass"`: the proof that fitclass wrote the folder. A
live run holds `run.lock` (see `lock.py`); a `running` status without a live lock reads as
`interrupted`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import save

from fitclass.atomic import atomic_write_bytes, atomic_write_text
from fitclass.errors import RunError
from fitclass.files import DAMAGED, damaged, read_json_file, read_safetensors
from fitclass.runs.layout import (
    CHECKPOINTS,
    LITTER,
    MODEL,
    RECIPE,
    RUN,
    STATUS,
    TOOL,
    Layout,
    has_content,
    now,
    refused,
    remove_entries,
    replace_refusal,
)
from fitclass.runs.lock import LOCK, LockInfo, RunLock, held, lock_holder


def killed_before_status(path: Path) -> bool:
    """Whether `path` holds nothing but a dead process's run lock (a lock record fitclass
    wrote): a run killed between taking its lock and writing its first status. Rerunning
    the command takes the folder over instead of refusing it as not a run."""
    names = {entry.name for entry in path.iterdir()} - LITTER
    holder = LockInfo.read(path / LOCK) if names == {LOCK} else None
    return holder is not None and holder.pid >= 0 and not holder.alive()


class RunDir:
    """One run's folder; the single place that knows its file names."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.replaced: str | None = None  # the status of the run `create` replaced, if any
        self._lock: RunLock | None = None

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False,
               within: Layout = RUN, keep: tuple[str, ...] = (),
               details: dict[str, Any] | None = None) -> RunDir:
        """A new run folder, locked by this process. An existing folder must be a run that
        the overwrite rule lets fitclass replace; then a finished run, or an unfinished one
        with a checkpoint, is replaced only with `overwrite`; an unfinished run without a
        checkpoint (nothing to continue) is replaced by rerunning the same command.

        `within`: the kind of folder the run is written into when it is not a run folder of
        its own but one whose layout holds a run's entries beside its own (`fitclass auto`'s
        OUT keeps `trials/`, `auto.json` and its `.fitclass.json` proof): the overwrite rule
        is checked against that layout, and replacing deletes the run's entries only.
        `keep`: run entries that survive the replacement (a keyed cache the new run checks).
        `details`: written with the first `running` status (a cross-validation's settings,
        so that a kill right after `create` still leaves a folder its rerun recognises)."""
        run = cls(path)
        status: str | None = None
        if has_content(run.path):
            holder = lock_holder(run.path)
            if holder is not None:
                raise held(run.path, holder)
            problem = None if killed_before_status(run.path) else replace_refusal(
                run.path, within)
            if problem is not None:
                raise refused(run.path, problem, within)
            status = run.status()  # before taking the lock: a dead holder's `running` is stale
        elif run.path.exists() and not run.path.is_dir():
            raise refused(run.path, "it is a file, not a folder")
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire()
        try:
            if status is not None:
                if not overwrite:
                    run._refuse_without_overwrite(status)
                # the host folder's own proof of ownership stays (a run's is status.json)
                kept = (LOCK, *keep) if within is RUN else (LOCK, within.proof, *keep)
                remove_entries(run.path, RUN, keep=kept, within=within)
            run.set_status("running", **(details or {}))
        except BaseException:
            run.release()
            raise
        run.replaced = status
        return run

    def _refuse_without_overwrite(self, status: str | None) -> None:
        if status == "finished":
            raise RunError(f"{self.path}: a finished run is already here; choose another --out "
                           f"or pass --overwrite to replace it")
        crossval = self.crossval()
        if crossval is not None:  # its fold runs are the progress to keep
            raise RunError(f"{self.path}: an unfinished cross-validation ({status}) is here; "
                           f"{self.crossval_hint(crossval)}")
        if self.has_checkpoint():
            raise RunError(f"{self.path}: an unfinished run ({status}) with a checkpoint is "
                           f"here; {self.continue_hint()}")

    def continue_hint(self) -> str:
        """What continues or replaces this unfinished run: --resume only when its stored
        recipe still loads (resume re-reads it), --overwrite always."""
        from fitclass.recipe import load_recipe

        start_again = "or start again with this recipe by adding --overwrite"
        try:
            load_recipe(self.file(RECIPE))
        except Exception as error:  # any reason it will not load is a reason resume fails
            return (f"its stored {RECIPE} does not load ({error}), so --resume cannot continue "
                    f"it; start again with your recipe by adding --overwrite")
        return (f"continue it from its checkpoint with `fitclass train --resume {self.path}` "
                f"(with its stored {RECIPE}), {start_again}")

    def crossval(self) -> dict[str, Any] | None:
        """The settings of the cross-validation this run folder holds (`fitclass train
        --folds K`: its status record's `crossval`), None for any other run."""
        record = self.status_record() or {}
        crossval = record.get("crossval")
        return crossval if isinstance(crossval, dict) else None

    def crossval_hint(self, crossval: dict[str, Any]) -> str:
        """How to continue an unfinished cross-validation: its finished folds are kept."""
        return (f"continue it with `fitclass train --resume {self.path}` (finished folds are "
                f"kept, an interrupted one continues from its checkpoint), or start again "
                f"with your recipe and --folds {crossval.get('folds')} by adding --overwrite")

    def acquire(self) -> None:
        """Take the run's lock (RunError naming the live holder when another run has it)."""
        lock = RunLock(self.path)
        lock.acquire()
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def has_checkpoint(self) -> bool:
        """Whether training saved anything to continue from (`checkpoints/` is not empty)."""
        folder = self.path / CHECKPOINTS
        return folder.is_dir() and any(folder.iterdir())

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    def checkpoint(self, name: str) -> Path:
        return self.path / CHECKPOINTS / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.file(name), text)

    def write_json(self, name: str, payload: Any) -> None:
        self.write_text(name, json.dumps(payload, indent=2, ensure_ascii=False, default=str))

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        self.write_text(name, frame.to_csv(index=False))

    def write_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Numeric arrays as safetensors (float32), written atomically."""
        atomic_write_bytes(self.file(name), save(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}))

    def read_arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of an optional safetensors file ({} when absent); a damaged file is a
        `RunError` naming it."""
        path = self.file(name)
        return read_safetensors(path) if path.is_file() else {}

    def read_json(self, name: str) -> Any:
        """A JSON file of the run; missing or damaged is a `RunError` naming the file."""
        path = self.file(name)
        if not path.exists():
            raise RunError(f"{path} is missing; is {self.path} a fitclass run directory? If it "
                           f"is, {DAMAGED}")
        return read_json_file(path)

    def status_record(self) -> dict[str, Any] | None:
        """status.json as written; None when there is none."""
        path = self.file(STATUS)
        if not path.is_file():
            return None
        record = read_json_file(path)
        if not isinstance(record, dict):
            raise damaged(path, f"should hold a JSON object, not {type(record).__name__}")
        return record

    def status(self) -> str | None:
        """The run's status; `running` only while a live process holds its lock (a killed
        run reads `interrupted`). None when the folder has no status.json."""
        record = self.status_record()
        if record is None:
            return None
        status = str(record.get("status"))
        if status == "running" and self._lock is None and lock_holder(self.path) is None:
            return "interrupted"
        return status

    def set_status(self, status: str, **details: Any) -> None:
        previous = self.status_record() or {}
        record = {**previous, "tool": TOOL, "status": status, "updated": now(), **details}
        record.setdefault("started", record["updated"])
        self.write_json(STATUS, record)
