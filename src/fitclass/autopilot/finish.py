"""`fitclass auto`'s finish: the best trials become OUT's own run.

With two or more finished trials the best `TOP_MEMBERS[preset]` are ensembled
(`fitclass.ensemble`: combiners cross-fitted on the shared validation rows, the chosen one
refitted on all of them, the decision refitted on the ensemble's probabilities as the best
member's recipe says, e.g. `decision.optimize: macro_f1`); with one, that run is copied. The
run is written into a hidden staging folder inside OUT and then moved into OUT entry by
entry, so OUT is a normal run (predict, evaluate, report, export) beside `trials/` and
`auto.md`. No refit on every labelled row: the members keep their validation rows, which
the decision and the reported intervals need (docs/architecture.md).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.ensembling import ensemble
from fitclass.errors import FitclassError
from fitclass.models.base import MODEL_INFO
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import LOCK, MODEL, RUN, is_run
from fitclass.runs.readers import has_metrics
from fitclass.runs.run import Run, load_run
from fitclass.sweep import leaderboard

STAGING = ".auto-final"


class NothingFinished(FitclassError):
    """No trial finished: there is nothing to ensemble or copy."""


def ranked(study: Any) -> pd.DataFrame:
    """The study's trials, finished ones first, best first (sweep's leaderboard rows)."""
    board = leaderboard(study)
    if not len(board):
        return board
    board["backbone"] = [p if isinstance(p, str) else None
                         for p in board.get("param:model.backbone", [None] * len(board))]
    complete = board[board["status"] == "complete"].sort_values("metric", ascending=False)
    return pd.concat([complete, board.drop(complete.index)])


def members(board: pd.DataFrame, top: int) -> list[Path]:
    """The best `top` finished trials whose run folders hold metrics."""
    found = []
    for row in board[board["status"] == "complete"].itertuples():
        path = Path(str(row.run_dir)) if isinstance(row.run_dir, str) else None
        if path is not None and is_run(path) and has_metrics(RunDir(path)):
            found.append(path)
        if len(found) == top:
            break
    return found


def _retarget_members(model_dir: Path, out: Path) -> None:
    """The ensemble's member paths relative to OUT (where the model ends up), not to the
    staging folder it was written in, so OUT and its trials can move together."""
    path = model_dir / MODEL_INFO
    info = json.loads(path.read_text(encoding="utf-8"))
    for member in info.get("members", []):
        member["relative"] = os.path.relpath(member["absolute"], out)
    atomic_write_text(path, json.dumps(info, indent=2, ensure_ascii=False))


def _move_into(staging: Path, out: Path) -> None:
    """Replace OUT's run entries (an earlier call's finish) with the staged run's."""
    for entry in out.iterdir():
        if entry.name in RUN.names and entry.name not in (LOCK, "trials"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for entry in staging.iterdir():
        os.replace(entry, out / entry.name)
    staging.rmdir()


def build_final(board: pd.DataFrame, out: Path, top: int, metric: str) -> dict[str, Any]:
    """Write OUT's run from the best trials; return what was chosen."""
    chosen = members(board, top)
    if not chosen:
        raise NothingFinished(f"{out}: no trial finished within the budget, so there is no "
                              f"model; {out / 'auto.md'} lists the trials and their errors; "
                              f"rerun with a larger --time")
    staging = out / STAGING
    if staging.exists():  # an earlier call died mid-finish: it is ours to redo
        shutil.rmtree(staging)
    if len(chosen) >= 2:
        ensemble(chosen, staging, metric=metric)
        _retarget_members(staging / MODEL, out)
        kind = "ensemble"
    else:
        shutil.copytree(chosen[0], staging, ignore=shutil.ignore_patterns(LOCK))
        kind = "best trial"
    _move_into(staging, out)
    return {"kind": kind, "members": [str(p) for p in chosen]}


def final_run(out: Path) -> Run:
    return load_run(out)
