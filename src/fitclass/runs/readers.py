"""Typed readers of the run record: every run file read back goes through these, so a
truncated or hand-edited file is a `RunError` naming it (and what to do), never a traceback
from deep inside. Optional files read as None (or {}) when absent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from fitclass.files import (
    check_class_names,
    check_safetensors,
    damaged,
    read_json_object,
)
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import (
    CV,
    DATA_CHECKS,
    DECISION,
    DYNAMICS,
    HISTORY,
    LABELS,
    METRICS,
    OOF,
    OOF_PROBS,
    RECIPE,
    REFIT_INFO,
    STATUS,
    SUSPECTS,
    SUSPECTS_SUMMARY,
    VALID_PREDICTIONS,
    VALID_PROBS,
)

if TYPE_CHECKING:
    from fitclass.decide.decision import Decision


def read_status(run: RunDir) -> dict[str, Any]:
    """`status.json` as a record with a string `status`."""
    return read_json_object(run.file(STATUS), {"status": str})


def read_labels(run: RunDir) -> dict[str, Any]:
    """`labels.json`: `classes` a non-empty list of distinct strings (the label index order)."""
    path = run.file(LABELS)
    labels = read_json_object(path, {"classes": list})
    check_class_names(path, labels["classes"])
    return labels


def labels_path(run: RunDir) -> Path:
    """Where the run's class list is (named in errors about the model disagreeing with it)."""
    return run.file(LABELS)


def read_metrics(run: RunDir) -> dict[str, Any]:
    """`metrics.json` as a JSON object."""
    return read_json_object(run.file(METRICS), {})


def has_metrics(run: RunDir) -> bool:
    """Whether the run wrote its `metrics.json` (the last file of a finished record)."""
    return run.file(METRICS).is_file()


def read_metrics_if_any(run: RunDir) -> dict[str, Any]:
    """`metrics.json`, or {} while the run has not written it (unfinished runs)."""
    return read_metrics(run) if run.file(METRICS).is_file() else {}


def read_data_checks(run: RunDir) -> dict[str, Any]:
    """`data_checks.json`, or {} when the run has none."""
    path = run.file(DATA_CHECKS)
    return read_json_object(path, {}) if path.is_file() else {}


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


def has_recipe(run: RunDir) -> bool:
    """Whether the run wrote its recipe (an unfinished run may have died before it)."""
    return run.file(RECIPE).is_file()


def read_recipe_text(run: RunDir) -> str:
    """`recipe.yaml` as written (checked to be a readable YAML mapping first)."""
    read_recipe_dict(run)
    return run.file(RECIPE).read_text(encoding="utf-8")


def read_decision(run: RunDir, classes: int) -> Decision | None:
    """`decision.json`, its per-class settings numbers sized for the classes; None when the
    run has none (the task's default decision applies)."""
    from fitclass.decide.decision import Decision

    path = run.file(DECISION)
    if not path.is_file():
        return None
    try:
        decision = Decision.from_dict(read_json_object(path, {}))
    except (KeyError, TypeError, ValueError) as error:
        raise damaged(path, f"is not a decision fitclass wrote ({type(error).__name__}: "
                            f"{error})") from None
    shapes = {"thresholds": (classes,), "class_weights": (classes,),
              "cost_matrix": (classes, classes), "offsets": (classes,)}
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


def read_valid_arrays(run: RunDir) -> dict[str, np.ndarray]:
    """`valid_probs.safetensors` (`raw` probabilities, `targets`); {} when absent."""
    return run.read_arrays(VALID_PROBS)


def check_valid_arrays(run: RunDir) -> None:
    """The validation arrays' header is readable, when the run has them (cheap)."""
    if run.file(VALID_PROBS).exists():
        check_safetensors(run.file(VALID_PROBS))


def _read_table(path: Path, dtype: dict[Any, Any] | None = None) -> pd.DataFrame | None:
    """A CSV the run wrote (empty cells stay empty strings); None when absent."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise damaged(path, f"is not a readable table ({type(error).__name__})") from None


@overload
def read_valid_predictions(run: RunDir, missing_ok: Literal[False] = ...) -> pd.DataFrame: ...
@overload
def read_valid_predictions(run: RunDir, missing_ok: Literal[True]) -> pd.DataFrame | None: ...
def read_valid_predictions(run: RunDir, missing_ok: bool = False) -> pd.DataFrame | None:
    """`valid_predictions.csv`, ids (its first column) as strings; a missing file is a
    `RunError` unless `missing_ok`."""
    path = run.file(VALID_PREDICTIONS)
    frame = _read_table(path, dtype={0: str})
    if frame is None and not missing_ok:
        raise damaged(path, "is missing")
    return frame


def read_history(run: RunDir) -> pd.DataFrame | None:
    """`history.csv` (one row per evaluation); None when absent."""
    return _read_table(run.file(HISTORY))


def read_dynamics(run: RunDir) -> pd.DataFrame | None:
    """`dynamics.csv` (per-row training dynamics, ids as strings); None when absent."""
    return _read_table(run.file(DYNAMICS), dtype={"id": str})


def read_suspects(run: RunDir) -> pd.DataFrame | None:
    """An audit's `suspects.csv` saved into the run; None when absent."""
    return _read_table(run.file(SUSPECTS))


def read_audit_summary(run: RunDir) -> dict[str, Any] | None:
    """An audit's `suspects_summary.json` saved into the run (`fitclass audit --out
    RUN_DIR/suspects.csv`); None when absent."""
    path = run.file(SUSPECTS_SUMMARY)
    return read_json_object(path, {}) if path.is_file() else None


def read_refit_info(run: RunDir) -> dict[str, Any] | None:
    """A refit run's `refit.json` (its decision, expected score and schedule: see
    `fitclass train --refit`); None when the run is no refit."""
    path = run.file(REFIT_INFO)
    if not path.is_file():
        return None
    return read_json_object(path, {"decision": dict, "expected": dict})


def read_cv(run: RunDir) -> dict[str, Any] | None:
    """A cross-validation run's `cv.json`; None for other runs."""
    path = run.file(CV)
    return read_json_object(path, {"k": int}) if path.is_file() else None


def read_oof(run: RunDir) -> pd.DataFrame | None:
    """A cross-validation run's `oof.csv` (ids as strings); None for other runs."""
    return _read_table(run.file(OOF), dtype={0: str})


def read_oof_arrays(run: RunDir) -> dict[str, np.ndarray]:
    """A cross-validation run's `oof_probs.safetensors` ({} for other runs)."""
    return run.read_arrays(OOF_PROBS)
