"""`fitclass runs`: the runs under a folder, one row each, sortable by a metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fitclass import rundir

MAX_DEPTH = 4  # runs nest inside sweeps, audits and seed ensembles


def find_runs(root: Path, depth: int = 0) -> list[Path]:
    """Folders under `root` that hold a `status.json`, not descending into a run's own
    checkpoints or model."""
    if not root.is_dir() or depth > MAX_DEPTH:
        return []
    found = [root] if (root / rundir.STATUS).is_file() else []
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name not in (rundir.MODEL, rundir.CHECKPOINTS):
            found += find_runs(child, depth + 1)
    return found


def describe(path: Path) -> dict[str, Any]:
    """One run's summary row; unfinished runs show their status and what is known."""
    run = rundir.RunDir(path)
    status = run.status_record() or {}
    recipe: dict[str, Any] = {}
    if (path / rundir.RECIPE).is_file():
        recipe = yaml.safe_load((path / rundir.RECIPE).read_text(encoding="utf-8")) or {}
    metrics: dict[str, Any] = {}
    if (path / rundir.METRICS).is_file():
        metrics = json.loads((path / rundir.METRICS).read_text(encoding="utf-8"))
    select = (metrics.get("select") or {}).get("metric") or \
        recipe.get("train", {}).get("select", {}).get("metric")
    return {
        "run": str(path), "name": recipe.get("name") or path.name,
        "task": recipe.get("task"), "backbone": (recipe.get("model") or {}).get("backbone"),
        "status": run.status(), "started": status.get("started"),
        "select_metric": select, "select_value": metrics.get(select) if select else None,
        "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
        "micro_f1": metrics.get("micro_f1"), "log_loss": metrics.get("log_loss"),
        "n_valid": metrics.get("n"), "error": status.get("error"),
    }


def list_runs(root: str | Path, sort: str | None = None,
              descending: bool = True) -> list[dict[str, Any]]:
    rows = [describe(path) for path in find_runs(Path(root))]
    if sort:
        present = [r for r in rows if isinstance(r.get(sort), int | float)]
        missing = [r for r in rows if not isinstance(r.get(sort), int | float)]
        rows = sorted(present, key=lambda r: r[sort], reverse=descending) + missing
    return rows
