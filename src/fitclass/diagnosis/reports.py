"""`fitclass doctor --json FILE`: the diagnosis as JSON, for scripts and `fitclass auto`.
Written atomically; replaces only a file fitclass doctor wrote (`"tool": "fitclass doctor"`)."""

from __future__ import annotations

import json
from pathlib import Path

from fitclass.atomic import atomic_write_text
from fitclass.diagnosis.findings import Diagnosis
from fitclass.errors import FitclassError

TOOL = "fitclass doctor"


def check_json_output(path: Path) -> None:
    """Refuse a folder, or an existing file that is not a diagnosis fitclass wrote."""
    if path.is_dir():
        raise FitclassError(f"{path}: is a folder; --json names the file to write, e.g. "
                            f"{path / 'doctor.json'}")
    if not path.exists():
        return
    try:
        written = json.loads(path.read_text(encoding="utf-8")).get("tool")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        written = None
    if written != TOOL:
        raise FitclassError(f"{path}: exists and is not a diagnosis fitclass doctor wrote; "
                            f"fitclass will not replace it: choose another --json file")


def write_json(diagnosis: Diagnosis, path: Path) -> None:
    check_json_output(path)
    atomic_write_text(path, diagnosis.to_json() + "\n")
