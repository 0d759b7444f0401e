"""`--refit`: one model retrained on every labelled row (train and validation files) once the
schedule is chosen, at `<source>/refit`.

The schedule: the epoch of the best checkpoint of the run that validated (with --folds, the
median over all fold runs), rounded up to whole epochs, as `train.epochs` (a recipe with
`train.stages` is cut to that many epochs); the epoch count is kept, so the refit takes more
steps on its larger data, and its learning-rate schedule spans those epochs. No early
stopping: nothing is held out to stop on.

The decision: with --folds, the cross-validation run's, fitted (`Task.fit_decision`, so
every decision the recipe asks for) on the raw out-of-fold probabilities of every labelled
row, the kind of probabilities a single model outputs; without, the validation run's. The
refit has no validation rows: its `metrics.json` carries the score it is expected to have
(the cross-validation's, or the validation run's) under `refit`, and `refit.json` says
where the schedule, decision and expected score came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fitclass.api import train as train_run
from fitclass.crossval.members import check_same_recipe
from fitclass.crossval.scores import best_epoch, median_epochs
from fitclass.decide.decision import Decision
from fitclass.errors import RecipeError
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import REFIT
from fitclass.runs.run import Run
from fitclass.training.callbacks import Callback
from fitclass.training.progress import Reporter


def check_refit(recipe: Recipe) -> None:
    """Refuse what needs validation rows during training (a refit has none)."""
    chosen = {"averaging (swa, ema, soup)": recipe.averaging.active,
              "noise.coteaching": recipe.noise.coteaching is not None,
              "self_training": recipe.self_training is not None}
    for key, used in chosen.items():
        if used:
            raise RecipeError(f"--refit: {key} chooses among models on validation rows, and a "
                              f"refit trains on every labelled row with none held out; remove "
                              f"{key.split(' ')[0]} from the recipe, or drop --refit and use "
                              f"the cross-validation run (--folds) or the validation run")


def refit_recipe(base: Recipe, epochs: int) -> Recipe:
    """The user's recipe on every labelled row for `epochs` epochs, without early stopping."""
    raw = base.to_dict()
    raw["data"]["split"] = {**{k: v for k, v in raw["data"]["split"].items()
                               if k not in ("folds", "fold")}, "refit": True}
    train = raw["train"]
    train["early_stopping"] = None
    if train.get("stages"):
        train["stages"] = _cut_stages(train["stages"], epochs)
    else:
        train["epochs"] = epochs
    if base.name:
        raw["name"] = f"{base.name}-refit"
    return load_recipe(raw)


def _cut_stages(stages: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """The first `epochs` epochs of the stages (the last one kept shortened)."""
    kept, left = [], epochs
    for stage in stages:
        if left <= 0:
            break
        kept.append({**stage, "epochs": min(int(stage["epochs"]), left)})
        left -= kept[-1]["epochs"]
    return kept


def from_crossval(cv_run: Run, base: Recipe, reporter: Reporter,
                  callbacks: Sequence[Callback]) -> Run:
    """Refit after a cross-validation: the median best epoch over its fold runs, the decision
    fitted on its raw out-of-fold probabilities, its scores as the expected score."""
    scores = readers.read_cv(cv_run.dir) or {}
    epochs = [float(e) for e in scores.get("best_epochs", [])] or [
        float(base.train.total_epochs)]
    k, rows = scores.get("k"), scores.get("rows")
    origin = {
        "from": str(cv_run.path),
        "schedule_from": f"median best epoch of the {len(epochs)} fold runs {epochs}",
        "decision_from": f"the raw out-of-fold probabilities of all {rows} labelled rows "
                         f"({k}-fold cross-validation)",
        "expected_from": f"{k}-fold cross-validation (out-of-fold scores; `cv`: mean over "
                         f"folds with its 95% interval)"}
    return _refit(cv_run, base, median_epochs(epochs), cv_run.decision, origin, reporter,
                  callbacks)


def from_validation(valid_run: Run, base: Recipe, reporter: Reporter,
                    callbacks: Sequence[Callback]) -> Run:
    """Refit after one run with a validation split: its best epoch and its decision, its
    validation scores as the expected score."""
    epoch = best_epoch(valid_run)
    origin = {
        "from": str(valid_run.path),
        "schedule_from": f"the best epoch ({epoch}) of the validation run",
        "decision_from": f"the validation run's decision (fitted on its "
                         f"{valid_run.metrics.get('n')} validation rows)",
        "expected_from": "the validation run's validation scores (one split)"}
    return _refit(valid_run, base, median_epochs([epoch]), valid_run.decision, origin,
                  reporter, callbacks)


def _refit(source: Run, base: Recipe, epochs: int, decision: Decision,
           origin: dict[str, Any], reporter: Reporter, callbacks: Sequence[Callback]) -> Run:
    """Train (or keep, or continue) `<source>/refit`."""
    recipe = refit_recipe(base, epochs)
    expected = {k: v for k, v in source.metrics.items()
                if k not in ("ensemble", "select", "train_seconds", "train_samples_per_second")}
    expected["calibration"] = decision.report  # the refit's own decision's
    info = {"classes": source.class_names, "decision": decision.to_dict(),
            "expected": expected,
            "refit": {**origin, "epochs": epochs,
                      "note": "no validation split of its own: the scores are the expected "
                              "score, measured on " + origin["expected_from"]}}
    path = source.path / REFIT
    run = RunDir(path)
    status = run.status()
    fix = ("rerun with --overwrite to train the cross-validation or validation run and the "
           "refit again, or use another --out")
    if status is not None:
        check_same_recipe(run, recipe, fix)
    if status == "finished":
        reporter.log(f"refit: {path} finished earlier; kept")
        return Run(path)
    resumable = status is not None and (status == "running" or run.has_checkpoint())
    reporter.log(f"refit: {'continuing' if resumable else 'training'} one model on every "
                 f"labelled row for {epochs} epochs ({origin['schedule_from']}) in {path}")
    return train_run(recipe, out=path, resume=path if resumable else None,
                     refit_info=None if resumable else info, reporter=reporter,
                     callbacks=callbacks)
