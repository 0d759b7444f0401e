"""`fitclass.doctor(...)`: read a table (or image folder), run every concern's check, and
gather the findings and the recipe they imply into a `Diagnosis`.

The backbone is settled first (a script mismatch swaps the English MiniLM for TF-IDF), so
every later remedy uses keys that backbone accepts; the recipe is validated before it is
returned, so a `Diagnosis.recipe` always loads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.capabilities import capabilities_for
from fitclass.data.prepare import read_inputs
from fitclass.diagnosis import classes, duplicates, label_noise, lengths, script, shift
from fitclass.diagnosis.findings import Diagnosis, Finding, merged
from fitclass.diagnosis.inputs import Rows, data_config, read_rows, rows_of
from fitclass.errors import FitclassError, RecipeError
from fitclass.recipe import ModelConfig, build_recipe, parse_overrides

TASKS = ("multiclass", "multilabel")
#: Other spellings of the two tasks.
TASK_ALIASES = {"single_label": "multiclass", "single-label": "multiclass",
                "binary": "multiclass", "multi_label": "multilabel",
                "multi-label": "multilabel"}
#: The recipe's path for a table given as a DataFrame (it has none): the user saves it.
IN_MEMORY = "TABLE.csv"
#: File names that say nothing about the data set (its folder's name is used instead).
GENERIC_STEMS = ("train", "data", "dataset", "labelled", "labeled", "TABLE")


def _settings(settings: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--set data.quoting=none model.max_length=64` -> (data keys, model keys)."""
    parsed = parse_overrides(settings or [])
    other = sorted(set(parsed) - {"data", "model"})
    if other:
        raise FitclassError(f"--set {other[0]}...: doctor takes data.* keys (quoting, sep, "
                            f"encoding, label_sep, id, group) and model.* keys (max_length)")
    return parsed.get("data", {}), parsed.get("model", {})


def _model(backbone: str, keys: dict[str, Any]) -> ModelConfig:
    try:
        return ModelConfig.model_validate({**keys, "backbone": backbone})
    except ValueError as error:
        raise RecipeError(f"--backbone/--set model.*: {error}") from None


def _neural(backbone: str) -> bool:
    declared = capabilities_for(backbone)
    return declared is None or declared.neural  # a hub id or folder: a transformer


def _base_keys(rows: Rows, path: str, valid: str | Path | None, data_keys: dict[str, Any],
               model: ModelConfig, model_keys: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys every recipe of this table has: task, name, data, backbone."""
    config = rows.config
    stem = Path(path).stem
    if stem in GENERIC_STEMS:  # trec/train.tsv: the folder names the data set
        stem = Path(path).parent.name or stem
    keys: dict[str, Any] = {"name": f"{stem}-doctor",
                            "task": "multilabel" if rows.multilabel else "multiclass",
                            "data.train": path}
    if rows.images:
        keys["data.images"] = True
    else:
        keys |= {"data.text": config.text, "data.label": config.label}
        keys |= {f"data.{k}": v for k, v in data_keys.items()}
        if valid is not None:
            keys["data.valid"] = str(Path(valid).resolve())
    keys["model.backbone"] = model.backbone
    keys |= {f"model.{k}": v for k, v in model_keys.items() if k != "backbone"}
    return keys


def doctor(data: str | Path | pd.DataFrame, *, label: str | list[str] | None = None,
           text: str | list[str] | None = None, task: str | None = None,
           valid: str | Path | None = None, test: str | Path | None = None,
           backbone: str | None = None, settings: list[str] | None = None,
           noise: bool = True) -> Diagnosis:
    """Diagnose a labelled table (a path or a DataFrame) or a folder of class folders of
    images: the findings, each with its remedy, why and recipe keys, and the recipe they
    imply. `settings` are `--set` style `data.*` / `model.*` keys; `noise=False` skips the
    proxy audit."""
    start = time.perf_counter()
    data_keys, model_keys = _settings(settings)
    path = IN_MEMORY if isinstance(data, pd.DataFrame) else str(Path(data).resolve())
    config = data_config(path, text, label, data_keys)
    task = TASK_ALIASES.get(task, task) if task is not None else None
    if task is not None and task not in TASKS:
        raise FitclassError(f"--task {task!r}: use multiclass or multilabel (the recipe's "
                            f"task names)")
    wanted = "multilabel" if config.multilabel else "multiclass"
    if task is not None and task != wanted:
        raise FitclassError(f"--task {task}: the labels say {wanted}; multi-label labels "
                            f"are several --label columns of 0/1, or one column of names "
                            f"with --set data.label_sep='|'")
    rows = (rows_of(data, Path(path), config) if isinstance(data, pd.DataFrame)
            else read_rows(path, config))
    if rows.images and (valid is not None or test is not None):
        raise FitclassError("--valid/--test: doctor compares text files only; for image "
                            "folders it reports classes and their counts")
    model = _model(backbone or ("resnet-tiny" if rows.images else "minilm"), model_keys)
    findings = list(rows.left_out)
    if not rows.images:  # the script settles the backbone every later remedy must suit
        written = script.check_script(rows.texts, model.backbone)
        findings.append(written)
        model = model.model_copy(update={"backbone": written.recipe.get("model.backbone",
                                                                        model.backbone)})
    findings += _class_findings(rows, model.backbone)
    if not rows.images:
        findings += _text_findings(rows, model, valid, test, noise)
    base = _base_keys(rows, path, valid, data_keys, model, model_keys)
    recipe = merged(base, findings)
    try:
        build_recipe(recipe, "the recipe doctor derived")
    except RecipeError as error:  # a remedy combination the recipe refuses: a doctor bug
        raise FitclassError(f"{error}\n(fitclass doctor derived this recipe; please report "
                            f"it with the findings above)") from None
    return Diagnosis(rows.source, "multilabel" if rows.multilabel else "multiclass",
                     len(rows.labels), classes.class_counts(rows.labels, rows.class_names),
                     findings, recipe, model.backbone, time.perf_counter() - start)


def _class_findings(rows: Rows, backbone: str) -> list[Finding]:
    counts = classes.class_counts(rows.labels, rows.class_names)
    found = [classes.few_rows(counts, len(rows.labels)),
             classes.imbalance(counts, len(rows.labels), rows.multilabel, _neural(backbone))]
    if rows.multilabel:
        found.append(classes.cardinality(rows.labels))
    return [f for f in found if f is not None]


def _text_findings(rows: Rows, model: ModelConfig, valid: str | Path | None,
                   test: str | Path | None, noise: bool) -> list[Finding]:
    """Length, duplicates and leakage, noise, shift (`model`: the settled backbone)."""
    threshold = rows.config.near_duplicate_threshold
    found: list[Finding | None] = [lengths.check_lengths(rows.texts, model)]
    found += duplicates.check_duplicates(rows.texts, rows.labels, rows.source, threshold,
                                         own_split=valid is None)
    table = duplicates.table_of(rows.source, rows.texts, rows.labels)
    valid_rows = None if valid is None else read_rows(valid, rows.config.model_copy(
        update={"train": Path(valid), "id": None, "group": None, "limit": None}))
    if valid_rows is not None:
        found += valid_rows.left_out
        other = duplicates.table_of(valid_rows.source, valid_rows.texts, valid_rows.labels)
        found.append(duplicates.check_leakage(table, other, threshold, "validation"))
    if test is not None:
        tested = read_inputs(test, rows.config.model_copy(update={"train": Path(test)}),
                             optional_id=True)
        found.append(duplicates.check_leakage(table, tested, threshold, "test"))
    if noise and not rows.multilabel:
        found.append(label_noise.check_noise(rows.texts, rows.labels, rows.class_names,
                                             _neural(model.backbone)))
    if valid_rows is not None:
        names = sorted(set(rows.class_names) | set(valid_rows.class_names))
        found.append(shift.check_shift(classes.class_counts(rows.labels, names),
                                       classes.class_counts(valid_rows.labels, names),
                                       valid_rows.source, rows.multilabel))
    return [f for f in found if f is not None]
