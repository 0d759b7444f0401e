"""The fold runs of a cross-validation: one normal run per fold (and seed) under OUT, with
the user's recipe plus `data.split.folds`/`fold` (and `train.seed`), so each reproduces from
its own folder and resumes like any run.

A rerun keeps a finished fold run, continues an interrupted one from its checkpoint and
trains the rest; a fold run made with another recipe is refused, never silently reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fitclass.api import train as train_run
from fitclass.errors import RunError
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import fold_run_name
from fitclass.runs.resume import changed_keys, resumable, stored_recipe
from fitclass.training.callbacks import Callback
from fitclass.training.progress import Reporter


@dataclass(frozen=True)
class Member:
    """One fold run: fold `fold` (0-based) trained with `train.seed` = `seed`, at `path`."""

    fold: int
    seed: int
    path: Path


def plan(base: Recipe, out: Path, folds: int, seeds: int) -> list[Member]:
    """Every fold run, fold by fold; seeds `train.seed`, +1, ... within a fold."""
    return [Member(fold, base.train.seed + offset,
                   out / fold_run_name(fold, base.train.seed + offset if seeds > 1 else None))
            for fold in range(folds) for offset in range(seeds)]


def member_recipe(base: Recipe, member: Member, folds: int) -> Recipe:
    """The user's recipe with the member's fold and seed."""
    raw = base.to_dict()
    raw["data"]["split"] = {**raw["data"]["split"], "folds": folds, "fold": member.fold}
    raw["train"]["seed"] = member.seed
    return load_recipe(raw)


def check_same_recipe(run: RunDir, expected: Recipe, fix: str) -> None:
    """Refuse to keep or continue a run whose stored recipe differs from `expected` in a
    key that changes what it trains (name, tracking, eval batch size and early stopping may
    differ, as on --resume)."""
    if not readers.has_recipe(run):
        return
    changed = {key: values for key, values in changed_keys(stored_recipe(run), expected).items()
               if not resumable(key)}
    if changed:
        listed = "; ".join(f"{key}: stored {old!r}, now {new!r}"
                           for key, (old, new) in list(changed.items())[:5])
        raise RunError(f"{run.path} was trained with another recipe ({listed}); {fix}")


def ensure(member: Member, recipe: Recipe, fix: str, reporter: Reporter,
           callbacks: Sequence[Callback]) -> None:
    """Keep the member's run when finished, continue it from its checkpoint when it has one,
    else train it (replacing an unfinished run with nothing to continue)."""
    run = RunDir(member.path)
    status = run.status()
    if status is not None:
        check_same_recipe(run, recipe, fix)
    if status == "finished":
        reporter.log(f"cv: {member.path.name} finished earlier; kept")
        return
    # `running` means a live process holds it: `train` refuses, naming the process
    resumable_run = status is not None and (status == "running" or run.has_checkpoint())
    reporter.log(f"cv: {'continuing' if resumable_run else 'training'} {member.path.name} "
                 f"(fold {member.fold}, seed {member.seed})")
    train_run(recipe, out=member.path, resume=member.path if resumable_run else None,
              reporter=reporter, callbacks=callbacks)
