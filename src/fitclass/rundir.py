"""The run directory: its layout, atomic writes, status, lock, and the overwrite rule.

Every file is written to a temporary name and renamed into place, so a killed process never
leaves half a file. `status.json` says whether the run is running, finished, failed or
interrupted, and carries `"tool": "fitclass"`: the proof that fitclass wrote the folder. A
live run holds `run.lock` (see `runlock.py`); a `running` status without a live lock reads as
`interrupted`.

The overwrite rule (one place, used by every command that writes an output folder): fitclass
deletes or replaces only a folder it can prove is its own (status.json, or the `.fitclass.json`
marker of other output folders, saying `"tool": "fitclass"`), never the working directory, one
of its parents, the home folder or one of its parents, and never a folder holding an entry its
kind of folder does not write. Replacing deletes only the entries such a folder writes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from fitclass.atomic import atomic_write_bytes
from fitclass.atomic import atomic_write_text as atomic_write_text
from fitclass.errors import RunError
from fitclass.runlock import LOCK, RunLock, held, lock_holder

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
NOISE_CHANGES = "noise_changes.csv"
SELF_TRAINING = "self_training.json"
ENSEMBLE = "ensemble.json"
TENSORBOARD = "tensorboard"  # tracking.py's TensorBoard event files
ONNX = "onnx"  # export.py's graphs

TOOL = "fitclass"
MARKER = ".fitclass.json"  # the ownership proof of output folders that are not runs
#: Files operating systems drop into any folder: neither foreign nor ours to delete.
LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
NEW_OUT = "choose another --out (a new or empty folder, e.g. runs/my-run)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing what was there (a folder of
    fitclass's own: a model, a checkpoint, a staged backbone the caller checked)."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    if old.exists():
        shutil.rmtree(old)


@dataclass(frozen=True)
class Layout:
    """The entries fitclass writes into one kind of output folder, and what proves that a
    folder of this kind is fitclass's own."""

    kind: str
    names: frozenset[str]
    patterns: tuple[str, ...] = ()  # numbered or open-ended entries: "fold-*", "*.onnx.data"
    proof: str = MARKER  # a JSON file saying "tool": "fitclass"
    legacy: tuple[str, ...] = ()  # files whose presence proves an older fitclass wrote it

    def writes(self, name: str) -> bool:
        """Whether `name` is an entry of this layout, or a hidden staging or temporary file of
        one (`.model.staging`, `.model.old`, `.recipe.yaml.1a2b3c4d.tmp`)."""
        own = self.names | {self.proof, MARKER}
        if name in own or any(fnmatch(name, pattern) for pattern in self.patterns):
            return True
        if not name.startswith("."):
            return False
        bare = name[1:]
        return (any(bare.startswith(f"{entry.lstrip('.')}.") for entry in own)
                or any(fnmatch(bare, f"{pattern}.*") for pattern in self.patterns))


RUN = Layout("run", frozenset({
    RECIPE, LABELS, MODEL, METRICS, HISTORY, VALID_PREDICTIONS, DATA_CHECKS, ENVIRONMENT, STATUS,
    DECISION, DYNAMICS, VALID_PROBS, REPORT, CHECKPOINTS, NOISE_CHANGES, SELF_TRAINING, ENSEMBLE,
    TENSORBOARD, ONNX, LOCK}), proof=STATUS)


def has_content(path: Path) -> bool:
    """Whether `path` is a folder holding anything but operating-system litter."""
    return path.is_dir() and any(p.name not in LITTER for p in path.iterdir())


def _protected_place(path: Path) -> str | None:
    """Why `path` may never be deleted whatever it holds, or None."""
    target, cwd, home = path.resolve(), Path.cwd().resolve(), Path.home().resolve()
    if target == cwd:
        return "it is the working directory"
    if target in cwd.parents:
        return "it is a parent of the working directory"
    if target == home:
        return "it is your home folder"
    if target in home.parents:
        return "it is a parent of your home folder"
    return None


def _owner_problem(path: Path, layout: Layout) -> str | None:
    """Why `path` cannot be proven to be fitclass's own `layout.kind` folder, or None."""
    proof = path / layout.proof
    if not proof.is_file():
        if any((path / name).exists() for name in layout.legacy):
            return None
        return f"it is not a fitclass {layout.kind} folder (no {layout.proof})"
    try:
        record = json.loads(proof.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"its {layout.proof} is unreadable ({error})"
    if not isinstance(record, dict) or record.get("tool") != TOOL:
        return (f"its {layout.proof} was not written by fitclass (no \"tool\": \"fitclass\"; "
                f"made by hand, or by an older fitclass)")
    if layout.proof == MARKER and record.get("kind") != layout.kind:
        return f"it is a fitclass {record.get('kind')} folder, not a {layout.kind} folder"
    return None


def _foreign(path: Path, layout: Layout) -> list[str]:
    return sorted(p.name for p in path.iterdir()
                  if p.name not in LITTER and not layout.writes(p.name))


def content_problem(path: Path, layout: Layout = RUN) -> str | None:
    """Why the existing folder `path` is not (only) fitclass's own `layout.kind`, or None."""
    owner = _owner_problem(path, layout)
    if owner is not None:
        return owner
    foreign = _foreign(path, layout)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        return f"it holds {shown}, which fitclass does not write into {layout.kind} folders"
    return None


def replace_refusal(path: Path, layout: Layout = RUN) -> str | None:
    """Why fitclass may not delete what `path` holds (the overwrite rule), or None."""
    if not path.exists():
        return None
    if not path.is_dir():
        return "it is a file, not a folder"
    return _protected_place(path) or content_problem(path, layout)


def safe_to_replace(path: Path, layout: Layout = RUN) -> bool:
    return replace_refusal(path, layout) is None


def refused(path: Path, problem: str, layout: Layout = RUN, fix: str = NEW_OUT) -> RunError:
    return RunError(f"{path}: fitclass will not write into this folder: {problem}. It "
                    f"deletes or replaces only {layout.kind} folders it wrote itself; {fix}")


def remove_entries(path: Path, layout: Layout = RUN, keep: tuple[str, ...] = (),
                   fix: str = NEW_OUT) -> None:
    """Delete the entries `layout` writes in `path`, and nothing else; RunError (with the
    reason) when the overwrite rule forbids touching `path`."""
    problem = replace_refusal(path, layout)
    if problem is not None:
        raise refused(path, problem, layout, fix)
    for entry in path.iterdir():
        if entry.name in keep or entry.name in LITTER or not layout.writes(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_run(path: Path) -> None:
    """Delete a finished or abandoned run folder's own files (the overwrite rule applies)."""
    remove_entries(path, RUN)


def claim_folder(path: Path, layout: Layout, fix: str = NEW_OUT) -> Path:
    """Make `path` a `layout.kind` folder to write into: created with the ownership marker
    when absent or empty, accepted when it already is one holding only such entries,
    refused (RunError) otherwise. Nothing is deleted."""
    if path.exists() and not path.is_dir():
        raise refused(path, "it is a file, not a folder", layout, fix)
    if has_content(path):
        problem = content_problem(path, layout)
        if problem is not None:
            raise refused(path, problem, layout, fix)
        return path
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / MARKER, json.dumps({"tool": TOOL, "kind": layout.kind,
                                                 "created": now()}, indent=2))
    return path


class RunDir:
    """One run's folder; the single place that knows its file names."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.replaced: str | None = None  # the status of the run `create` replaced, if any
        self._lock: RunLock | None = None

    @classmethod
    def create(cls, path: str | Path, *, overwrite: bool = False) -> RunDir:
        """A new run folder, locked by this process. An existing folder must be a run that
        the overwrite rule lets fitclass replace; then a finished run, or an unfinished one
        with a checkpoint, is replaced only with `overwrite`; an unfinished run without a
        checkpoint (nothing to continue) is replaced by rerunning the same command."""
        run = cls(path)
        status: str | None = None
        if has_content(run.path):
            holder = lock_holder(run.path)
            if holder is not None:
                raise held(run.path, holder)
            problem = replace_refusal(run.path)
            if problem is not None:
                raise refused(run.path, problem)
            status = run.status()  # before taking the lock: a dead holder's `running` is stale
        elif run.path.exists() and not run.path.is_dir():
            raise refused(run.path, "it is a file, not a folder")
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire()
        try:
            if status is not None:
                if not overwrite:
                    run._refuse_without_overwrite(status)
                remove_entries(run.path, RUN, keep=(LOCK,))
            run.set_status("running")
        except BaseException:
            run.release()
            raise
        run.replaced = status
        return run

    def _refuse_without_overwrite(self, status: str | None) -> None:
        if status == "finished":
            raise RunError(f"{self.path}: a finished run is already here; choose another --out "
                           f"or pass --overwrite to replace it")
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
