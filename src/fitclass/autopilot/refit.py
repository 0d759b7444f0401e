"""`--preset best`'s refit: each chosen trial's recipe is cross-validated and retrained on
every labelled row (train and validation) by `fitclass.train(recipe, folds=K, refit=True)`,
the cross-validation and refit machinery of `fitclass train --folds K --refit`, into
`trials/<trial>-cv` (the refit in `trials/<trial>-cv/refit`).

OUT is then built from the cross-validation runs, whose held-out rows are the out-of-fold
rows of every labelled row: one member is its refit, copied (its decision fitted on the raw
out-of-fold probabilities, its expected score the cross-validation's); several are
ensembled over the cross-validation runs (combiners and the decision fitted on out-of-fold
probabilities) and the ensemble's members are then re-pointed to their refits
(`ensembling.repoint_members`). The swap is sound because a refit carries its
cross-validation run's decision: a member's calibrated probabilities come from the same
decision, applied to one model trained on every row instead of the mean of K fold models.

Rerunning the same command after a kill continues: `fitclass.train(folds=K, refit=True)`
keeps finished fold runs and a finished refit, continues an interrupted one from its
checkpoint and trains again one with nothing to continue (a folder only ever becomes a
member when its `status.json` says finished, which is written last).

A refit is skipped, and auto.md says why, when the time left cannot fit it (the workflow
asks `budget.members_that_fit`) or a chosen recipe cannot be refit (co-teaching and weight
averaging choose among models on validation rows, which a refit has none of).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fitclass.autopilot.budget import REFIT_FOLDS
from fitclass.autopilot.folder import crossval_dir
from fitclass.crossval.refit import check_refit
from fitclass.crossval.workflow import train
from fitclass.ensembling import repoint_members
from fitclass.errors import FitclassError
from fitclass.runs.run import load_run
from fitclass.training.progress import Reporter


@dataclass(frozen=True)
class RefitPlan:
    """Whether the preset refits, and why not when it wanted to but the time left or the
    recipes said no."""

    wanted: bool
    skipped: str | None = None


def refit_members(chosen: list[Path], plan: RefitPlan, reporter: Reporter) -> dict[str, Any]:
    """Cross-validate and refit each chosen trial; what was done (or why not) for
    auto.json and auto.md."""
    done: dict[str, Any] = {"done": False, "folds": REFIT_FOLDS, "crossval": [],
                            "refits": [], "skipped": plan.skipped}
    if plan.skipped:
        return done
    recipes = [load_run(trial).recipe for trial in chosen]
    try:
        for recipe in recipes:
            check_refit(recipe)
    except FitclassError as error:
        done["skipped"] = f"a chosen trial cannot be refit ({error})"
        return done
    try:
        for trial, recipe in zip(chosen, recipes, strict=True):
            reporter.log(f"refit: {trial.name}: {REFIT_FOLDS}-fold cross-validation, then "
                         f"one model on every labelled row")
            refit = train(recipe, folds=REFIT_FOLDS, refit=True, out=crossval_dir(trial),
                          reporter=Reporter(enabled=False))
            done["crossval"].append(str(crossval_dir(trial)))
            done["refits"].append(str(refit.path))
    except FitclassError as error:  # e.g. a class with fewer rows than folds
        done["skipped"] = f"the cross-validation of {trial.name} failed ({error})"
        return done
    done["done"] = True
    return done


def swap_in_refits(out: Path, done: dict[str, Any]) -> None:
    """Point OUT's ensemble members (the cross-validation runs) at their refits."""
    repoint_members(out, dict(zip(done["crossval"], done["refits"], strict=True)))
