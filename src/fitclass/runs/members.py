"""Where an ensemble run's member runs are, and whether following them ever comes back:
kept apart from `models/ensemble.py` (which imports torch through the training context) so
that `fitclass runs` can check ensembles cheaply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fitclass.errors import RunError
from fitclass.files import damaged, read_json_object
from fitclass.models.base import MODEL_INFO
from fitclass.runs.layout import MODEL, is_run

ENSEMBLE_KIND = "ensemble"


def resolve_member(model_dir: Path, member: dict[str, str]) -> Path:
    """A member's run folder: relative to the ensemble first (the pair can move together),
    then the absolute path recorded at build time."""
    relative = (model_dir.parent / member["relative"]).resolve()
    if is_run(relative):
        return relative
    absolute = Path(member["absolute"])
    if is_run(absolute):
        return absolute.resolve()
    raise RunError(f"{model_dir}: ensemble member not found at {relative} or {absolute}; "
                   f"keep member runs next to the ensemble or at their original paths")


def member_runs(run_path: Path) -> list[Path]:
    """The member run folders of the ensemble run at `run_path` ([] for any other run)."""
    model_dir = run_path / MODEL
    info_path = model_dir / MODEL_INFO
    if not info_path.is_file():
        return []
    info = read_json_object(info_path, {"kind": str})
    if info["kind"] != ENSEMBLE_KIND:
        return []
    return [resolve_member(model_dir, m) for m in checked_members(info.get("members"),
                                                                  info_path)]


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


def checked_members(members: Any, path: Path) -> list[dict[str, str]]:
    """The saved member list: objects with string `relative` and `absolute` paths."""
    if (not isinstance(members, list) or not members
            or not all(isinstance(m, dict) and isinstance(m.get("relative"), str)
                       and isinstance(m.get("absolute"), str) for m in members)):
        raise damaged(path, "should list members as {relative, absolute} paths")
    return members
