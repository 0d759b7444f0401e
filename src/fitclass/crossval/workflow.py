"""`fitclass.train`: one run (`fitclass.api.train`), several seeds, K-fold cross-validation
(`folds=K`) and refits on every labelled row (`refit=True`).

Folder layout (`OUT` is `--out`):

- `--folds K`: `OUT` is a run, the mean of its fold runs `OUT/fold-<k>` (with `--seeds N`,
  `OUT/fold-<k>-seed-<s>`), plus `oof.csv`, `oof_probs.safetensors` and `cv.json`.
- `--refit`: `OUT` is the run that chooses the schedule (the cross-validation, or without
  --folds one run with a validation split) and `OUT/refit` the model trained on every
  labelled row; the call returns (and the CLI prints) the refit.

Rerunning the same command continues where it stopped: finished runs are kept, interrupted
ones continue from their checkpoints, the rest train. `--resume OUT` does the same for a
cross-validation run, with the settings it was started with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fitclass import api
from fitclass.api import process_count
from fitclass.api import train as train_run
from fitclass.crossval import members as fold_runs
from fitclass.crossval import refit as refits
from fitclass.crossval.record import write_cv_run
from fitclass.crossval.scores import gather
from fitclass.data.folds import check_fold_count, fold_method
from fitclass.data.prepare import labelled_folds
from fitclass.ensembling import refuse_identical_seeds, train_seeds
from fitclass.errors import FitclassError, RecipeError, RunError
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs import readers, writer
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import is_run
from fitclass.runs.resume import stored_recipe
from fitclass.runs.run import Run
from fitclass.target_kinds import kind_for
from fitclass.training.callbacks import Callback
from fitclass.training.progress import Reporter

OVERWRITE_FIX = ("rerun with --overwrite to start the cross-validation again, or use "
                 "another --out")


def train(
    recipe: str | Path | dict[str, Any] | Recipe,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    reporter: Reporter | None = None,
    callbacks: Sequence[Callback] = (),
    folds: int | None = None,
    refit: bool = False,
    seeds: int = 1,
) -> Run:
    """Train a classifier from a recipe (path, dict or `Recipe`); return the finished `Run`.

    `resume` continues an interrupted run directory (a cross-validation with its folds).
    `callbacks` (`fitclass.training.callbacks.Callback`) hear the training loop's hooks.
    `folds=K` cross-validates: K fold runs under `out`, which becomes their mean, with
    out-of-fold predictions and scores over folds. `refit=True` then trains one model on
    every labelled row into `out/refit` and returns it. `seeds=N` trains N seeds (per fold
    with `folds`; without, `train_seeds`)."""
    reporter = reporter or Reporter()
    crossval = _resumed_crossval(resume, folds, seeds, overrides)
    if crossval is not None:
        folds, seeds = int(crossval["folds"]), int(crossval["seeds"])
        refit = refit or bool(crossval.get("refit"))
        assert resume is not None
        base = stored_recipe(RunDir(resume))
        out = resume
    elif folds is None and not refit:
        if seeds > 1:
            if out is None:
                raise FitclassError("--seeds needs --out DIR (members go to DIR/seed-<s>, "
                                    "the ensemble to DIR/ensemble)")
            return train_seeds(recipe, seeds, out, overrides=overrides, reporter=reporter)
        return train_run(recipe, overrides=overrides, out=out, overwrite=overwrite,
                         resume=resume, reporter=reporter, callbacks=callbacks)
    else:
        base = (stored_recipe(RunDir(resume)) if resume is not None
                else load_recipe(recipe, overrides))
        out = resume if resume is not None else out
    if out is None:
        raise FitclassError("--folds and --refit need --out DIR (the fold runs, the refit and "
                            "the cross-validation run itself go there)")
    _check_settings(base, folds, seeds, refit)
    if folds is None:
        valid_run = _validation_run(base, Path(out), overwrite, resume is not None, reporter,
                                    callbacks)
        return refits.from_validation(valid_run, base, reporter, callbacks)
    cv_run = cross_validate(base, Path(out), folds, seeds, refit, overwrite, reporter,
                            callbacks)
    return refits.from_crossval(cv_run, base, reporter, callbacks) if refit else cv_run


def _resumed_crossval(resume: str | Path | None, folds: int | None, seeds: int,
                      overrides: list[str] | None) -> dict[str, Any] | None:
    """The settings of the cross-validation `--resume` names (None when it names another
    run), refusing --folds with a run that is not one, or with another K."""
    if resume is None:
        return None
    run = RunDir(resume)
    crossval = run.crossval() if is_run(run.path) else None
    if crossval is None:
        if folds is not None:
            raise RunError(f"--resume {resume} --folds {folds}: {resume} is not a cross-"
                           f"validation run (it was trained without --folds); resume it "
                           f"without --folds, or cross-validate into a new --out")
        return None
    if folds is not None and folds != crossval.get("folds"):
        raise RunError(f"--resume {resume}: it is a {crossval.get('folds')}-fold cross-"
                       f"validation; drop --folds {folds} (or pass --folds "
                       f"{crossval.get('folds')})")
    if seeds != 1 and seeds != crossval.get("seeds"):
        raise RunError(f"--resume {resume}: it trains {crossval.get('seeds')} seeds per fold; "
                       f"drop --seeds {seeds}")
    if overrides:
        raise RunError(f"--resume {resume} with --set: a cross-validation resumes each fold "
                       f"with its stored recipe; resume without --set, or start again with "
                       f"--overwrite")
    return crossval


def _check_settings(base: Recipe, folds: int | None, seeds: int, refit: bool) -> None:
    """Everything refused before any training starts."""
    if folds is not None:
        check_fold_count(folds)
    if base.distil is not None:
        raise RecipeError(f"--{'folds' if folds is not None else 'refit'} with a distil "
                          f"section: a distillation keeps validation rows to measure the "
                          f"student and its agreement with the teacher, so it takes no "
                          f"data.split.folds/refit; train the student without --folds and "
                          f"--refit (a cross-validation run can be the teacher)")
    if process_count() > 1:
        raise FitclassError("--folds and --refit train their runs one after another in one "
                            "process; run them without accelerate launch / torchrun")
    if seeds > 1:
        if folds is None:
            raise FitclassError(f"--seeds {seeds} --refit: without --folds the refit's "
                                f"schedule comes from one validation run; add --folds K "
                                f"(N runs per fold choose it), or drop --seeds")
        refuse_identical_seeds(base, seeds)
    if refit:
        refits.check_refit(base)
    if folds is not None and base.noise.action != "none":
        raise FitclassError(f"--folds with noise.action {base.noise.action}: the action "
                            f"changes which rows each fold run trains and validates on, so "
                            f"their out-of-fold rows would not line up; apply the audit's "
                            f"suspects to the data file first, or train without --folds")


def _validation_run(base: Recipe, out: Path, overwrite: bool, resuming: bool,
                    reporter: Reporter, callbacks: Sequence[Callback]) -> Run:
    """The run with a validation split that chooses a refit's schedule (at OUT): kept when
    finished with this recipe, continued from its checkpoint, else trained."""
    run = RunDir(out)
    status = run.status() if is_run(out) and not overwrite else None
    if status is not None:
        crossval = run.crossval()
        if crossval is not None:
            raise RunError(f"{out} is a cross-validation run; refit it with --folds "
                           f"{crossval.get('folds')} --refit (or --resume {out} --refit)")
        fold_runs.check_same_recipe(run, base, "rerun with --overwrite to train it and the "
                                               "refit again, or use another --out")
    if status == "finished":
        reporter.log(f"refit: the validation run {out} finished earlier; kept")
        return Run(out)
    resumable = status is not None and (status == "running" or run.has_checkpoint())
    if resuming and status is None:
        raise RunError(f"--resume {out}: nothing to resume there")
    return train_run(base, out=out, overwrite=overwrite, resume=out if resumable else None,
                     reporter=reporter, callbacks=callbacks)


def cross_validate(base: Recipe, out: Path, folds: int, seeds: int, refit: bool,
                   overwrite: bool, reporter: Reporter,
                   callbacks: Sequence[Callback]) -> Run:
    """Train (or keep, or continue) the fold runs and write OUT as their mean."""
    settings = {"folds": folds, "seeds": seeds, "refit": refit}
    split = base.data.split.model_copy(update={"folds": folds, "fold": 0, "refit": False})
    rows, class_names, assigned = labelled_folds(base.data.model_copy(update={"split": split}))
    run, finished = _open(base, out, settings, overwrite)
    if finished:
        reporter.log(f"cv: {out} finished earlier; kept")
        return Run(out)
    started = time.perf_counter()
    try:
        plan = fold_runs.plan(base, out, folds, seeds)
        for member in plan:
            fold_runs.ensure(member, fold_runs.member_recipe(base, member, folds),
                             OVERWRITE_FIX, reporter, callbacks)
        by_fold: dict[int, list[Run]] = {}
        for member in plan:
            by_fold.setdefault(member.fold, []).append(Run(member.path))
        oof = gather(rows, class_names, assigned, by_fold)
        write_cv_run(run, base, oof, by_fold,
                     fold_method(kind_for(base.data.multilabel), base.data.split))
        run.set_status("finished", wall_seconds=round(time.perf_counter() - started, 2))
    except KeyboardInterrupt:
        run.set_status("interrupted")
        raise
    except BaseException as error:
        run.set_status("failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        run.release()
    api.write_report_safely(run.path, reporter)
    return Run(out)


def _open(base: Recipe, out: Path, settings: dict[str, Any],
          overwrite: bool) -> tuple[RunDir, bool]:
    """OUT as a cross-validation run folder, locked (unless it finished earlier, True):
    created (or replaced with --overwrite), or continued when it is this cross-validation."""
    run = RunDir(out)
    if overwrite or not is_run(out):
        run = RunDir.create(out, overwrite=overwrite, details={"crossval": settings})
        try:
            writer.write_start(run, base)
        except BaseException:
            run.release()
            raise
        return run, False
    crossval = run.crossval()
    if crossval is None:
        raise RunError(f"{out}: a run trained without --folds is here; choose another --out, "
                       f"or pass --overwrite to replace it")
    if (crossval.get("folds"), crossval.get("seeds")) != (settings["folds"], settings["seeds"]):
        raise RunError(f"{out}: a cross-validation with --folds {crossval.get('folds')} "
                       f"--seeds {crossval.get('seeds')} is here; {OVERWRITE_FIX}")
    fold_runs.check_same_recipe(run, base, OVERWRITE_FIX)
    if run.status() == "finished":
        return run, True
    run.acquire()  # refuses, naming the process, while another process holds it
    try:
        run.set_status("running", crossval=settings | {"refit": settings["refit"]
                                                       or bool(crossval.get("refit"))})
        if not readers.has_recipe(run):  # killed between its creation and its recipe
            writer.write_start(run, base)
    except BaseException:
        run.release()
        raise
    return run, False
