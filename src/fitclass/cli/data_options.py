"""The data options `fitclass doctor` and `fitclass auto` share (DATA, --text, --label,
--task, --valid), declared once so the two commands read a table the same way and say so in
the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Data = Annotated[Path, typer.Argument(help="Labelled table (.csv, .tsv, .jsonl, .parquet).")]
TextColumns = Annotated[list[str] | None, typer.Option(
    "--text", help="Text column (default text; twice for pairs).")]
LabelColumns = Annotated[list[str] | None, typer.Option(
    "--label", help="Label column (default label); repeat for 0/1 multi-label columns.")]
Task = Annotated[str | None, typer.Option(
    help="multiclass (single_label) or multilabel (multi_label); default: from the labels.")]
ValidFile = Annotated[Path | None, typer.Option(
    help="Validation file (default: a stratified split of DATA); checked for leakage and "
         "label shift against DATA.")]


def columns(names: list[str] | None) -> str | list[str] | None:
    """A repeatable column option as the API takes it: one name, several, or the default."""
    if not names:
        return None
    return names[0] if len(names) == 1 else list(names)
