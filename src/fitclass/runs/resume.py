"""`--resume`: which `--set` overrides a resumed run accepts, and how they are recorded.

A run must stay reproducible from its own folder. A resumed run continues the stored
`recipe.yaml`; an override may only change keys that do not change the weights a fresh run
with the final recipe would train: when it stops (`train.early_stopping`), how validation is
batched (`train.eval_batch_size`), the run's name and its trackers. Everything else (seed,
learning rate, epochs, whose schedule is laid over the total steps, batch size, evaluation
schedule, data, model...) is refused with the stored and requested values. Accepted changes
are written into `recipe.yaml` (atomically) and every resume is listed in status.json's
`resumes`, with the step it continued from and the changes it applied.
"""

from __future__ import annotations

import json
from typing import Any

from fitclass.errors import RunError
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import RECIPE, now

#: Dotted keys (and their sub-keys) a resume may change.
RESUMABLE = ("name", "tracking", "mlflow", "train.early_stopping", "train.eval_batch_size")
_ABSENT = object()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resumable(key: str) -> bool:
    return any(key == allowed or key.startswith(f"{allowed}.") for allowed in RESUMABLE)


def changed_keys(before: Recipe, after: Recipe) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (stored value, new value) for every key the overrides changed."""
    old, new = _flatten(before.to_dict()), _flatten(after.to_dict())
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if old.get(key, _ABSENT) != new.get(key, _ABSENT)}


def _resumed_from_step(run: RunDir) -> int | None:
    from fitclass.training.checkpoint import LAST, LOOP_STATE

    path = run.checkpoint(LAST) / LOOP_STATE
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stored_recipe(run: RunDir) -> Recipe:
    """The recipe the run was started with (as amended by earlier resumes)."""
    return load_recipe(run.file(RECIPE))


def resume_recipe(run: RunDir,
                  overrides: list[str] | None) -> tuple[Recipe, list[dict[str, Any]]]:
    """The stored recipe with the allowed `overrides` applied (and written into
    `recipe.yaml`), and the run's resume history with this resume added (for status.json)."""
    stored = stored_recipe(run)
    recipe = load_recipe(run.file(RECIPE), overrides) if overrides else stored
    changes = changed_keys(stored, recipe)
    refused = {key: values for key, values in changes.items() if not resumable(key)}
    if refused:
        listed = "; ".join(f"{key}: stored {old!r}, requested {new!r}"
                           for key, (old, new) in refused.items())
        raise RunError(f"{run.path}: --resume cannot change {listed}. A resumed run continues "
                       f"its stored {RECIPE}, and these keys would make a run that no "
                       f"recipe reproduces; a resume may change only {', '.join(RESUMABLE)}. "
                       f"To train with the new values, start a new run (another --out, or "
                       f"--overwrite) from your recipe")
    if changes:
        run.write_text(RECIPE, recipe.to_yaml())
    record = run.status_record() or {}
    history = [*record.get("resumes", []), {
        "at": now(), "from_step": _resumed_from_step(run),
        "overrides": list(overrides or []),
        "changed": {key: {"from": old, "to": new} for key, (old, new) in changes.items()}}]
    return recipe, history
