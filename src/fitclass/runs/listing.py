"""`fitclass runs`: the runs under a folder, one row each, sortable by a metric.

A damaged run never stops the listing: it is listed with status `broken: <reason>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fitclass.errors import RunError
from fitclass.files import DAMAGED, check_safetensors
from fitclass.models.loading import read_model_info
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import CHECKPOINTS, MODEL, is_run
from fitclass.runs.members import check_no_cycle

MAX_DEPTH = 4  # runs nest inside sweeps, audits and seed ensembles


def find_runs(root: Path, depth: int = 0) -> list[Path]:
    """Folders under `root` that hold a `status.json`, not descending into a run's own
    checkpoints or model."""
    if not root.is_dir() or depth > MAX_DEPTH:
        return []
    found = [root] if is_run(root) else []
    try:
        children = sorted(root.iterdir())
    except OSError:  # a folder we may not read holds no run we could list
        return found
    for child in children:
        if child.is_dir() and child.name not in (MODEL, CHECKPOINTS):
            found += find_runs(child, depth + 1)
    return found


def check_finished_files(run: RunDir) -> None:
    """The files a finished run is used through (besides `metrics.json`, which `describe`
    reads anyway) are there and readable (headers only: listing stays fast); a `RunError`
    names the first that is not."""
    readers.read_labels(run)
    read_model_info(run.model_dir)
    for weights in sorted(run.model_dir.glob("*.safetensors")):
        check_safetensors(weights)
    readers.check_valid_arrays(run)
    check_no_cycle(run.path)  # an ensemble: its members are there and never lead back


def nested(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]...; None where a level is absent or not a mapping."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def describe(path: Path) -> dict[str, Any]:
    """One run's summary row; unfinished runs show their status and what is known, damaged
    ones `broken: <reason>`."""
    run = RunDir(path)
    row: dict[str, Any] = {"run": str(path), "name": path.name, "task": None, "backbone": None,
                           "status": None, "started": None, "select_metric": None,
                           "select_value": None, "accuracy": None, "macro_f1": None,
                           "micro_f1": None, "log_loss": None, "n_valid": None, "error": None}
    try:
        status = readers.read_status(run)
        # run.status(): a `running` run whose process is gone reads `interrupted`
        row |= {"status": run.status(), "started": status.get("started"),
                "error": status.get("error")}
        finished = status["status"] == "finished"
        # an unfinished run may have died before writing its recipe
        recipe = (readers.read_recipe_dict(run) if finished or readers.has_recipe(run)
                  else {})
        row |= {"name": recipe.get("name") or path.name, "task": recipe.get("task"),
                "backbone": nested(recipe, "model", "backbone")}
        if finished:
            check_finished_files(run)
        metrics = readers.read_metrics(run) if finished else readers.read_metrics_if_any(run)
    except RunError as error:
        return row | {"status": f"broken: {str(error).removesuffix('; ' + DAMAGED)}"}
    select = nested(metrics, "select", "metric") or nested(recipe, "train", "select", "metric")
    return row | {
        "select_metric": select,
        "select_value": metrics.get(select) if isinstance(select, str) else None,
        "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
        "micro_f1": metrics.get("micro_f1"), "log_loss": metrics.get("log_loss"),
        "n_valid": metrics.get("n"),
    }


def list_runs(root: str | Path, sort: str | None = None,
              descending: bool = True) -> list[dict[str, Any]]:
    rows = [describe(path) for path in find_runs(Path(root))]
    if sort:
        present = [r for r in rows if isinstance(r.get(sort), int | float)]
        missing = [r for r in rows if not isinstance(r.get(sort), int | float)]
        rows = sorted(present, key=lambda r: r[sort], reverse=descending) + missing
    return rows
