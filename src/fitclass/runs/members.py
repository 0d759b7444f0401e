"""Where an ensemble run's member runs are, and whether following them ever comes back. The
member list's saved form is the ensemble kind's (`models/members.py`); following it from run
folder to run folder is the run record's. Kept apart from `models/ensemble.py` (which imports
torch through the training context) so that `fitclass runs` can check ensembles cheaply."""

from __future__ import annotations

from pathlib import Path

from fitclass.errors import RunError
from fitclass.files import read_json_object
from fitclass.models.base import MODEL_INFO
from fitclass.models.members import ENSEMBLE_KIND, checked_members, resolve_member
from fitclass.runs.layout import MODEL, is_run


def member_runs(run_path: Path) -> list[Path]:
    """The member run folders of the ensemble run at `run_path` ([] for any other run)."""
    model_dir = run_path / MODEL
    info_path = model_dir / MODEL_INFO
    if not info_path.is_file():
        return []
    info = read_json_object(info_path, {"kind": str})
    if info["kind"] != ENSEMBLE_KIND:
        return []
    return [resolve_member(model_dir, m, is_run)
            for m in checked_members(info.get("members"), info_path)]


def find_cycle(run_path: Path, trail: tuple[Path, ...] = ()) -> list[Path] | None:
    """A chain of ensembles that leads from `run_path` back into `trail` (or to itself),
    following members through nested ensembles; None when there is none."""
    here = run_path.resolve()
    if here in trail:
        return [*trail[trail.index(here):], here]
    for member in member_runs(here):
        cycle = find_cycle(member, (*trail, here))
        if cycle is not None:
            return cycle
    return None


def check_no_cycle(run_path: Path) -> None:
    """Refuse an ensemble that contains itself, directly or through other ensembles (it
    would recurse forever when predicting)."""
    cycle = find_cycle(run_path)
    if cycle is not None:
        raise RunError(f"ensemble cycle: {' -> '.join(map(str, cycle))}; an ensemble cannot "
                       f"be its own member. Rebuild it with `fitclass ensemble` from runs "
                       f"that do not contain it")
