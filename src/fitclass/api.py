"""`fitclass.train`: recipe in, finished run directory out. The CLI calls the same function."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitclass.data import checks
from fitclass.data.augment import augment_minority
from fitclass.data.fingerprint import data_fingerprint
from fitclass.data.prepare import PreparedData, prepare_data
from fitclass.decide.decision import Decision
from fitclass.distilling.teacher import Teacher, load_teacher
from fitclass.errors import Pruned, RecipeError, RunError
from fitclass.models.base import Backbone
from fitclass.models.catalog import get_backbone
from fitclass.noise.actions import apply_noise_action
from fitclass.noise.selftrain import self_train
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs import writer
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import TEACHER_PROBS, not_a_run
from fitclass.runs.readers import read_metrics, read_refit_info
from fitclass.runs.resume import resume_recipe, stored_recipe
from fitclass.runs.run import Run, prediction_frame
from fitclass.runs.scored_rows import row_intervals, scored_metrics
from fitclass.target_kinds import KINDS
from fitclass.tasks import make_task
from fitclass.tracking import Tracker, scalars, start_trackers
from fitclass.training import writer as checkpoint_writes
from fitclass.training.callbacks import Callback
from fitclass.training.context import FitContext, FitResult
from fitclass.training.engine import fit_neural
from fitclass.training.objective import stacked_remedies
from fitclass.training.progress import Reporter

DEFAULT_RUNS_DIR = Path("runs")


def default_run_path(recipe: Recipe) -> Path:
    """runs/<name or backbone>-<timestamp>: unique, sortable, readable."""
    stem = recipe.name or Path(recipe.model.backbone).name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "run"
    return DEFAULT_RUNS_DIR / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"


def _record_checks(prepared: PreparedData, backbone: Backbone, recipe: Recipe,
                   reporter: Reporter) -> None:
    """Add the truncation check (it needs the tokenizer) and print every warning."""
    if backbone.max_length is not None:
        lengths = backbone.token_lengths(prepared.train.texts)
        if lengths is not None:
            prepared.report.ran("truncation")
            prepared.report.add(checks.check_truncation(lengths, backbone.max_length,
                                                        prepared.train.source))
    for finding in prepared.report.warnings:
        reporter.log(f"warning: {finding.message}")
    for message in stacked_remedies(recipe):
        reporter.log(f"warning: {message}")
    counts = prepared.report.class_counts
    reporter.log(f"data: {len(prepared.train)} train rows, {len(prepared.valid)} validation "
                 f"rows, {len(prepared.class_names)} classes; train counts {counts['train']}")


def _save_outputs(run: RunDir, recipe: Recipe, prepared: PreparedData,
                  result: FitResult, teacher: Teacher | None = None) -> dict[str, Any]:
    """Write the finished run's record (model, labels, metrics, history, validation
    predictions) through the one writer; return the metrics. A distillation's metrics say
    how the student agrees with its `teacher` and the gap between their metrics."""
    task = make_task(recipe.task, prepared.class_names)
    probs = result.classifier.predict_proba(prepared.valid.texts, recipe.train.eval_batch_size)
    targets = prepared.valid.targets(prepared.class_names)
    train_targets = prepared.train.targets(prepared.class_names)
    decision = task.fit_decision(recipe.decision, targets, probs,
                                 task.class_priors(train_targets))
    metrics, scored = scored_metrics(task, targets, probs, decision)
    metrics["intervals"] = row_intervals(scored, metrics)
    raw = task.metrics(targets, probs)  # argmax / 0.5: what the decision is compared with
    metrics["before_decision"] = {k: v for k, v in raw.items() if isinstance(v, float)}
    metrics.update(decision.metrics_sections())
    metrics["select"] = {"metric": recipe.train.select.metric,
                         "mode": recipe.train.select.direction, **result.best}
    if teacher is not None:
        metrics["distillation"] = teacher.summary(task, targets, scored.predictions, metrics)
    metrics["warnings"] = task.degenerate_reasons(
        targets, probs, scored.predictions, recipe.train.select.metric) + decision.warnings
    metrics["train_seconds"] = result.train_seconds
    metrics["train_samples_per_second"] = result.train_samples_per_second
    dynamics = _dynamics_with_texts(prepared, result)
    valid_frame = prediction_frame(prepared.valid, probs, task, decision)
    valid_frame.insert(1, "text", [str(t) for t in prepared.valid.texts])
    writer.write_record(run, writer.RunRecord(
        recipe=recipe, classifier=result.classifier, classes=prepared.class_names,
        train_counts=task.class_counts(train_targets),
        decision=decision, metrics=metrics, valid_predictions=valid_frame,
        valid_probs=probs, valid_targets=targets,
        data_fingerprint=data_fingerprint(recipe.data, prepared.valid, prepared.class_names),
        history=pd.DataFrame(result.history), dynamics=dynamics))
    return metrics


def _save_refit_outputs(run: RunDir, recipe: Recipe, prepared: PreparedData,
                        result: FitResult, info: dict[str, Any]) -> None:
    """A refit run's record: the model trained on every labelled row, with the decision and
    the expected score of the run that chose its schedule (`refit.json`); it has no
    validation rows of its own, so its validation files hold none."""
    if info.get("classes") != prepared.class_names:
        raise RunError(f"{run.path}: the refit's classes {prepared.class_names} differ from "
                       f"those its decision was fitted for ({info.get('classes')}); the data "
                       f"changed since: rerun `fitclass train ... --refit` with --overwrite")
    task = make_task(recipe.task, prepared.class_names)
    decision = Decision.from_dict(info["decision"])
    metrics = {**info["expected"], "refit": {**info.get("refit", {}),
                                             "train_rows": len(prepared.train),
                                             "validation_rows": 0}}
    metrics["select"] = {"metric": recipe.train.select.metric,
                         "mode": recipe.train.select.direction, **result.best}
    metrics["train_seconds"] = result.train_seconds
    metrics["train_samples_per_second"] = result.train_samples_per_second
    no_probs = np.zeros((0, len(prepared.class_names)))
    valid_frame = prediction_frame(prepared.valid, no_probs, task, decision)
    valid_frame.insert(1, "text", [])
    train_targets = prepared.train.targets(prepared.class_names)
    writer.write_record(run, writer.RunRecord(
        recipe=recipe, classifier=result.classifier, classes=prepared.class_names,
        train_counts=task.class_counts(train_targets), decision=decision, metrics=metrics,
        valid_predictions=valid_frame, valid_probs=no_probs,
        valid_targets=prepared.valid.targets(prepared.class_names),
        data_fingerprint=data_fingerprint(recipe.data, prepared.valid, prepared.class_names),
        history=pd.DataFrame(result.history), dynamics=_dynamics_with_texts(prepared, result)))


def _dynamics_with_texts(prepared: PreparedData, result: FitResult) -> pd.DataFrame | None:
    if result.dynamics is None:
        return None
    texts = dict(zip(prepared.train.ids, map(str, prepared.train.texts), strict=False))
    return result.dynamics.assign(text=[texts.get(str(i), "") for i in result.dynamics["id"]])


def _refit_info(run: RunDir, recipe: Recipe) -> dict[str, Any] | None:
    """A refit run's `refit.json`; a recipe that trains on every row without one is refused
    (nothing would give it a decision or a score)."""
    info = read_refit_info(run)
    if info is None and recipe.data.split.refit:
        raise RecipeError("data.split.refit trains on every labelled row and leaves none to "
                          "fit a decision on or to measure the model with; train with "
                          "`fitclass train RECIPE --refit` (after --folds K or a validation "
                          "run, which give it both) instead of setting the key by hand")
    return info


def _apply_noise_action(run: RunDir, recipe: Recipe, prepared: PreparedData,
                       reporter: Reporter) -> None:
    """Drop or relabel audit suspects in train (and in validation rows split from train)."""
    kind = KINDS[recipe.task]
    prepared.train, changes = apply_noise_action(prepared.train, recipe.noise, kind)
    if len(prepared.valid) and (recipe.data.valid is None or recipe.data.split.all_labelled):
        prepared.valid, valid_changes = apply_noise_action(prepared.valid, recipe.noise, kind)
        changes = pd.concat([changes, valid_changes.assign(split="valid")], ignore_index=True)
    written = writer.write_noise_changes(run, changes)
    reporter.log(f"noise.action {recipe.noise.action}: {len(changes)} rows changed "
                 f"(score >= {recipe.noise.min_score}); see {written}")


def _process_state() -> Any:
    """accelerate's process state, created the way the training loop creates it."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    return bool(_process_state().is_main_process)


def process_count() -> int:
    return int(_process_state().num_processes)


def _open_run(recipe_source: Any, overrides: list[str] | None, out: str | Path | None,
              overwrite: bool, resume: str | Path | None,
              refit_info: dict[str, Any] | None = None
              ) -> tuple[Recipe, RunDir, dict[str, Any]]:
    """The recipe and the run folder, locked by this process, with the details status.json
    records about how the run was opened."""
    if resume is not None:
        return _open_resumed(Path(resume), overrides)
    recipe = load_recipe(recipe_source, overrides)
    path = Path(out) if out else default_run_path(recipe)
    if not is_main_process():
        # Under DDP (`accelerate launch`, `torchrun`) every process trains; only the main
        # process writes the real run directory, the others a private scratch folder.
        path = Path(tempfile.mkdtemp(prefix="fitclass-rank-")) / "run"
    # a distillation's cached teacher probabilities outlive --overwrite (they are keyed)
    keep = (TEACHER_PROBS,) if recipe.distil is not None else ()
    run = RunDir.create(path, overwrite=overwrite, keep=keep)
    try:
        writer.write_recipe(run, recipe)
        if refit_info is not None:
            writer.write_refit_info(run, refit_info)
    except BaseException:
        run.release()
        raise
    return recipe, run, {"resumed": False}


def _open_resumed(path: Path, overrides: list[str] | None
                  ) -> tuple[Recipe, RunDir, dict[str, Any]]:
    if process_count() > 1:
        raise RunError("--resume restores single-process runs; resume without "
                       "accelerate launch / torchrun, or start the run again")
    run = RunDir(path)
    status = run.status()  # `running` only while a live process holds the lock
    if status is None:
        raise not_a_run(run.path)
    if status == "finished":
        raise RunError(f"{run.path}: this run already finished; nothing to resume")
    run.acquire()  # refuses, naming the process, while another run holds the folder
    try:
        if stored_recipe(run).self_training:
            raise RunError(f"{run.path}: self-training runs cannot resume mid-round; rerun "
                           f"the recipe with --overwrite")
        recipe, history = resume_recipe(run, overrides)
    except BaseException:
        run.release()
        raise
    return recipe, run, {"resumed": True, "resumes": history}


def train(
    recipe: str | Path | dict[str, Any] | Recipe,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    reporter: Reporter | None = None,
    callbacks: Sequence[Callback] = (),
    refit_info: dict[str, Any] | None = None,
) -> Run:
    """Train one run from a recipe (path, dict or `Recipe`); return the finished `Run`.

    `resume` continues an interrupted run directory from its last checkpoint instead. The
    run folder is locked for as long as this call trains into it. `callbacks`
    (`fitclass.training.callbacks.Callback`) hear the training loop's named hooks.
    `refit_info` (written by `fitclass train --refit`, `crossval/refit.py`) is the decision
    and expected score of a run that trains on every labelled row (`data.split.refit`).
    `fitclass.train` (`crossval/workflow.py`) adds --folds, --refit and --seeds on top.
    """
    recipe_obj, run, opened = _open_run(recipe, overrides, out, overwrite, resume,
                                        refit_info)
    try:
        reporter = reporter or Reporter()
        reporter.enabled = reporter.enabled and is_main_process()  # under DDP rank 0 prints
        if run.replaced is not None:
            how = "--overwrite" if overwrite else "it had no checkpoint to continue from"
            reporter.log(f"replaced the {run.replaced} run in {run.path} ({how})")
        return _train_locked(run, recipe_obj, opened, reporter, list(callbacks))
    finally:
        # a failed or interrupted fit may leave a checkpoint write in flight: it lands
        # before the folder is unlocked, so nothing reads it half-written
        problem = checkpoint_writes.settle()
        if problem is not None:
            Reporter().log(f"warning: {problem}")
        run.release()


def _train_locked(run: RunDir, recipe_obj: Recipe, opened: dict[str, Any],
                  reporter: Reporter, callbacks: list[Callback]) -> Run:
    resumed = bool(opened["resumed"])
    run.set_status("running", **opened)
    started = time.perf_counter()
    trackers = start_trackers(run.path, recipe_obj)
    reporter.listeners.extend(_metric_listener(t) for t in trackers)
    try:
        writer.write_environment(run, recipe_obj.train.seed, recipe_obj.train.precision)
        refit_info = _refit_info(run, recipe_obj)
        backbone = get_backbone(recipe_obj.model)
        images = recipe_obj.data.images is not None  # the checks' scan fills the image cache
        prepared = prepare_data(recipe_obj.data, backbone.pixel_side() if images else None)
        if recipe_obj.noise.action != "none":
            _apply_noise_action(run, recipe_obj, prepared, reporter)
        _record_checks(prepared, backbone, recipe_obj, reporter)
        if recipe_obj.imbalance.minority_augment is not None:
            prepared.train, added = augment_minority(prepared.train, prepared.class_names,
                                                     recipe_obj.imbalance.minority_augment)
            prepared.report.augmented_rows = added
            reporter.log(f"minority augmentation (AEDA) added training rows: {added}")
        writer.write_data_checks(run, prepared.report.to_dict())
        teacher, fit_train, teacher_targets = None, prepared.train, None
        if recipe_obj.distil is not None:  # the teacher's probabilities join the rows
            teacher = load_teacher(run, recipe_obj, prepared, reporter)
            fit_train, teacher_targets = teacher.fit_rows(prepared.train)
        context = FitContext(recipe=recipe_obj, task=make_task(recipe_obj.task,
                                                               prepared.class_names),
                             train=fit_train, valid=prepared.valid, run=run,
                             reporter=reporter, resume=resumed, trainer=fit_neural,
                             callbacks=callbacks, teacher=teacher_targets)
        if recipe_obj.self_training is not None:
            result, rounds = self_train(backbone, context, recipe_obj.self_training)
            writer.write_self_training(run, rounds)
        else:
            result = backbone.fit(context)
        writer.record_batching(run, result.batching)
        if refit_info is not None:
            _save_refit_outputs(run, recipe_obj, prepared, result, refit_info)
        else:
            _save_outputs(run, recipe_obj, prepared, result, teacher)
    except KeyboardInterrupt:
        run.set_status("interrupted")
        _finish_trackers(trackers, "interrupted")
        raise
    except Pruned as stopped:
        run.set_status("pruned", reason=str(stopped))
        _finish_trackers(trackers, "pruned")
        raise
    except BaseException as error:
        run.set_status("failed", error=f"{type(error).__name__}: {error}")
        _finish_trackers(trackers, "failed")
        raise
    writer.drop_checkpoints(run)
    run.set_status("finished", wall_seconds=round(time.perf_counter() - started, 2))
    if not is_main_process():  # the scratch copy of a non-main DDP process: drop the weights
        shutil.rmtree(run.model_dir, ignore_errors=True)
        return Run(run.path)
    final = scalars({f"final/{k}": v for k, v in read_metrics(run).items()})
    report = write_report_safely(run.path, reporter)
    for tracker in trackers:
        tracker.log_metrics(final, step=len(result.history))
        if report is not None:
            tracker.log_artifact(report)
    _finish_trackers(trackers, "finished")
    return Run(run.path)


def _metric_listener(tracker: Tracker) -> Callable[[dict[str, Any]], None]:
    """Forward every evaluation's scalars to a tracker, stepped by optimiser step."""
    return lambda row: tracker.log_metrics(scalars(row), int(row.get("step", 0)))


def _finish_trackers(trackers: list[Tracker], status: str) -> None:
    for tracker in trackers:
        tracker.finish(status)


def write_report_safely(path: Path, reporter: Reporter) -> Path | None:
    """The report is a view of a finished run: failing to draw it must not fail the run.
    Returns the report's path, None when it could not be written."""
    from fitclass.report.build import write_report

    try:
        return write_report(path)
    except Exception as error:
        reporter.log(f"warning: the report could not be written ({type(error).__name__}: "
                     f"{error}); retry with `fitclass report {path}`")
        return None
