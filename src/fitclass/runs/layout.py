"""The run folder's layout: every file name of the run record, and the overwrite rule.

This is the one module that names the files of a run (`RECIPE`, `METRICS`, ...); everything
else reaches them through `RunDir`, the typed readers and the one writer of this package.

The overwrite rule (one place, used by every command that writes an output folder): fitclass
deletes or replaces only a folder it can prove is its own (status.json, or the `.fitclass.json`
marker of other output folders, saying `"tool": "fitclass"`), never the working directory, one
of its parents, the home folder or one of its parents, and never a folder holding an entry its
kind of folder does not write. Replacing deletes only the entries such a folder writes.
The same rule for single output files (`claim_file`): fitclass replaces only a file it can
prove it wrote (a marker line, a `"tool"` key, a header of its own).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

from fitclass.atomic import atomic_write_text
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
NOISE_CHANGES = "noise_changes.csv"
SELF_TRAINING = "self_training.json"
ENSEMBLE = "ensemble.json"
TENSORBOARD = "tensorboard"  # tracking.py's TensorBoard event files
ONNX = "onnx"  # export.py's graphs
EXPORT_INFO = "export.json"  # inside ONNX: what the export verified
SUSPECTS = "suspects.csv"  # an audit's suspects, when saved into the run it audited
SUSPECTS_SUMMARY = "suspects_summary.json"  # ... and its summary (`checks`: its checks list)
OOF = "oof.csv"  # a cross-validation run's out-of-fold predictions, every labelled row
OOF_PROBS = "oof_probs.safetensors"  # ... and its out-of-fold probabilities, raw
CV = "cv.json"  # a cross-validation run's scores over folds
REFIT = "refit"  # the run `--refit` trains on every labelled row, inside the run it came from
REFIT_INFO = "refit.json"  # in a refit run: where its schedule, decision and expected score
TEACHER_PROBS = "teacher_probs.safetensors"  # a distillation's cached teacher probabilities
FOLD_PATTERN = "fold-*"  # a cross-validation run's fold runs (fold-<k>, fold-<k>-seed-<s>)
LOCK = "run.lock"  # held by a live run (see lock.py)

TOOL = "fitclass"
MARKER = ".fitclass.json"  # the ownership proof of output folders that are not runs
#: Files operating systems drop into any folder: neither foreign nor ours to delete.
LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
NEW_OUT = "choose another --out (a new or empty folder, e.g. runs/my-run)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    TENSORBOARD, ONNX, LOCK, OOF, OOF_PROBS, CV, REFIT, REFIT_INFO, TEACHER_PROBS}),
    patterns=(FOLD_PATTERN,),
    proof=STATUS)


def fold_run_name(fold: int, seed: int | None = None) -> str:
    """A cross-validation fold run's folder name: `fold-<k>`, or `fold-<k>-seed-<s>` when
    each fold trains several seeds."""
    return f"fold-{fold}" if seed is None else f"fold-{fold}-seed-{seed}"


def is_run(path: Path) -> bool:
    """Whether `path` is a run folder (it has a `status.json`, finished or not)."""
    return (path / STATUS).is_file()


def not_a_run(path: Path) -> RunError:
    return RunError(f"{path}: not a fitclass run directory (no {STATUS})")


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
                   fix: str = NEW_OUT, within: Layout | None = None) -> None:
    """Delete the entries `layout` writes in `path`, and nothing else; RunError (with the
    reason) when the overwrite rule forbids touching `path`. `within` is the kind of folder
    `path` is, when a `layout` record lives in a folder that keeps entries of its own (a
    `fitclass auto` folder holds its run beside `trials/`): the rule is checked against it,
    and only `layout`'s entries are deleted."""
    owner = within or layout
    problem = replace_refusal(path, owner)
    if problem is not None:
        raise refused(path, problem, owner, fix)
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




def claim_file(path: Path, written_by_us: Callable[[Path], bool], what: str, flag: str,
               example: str) -> Path:
    """The file counterpart of `claim_folder`: make `path` a file to write `what` into.
    Accepted when absent, or when `written_by_us` proves fitclass wrote it (it is then
    replaced); refused (RunError naming the file, why and the fix) when it is a folder or a
    file fitclass did not write. Nothing is deleted here. `flag` is the option that named
    it (`--json`), `example` a file name to suggest inside a folder."""
    if path.is_dir():
        raise RunError(f"{path}: is a folder; {flag} names the file to write, e.g. "
                       f"{path / example}")
    if path.exists() and not written_by_us(path):
        raise RunError(f"{path}: exists and is not {what}; fitclass will not replace it (it "
                       f"replaces only files it wrote): choose another {flag} file, or move "
                       f"this one away")
    return path


def first_line(path: Path) -> str:
    """The first line of a text file; "" when it cannot be read as UTF-8 text."""
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline()
    except (OSError, UnicodeDecodeError):
        return ""


def json_tool(path: Path) -> object:
    """The `"tool"` a JSON object file says wrote it; None when it is not one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record.get("tool") if isinstance(record, dict) else None
