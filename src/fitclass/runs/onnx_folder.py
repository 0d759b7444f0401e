"""A run's ONNX export folder (`RUN/onnx`): what an export writes there, how a new export
clears the previous one, and its record `export.json`.

`export.json` is written last, atomically: it is what makes the folder an export. A new
export deletes the old record before anything else, so an export that stops midway leaves
graphs that no engine takes as valid. An ensemble's export writes one folder per member
under `members/` (`members/<member>/model.onnx`; a member that is itself an ensemble has its
own `members/`), each with its ownership marker, all inside `RUN/onnx`: the member runs, which
the ensemble may share with other ensembles, are never written to.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fitclass.errors import RunError
from fitclass.files import read_json_file
from fitclass.models.onnx import FP32, INT8
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import (
    EXPORT_INFO,
    LITTER,
    MARKER,
    ONNX,
    Layout,
    refused,
    remove_entries,
    replace_refusal,
)

#: An ensemble export's member folders.
MEMBERS = "members"
#: Torch's external weights files of graphs over 2 GB.
DATA_FILES = ("*.onnx.data", "*.onnx_data")
#: What an export writes into RUN/onnx (the overwrite rule: runs.layout.claim_folder).
ONNX_FOLDER = Layout("ONNX export", frozenset({FP32, INT8, EXPORT_INFO, MEMBERS}),
                     patterns=DATA_FILES, legacy=(EXPORT_INFO,))
#: What an ensemble export writes into each member's folder, RUN/onnx/members/<member>.
MEMBER_FOLDER = Layout("ONNX member export", frozenset({FP32, INT8, MEMBERS}),
                       patterns=DATA_FILES)
#: The graphs an export can hold, by name in export.json.
GRAPHS = {"fp32": FP32, "int8": INT8}


def export_folder(run_path: Path) -> Path:
    return run_path / ONNX


def fix_for(folder: Path) -> str:
    return f"move those files out of {folder}, then export again"


def clear_export(folder: Path) -> None:
    """Delete what an earlier export wrote into `folder` (claimed: `claim_folder` proved it
    ours), member folders included, its record first; refuses before deleting anything when
    a member folder is not fitclass's own or holds files fitclass does not write there."""
    members = _member_folders(folder)
    (folder / EXPORT_INFO).unlink(missing_ok=True)
    for member in members:  # deepest first
        remove_entries(member, MEMBER_FOLDER, fix=fix_for(member))
        for entry in member.iterdir():  # operating-system litter, ours to leave with it
            entry.unlink()
        member.rmdir()
    for entry in folder.iterdir():  # `folder` is ours (claim_folder); keep its marker
        if entry.name == MARKER or not ONNX_FOLDER.writes(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _member_folders(folder: Path) -> list[Path]:
    """Every member folder under `folder`, deepest first, each checked to be ours."""
    members = folder / MEMBERS
    if not members.is_dir():
        return []
    found: list[Path] = []
    for entry in sorted(members.iterdir()):
        if entry.name in LITTER:
            continue
        problem = replace_refusal(entry, MEMBER_FOLDER)
        if problem is not None:
            raise refused(entry, problem, MEMBER_FOLDER, fix_for(entry))
        found += [*_member_folders(entry), entry]
    return found


def member_names(paths: Sequence[Path]) -> list[str]:
    """Member folder names: each member run's folder name (`fold-0`, `seed-1`), numbered
    (`0-run`, `1-run`) when two members share a name."""
    names = [path.name for path in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{index}-{name}" for index, name in enumerate(names)]


def member_stamp(run_path: Path) -> str:
    """When the member run was started: a member trained again since the export (same
    folder, new model) has another stamp, and its graph is stale."""
    record = RunDir(run_path).status_record() or {}
    return str(record.get("started", ""))


def export_again(run_path: Path) -> str:
    return f"run `fitclass export {run_path} --onnx` again"


def bad_record(run_path: Path, problem: str) -> RunError:
    """A record that does not describe the export or the run as they are now."""
    return RunError(f"{export_folder(run_path) / EXPORT_INFO} {problem}; "
                    f"{export_again(run_path)}")


def read_export(run_path: Path) -> dict[str, Any]:
    """The run's export record; a missing one means no finished export."""
    folder = export_folder(run_path)
    path = folder / EXPORT_INFO
    if not path.is_file():
        partial = folder.is_dir() and any((folder / name).exists() for name in (FP32, MEMBERS))
        cause = (" (the graphs there are from an export that did not finish)" if partial
                 else "")
        raise RunError(f"{run_path}: no ONNX export{cause}; run `fitclass export {run_path} "
                       f"--onnx`")
    record = read_json_file(path)
    if not isinstance(record, dict):
        raise bad_record(run_path, f"should hold a JSON object, not {type(record).__name__}")
    return record


def graph_names(record: dict[str, Any], run_path: Path) -> list[str]:
    """The graphs an export holds ("fp32", and "int8" when quantised)."""
    names = [name for name in GRAPHS if isinstance(record.get(name), dict)]
    if "fp32" not in names:
        raise bad_record(run_path, "records no fp32 graph")
    return names


def check_graph(path: Path, run_path: Path) -> Path:
    """An exported graph the record lists, which must be there."""
    if not path.is_file():
        raise bad_record(run_path, f"lists the graph {path}, which is missing")
    return path
