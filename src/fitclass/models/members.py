"""The ensemble kind's saved member list: the runs an ensemble combines, each recorded by a
path relative to the ensemble's run folder and an absolute one. Light (no torch), so the run
layer can follow ensembles cheaply (`runs/members.py`, for `fitclass runs`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fitclass.errors import RunError
from fitclass.files import damaged

ENSEMBLE_KIND = "ensemble"


def checked_members(members: Any, path: Path) -> list[dict[str, str]]:
    """The saved member list: objects with string `relative` and `absolute` paths."""
    if (not isinstance(members, list) or not members
            or not all(isinstance(m, dict) and isinstance(m.get("relative"), str)
                       and isinstance(m.get("absolute"), str) for m in members)):
        raise damaged(path, "should list members as {relative, absolute} paths")
    return members


def resolve_member(model_dir: Path, member: dict[str, str],
                   is_run: Callable[[Path], bool]) -> Path:
    """A member's run folder: relative to the ensemble first (the pair can move together),
    then the absolute path recorded at build time; `is_run` (the run layer's) tells a run."""
    relative = (model_dir.parent / member["relative"]).resolve()
    if is_run(relative):
        return relative
    absolute = Path(member["absolute"])
    if is_run(absolute):
        return absolute.resolve()
    raise RunError(f"{model_dir}: ensemble member not found at {relative} or {absolute}; "
                   f"keep member runs next to the ensemble or at their original paths")
