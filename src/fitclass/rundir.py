"""The run directory: its layout, atomic writes, status, and refusal to clobber finished runs.

Every file is written to a temporary name and renamed into place, so a killed process never
leaves half a file. `status.json` says whether the run is running, finished, failed or
interrupted; only an unfinished run can be resumed, and only `overwrite` replaces one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from fitclass.errors import RunError

RECIPE = "recipe.yaml"
LABELS = "labels.json"
MODEL = "model"
METRICS = "metrics.json"
HISTORY = "history.csv"
VALID_PREDICTIONS = "valid_predictions.csv"
DATA_CHECKS = "data_checks.json"
ENVIRONMENT = "environment.json"
STATUS = "status.json"
DECISION = "decision.json"
DYNAMICS = "dynamics.csv"
VALID_PROBS = "valid_probs.safetensors"
REPORT = "report.html"
CHECKPOINTS = "checkpoints"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing what was there."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    if old.exists():
        shutil.rmtree(old)


class RunDir:
    """One run's folder; the single place that knows its file names."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False) -> RunDir:
        """A new, empty run folder; refuses to replace an existing run unless `overwrite`."""
        run = cls(path)
        if run.path.exists() and any(run.path.iterdir()):
            status = run.status()
            if not overwrite:
                if status == "finished":
                    raise RunError(f"{run.path}: a finished run is already here; choose another "
                                   f"--out or pass --overwrite to replace it")
                raise RunError(f"{run.path}: an unfinished run ({status or 'unknown'}) is here; "
                               f"continue it with `fitclass train --resume {run.path}` or pass "
                               f"--overwrite to start again")
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

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
        """Numeric arrays as safetensors (float32), written through a temporary file."""
        path = self.file(name)
        staged = path.with_name(f".{path.name}.tmp")
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
                  str(staged))
        os.replace(staged, path)

    def read_arrays(self, name: str) -> dict[str, np.ndarray]:
        path = self.file(name)
        return load_file(str(path)) if path.is_file() else {}

    def read_json(self, name: str) -> Any:
        path = self.file(name)
        if not path.is_file():
            raise RunError(f"{self.path}: {name} is missing; is this a fitclass run directory?")
        return json.loads(path.read_text(encoding="utf-8"))

    def status(self) -> str | None:
        path = self.file(STATUS)
        if not path.is_file():
            return None
        return str(json.loads(path.read_text(encoding="utf-8")).get("status"))

    def set_status(self, status: str, **details: Any) -> None:
        previous = json.loads(self.file(STATUS).read_text()) if self.file(STATUS).is_file() else {}
        record = {**previous, "status": status, "updated": now(), **details}
        record.setdefault("started", record["updated"])
        self.write_json(STATUS, record)
