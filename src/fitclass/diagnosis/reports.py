"""`fitclass doctor --json FILE`: the diagnosis as JSON, for scripts and `fitclass auto`.
Written atomically; replaces only a file fitclass doctor wrote (`"tool": "fitclass doctor"`)."""

from __future__ import annotations

from pathlib import Path

from fitclass.atomic import atomic_write_text
from fitclass.diagnosis.findings import Diagnosis
from fitclass.runs.layout import claim_file, json_tool

TOOL = "fitclass doctor"


def check_json_output(path: Path) -> None:
    """Refuse a folder, or an existing file that is not a diagnosis fitclass wrote."""
    claim_file(path, lambda file: json_tool(file) == TOOL,
               f"a diagnosis fitclass doctor wrote (no \"tool\": \"{TOOL}\")", "--json",
               "doctor.json")


def write_json(diagnosis: Diagnosis, path: Path) -> None:
    check_json_output(path)
    atomic_write_text(path, diagnosis.to_json() + "\n")
