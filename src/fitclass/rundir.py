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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from fitclass.errors import RunError

if TYPE_CHECKING:
    from fitclass.decide.decision import Decision

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
#: What to do about a damaged run file, appended to every such error.
DAMAGED = "the run folder is damaged: retrain it, or restore the file from a copy"


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


# Typed readers: every run file read back goes through these, so a truncated or hand-edited
# file is a `RunError` naming it (and what to do), never a traceback from deep inside.


def damaged(path: Path, problem: str) -> RunError:
    return RunError(f"{path} {problem}; {DAMAGED}")


def read_json_file(path: Path) -> Any:
    """Parsed JSON of `path`, or a `RunError` saying how it is damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise damaged(path, "is missing") from None
    except OSError as error:
        raise RunError(f"{path} could not be read ({error.strerror}); check that it is a "
                       f"file you may read") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise damaged(path, f"is not UTF-8 text (bad byte at {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged(path, f"is not valid JSON ({_json_problem(text, error, len(raw))})"
                      ) from None


def _json_problem(text: str, error: json.JSONDecodeError, size: int) -> str:
    if not text.strip():
        return "it is empty"
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated"):
        return f"truncated at byte {size}"
    return f"line {error.lineno} column {error.colno}: {error.msg}"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a safetensors file, or a `RunError` saying it is missing or damaged."""
    if not path.is_file():
        raise damaged(path, "is missing")
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise damaged(path, f"is not a readable safetensors file ({error}; "
                            f"{path.stat().st_size} bytes)") from None


def read_json_object(path: Path, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """A JSON object holding `required` keys of the given types."""
    payload = read_json_file(path)
    if not isinstance(payload, dict):
        raise damaged(path, f"should hold a JSON object, not {type(payload).__name__}")
    for key, kind in required.items():
        if key not in payload:
            raise damaged(path, f"has no {key!r} key")
        if not isinstance(payload[key], kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise damaged(path, f"has {key!r} = {str(payload[key])[:80]!r}; expected a {names}")
    return payload


def read_status(run: RunDir) -> dict[str, Any]:
    """`status.json` as a record with a string `status`."""
    return read_json_object(run.file(STATUS), {"status": str})


def read_labels(run: RunDir) -> dict[str, Any]:
    """`labels.json`: `classes` a non-empty list of distinct strings (the label index order)."""
    path = run.file(LABELS)
    labels = read_json_object(path, {"classes": list})
    check_class_names(path, labels["classes"])
    return labels


def check_class_names(path: Path, classes: list[Any], key: str = "classes") -> list[str]:
    """`classes` as saved in `path`: distinct strings, at least one."""
    if not classes or not all(isinstance(c, str) for c in classes):
        raise damaged(path, f"has {key} = {classes!r}; expected a list of class names")
    if len(set(classes)) != len(classes):
        raise damaged(path, f"names a class twice in {key} = {classes!r}")
    return list(classes)


def read_metrics(run: RunDir) -> dict[str, Any]:
    """`metrics.json` as a JSON object."""
    return read_json_object(run.file(METRICS), {})


def check_same_classes(labels_path: Path, classes: list[str], model_path: Path,
                       model_classes: list[str]) -> None:
    """`labels.json` and the model must agree on the classes and their order: a reordered
    list would silently relabel every prediction."""
    if list(classes) != list(model_classes):
        raise RunError(f"{labels_path} lists classes {classes} but the model in "
                       f"{model_path} was trained with {model_classes}; predictions would be "
                       f"mislabelled. {DAMAGED[0].upper()}{DAMAGED[1:]}")


def check_safetensors(path: Path) -> None:
    """A safetensors file's header describes the whole file (cheap: no tensor is read)."""
    from safetensors import safe_open

    if not path.is_file():
        raise damaged(path, "is missing")
    try:
        with safe_open(str(path), "np"):
            pass
    except SafetensorError as error:
        raise damaged(path, f"is not a readable safetensors file ({error})") from None


def read_recipe_dict(run: RunDir) -> dict[str, Any]:
    """`recipe.yaml` as a plain mapping (not validated: for listings and comparisons)."""
    import yaml

    path = run.file(RECIPE)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(path, "is missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise damaged(path, f"cannot be read as YAML ({type(error).__name__})") from None
    if not isinstance(loaded, dict):
        raise damaged(path, "should hold a YAML mapping")
    return loaded


def read_decision(path: Path, classes: int) -> Decision:
    """`decision.json`, its per-class settings numbers sized for the classes."""
    from fitclass.decide.decision import Decision

    try:
        decision = Decision.from_dict(read_json_object(path, {}))
    except (KeyError, TypeError, ValueError) as error:
        raise damaged(path, f"is not a decision fitclass wrote ({type(error).__name__}: "
                            f"{error})") from None
    shapes = {"thresholds": (classes,), "class_weights": (classes,),
              "cost_matrix": (classes, classes)}
    for key, shape in shapes.items():
        value = getattr(decision, key)
        if value is not None and _numeric_shape(value) != shape:
            raise damaged(path, f"has {key} that is not {shape} numbers for {classes} classes")
    return decision


def _numeric_shape(value: Any) -> tuple[int, ...] | None:
    try:
        return np.asarray(value, dtype=float).shape
    except (TypeError, ValueError):
        return None
