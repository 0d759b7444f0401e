"""`fitclass auto`'s finish: the best trials become OUT's own run, written in place.

The best trial leads unless a default recipe twin is within noise of it
(`autopilot/preference.py`).

With two or more chosen trials they are ensembled (`fitclass.ensemble` into OUT itself:
combiners cross-fitted on the members' shared held-out rows, the chosen one refitted on all
of them, the decision refitted on the ensemble's probabilities as the best member's recipe
says, e.g. `decision.optimize: macro_f1`); with one, that run is copied into OUT. OUT keeps
auto's own entries (`trials/`, `auto.json`, ...) beside the run: the run is created with
`RunDir.create(..., within=AUTO_DIR)`, which replaces an earlier finish's run entries only.
Every file is written atomically and `status.json` says `finished` last, so a finish killed
midway leaves a run that is not finished, and the next call writes it again.

Under `--preset best` the chosen trials are refitted first (`autopilot/refit.py`): OUT is
then built from their cross-validation runs (so combiners and decision are fitted on
out-of-fold probabilities of every labelled row) and predicts with their refits.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.autopilot.folder import AUTO_DIR, OLD_STAGING
from fitclass.autopilot.preference import Preference
from fitclass.autopilot.refit import RefitPlan, refit_members, swap_in_refits
from fitclass.ensembling import ensemble
from fitclass.errors import FitclassError
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import LOCK, REFIT, STATUS, is_run
from fitclass.runs.readers import has_metrics
from fitclass.runs.run import Run, load_run
from fitclass.sweep import leaderboard
from fitclass.training.progress import Reporter


class NothingFinished(FitclassError):
    """No trial finished: there is nothing to ensemble or copy."""


def ranked(trials: Sequence[Any]) -> pd.DataFrame:
    """A study's `trials`, finished ones first, best first (sweep's leaderboard rows)."""
    board = leaderboard(trials)
    if not len(board):
        return board
    board["backbone"] = [p if isinstance(p, str) else None
                         for p in board.get("param:model.backbone", [None] * len(board))]
    complete = board[board["status"] == "complete"].sort_values("metric", ascending=False)
    return pd.concat([complete, board.drop(complete.index)])


def members(board: pd.DataFrame, top: int, first: int | None = None) -> list[Path]:
    """The best `top` finished trials whose run folders hold metrics; trial number `first`
    (`autopilot/preference.py`) leads when given."""
    found = []
    complete = board[board["status"] == "complete"]
    leading = complete["trial"] == first
    for row in pd.concat([complete[leading], complete[~leading]]).itertuples():
        path = Path(str(row.run_dir)) if isinstance(row.run_dir, str) else None
        if path is not None and is_run(path) and has_metrics(RunDir(path)):
            found.append(path)
        if len(found) == top:
            break
    return found


def copy_run(source: Path, out: Path) -> None:
    """Copy the finished run `source` into OUT, entry by entry (each to a hidden name, then
    renamed into place), its status last."""
    run = RunDir.create(out, overwrite=True, within=AUTO_DIR)
    try:
        for entry in source.iterdir():
            if (entry.name in (LOCK, STATUS) or entry.name.startswith(".")
                    or not AUTO_DIR.writes(entry.name)):  # a lock, a status, a temporary
                continue
            staged = out / f".{entry.name}.copy"
            if entry.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
                shutil.copytree(entry, staged)
            else:
                shutil.copy2(entry, staged)
            os.replace(staged, out / entry.name)
        record = RunDir(source).status_record() or {}
        run.set_status("finished", **{k: v for k, v in record.items()
                                      if k not in ("status", "updated", "tool")},
                       copied_from=str(source))
    except BaseException as error:
        run.set_status("failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        run.release()


def build_final(board: pd.DataFrame, out: Path, top: int, metric: str,
                refit: RefitPlan | None = None, reporter: Reporter | None = None,
                preferred: Preference | None = None) -> dict[str, Any]:
    """Write OUT's run from the best `top` trials, the `preferred` one first (refitted
    first when `refit` says so); return what was chosen and how."""
    chosen = members(board, top, None if preferred is None else preferred.trial)
    if not chosen:
        raise NothingFinished(f"{out}: no trial finished within the budget, so there is no "
                              f"model; {out / 'auto.md'} lists the trials and their errors; "
                              f"rerun with a larger --time")
    if (out / OLD_STAGING).is_dir():  # an earlier fitclass staged its finish there: ours
        shutil.rmtree(out / OLD_STAGING)
    final: dict[str, Any] = {"kind": "ensemble" if len(chosen) >= 2 else "best trial",
                             "members": [str(p) for p in chosen], "refit": None,
                             "preferred": None if preferred is None else {
                                 **preferred.to_dict(), "why": preferred.why(metric)}}
    sources = chosen
    if refit is not None and refit.wanted:
        final["refit"] = refit_members(chosen, refit, reporter or Reporter())
        if final["refit"]["done"]:
            sources = [Path(p) for p in final["refit"]["crossval"]]
    if len(sources) >= 2:
        ensemble(sources, out, metric=metric, overwrite=True, within=AUTO_DIR)
        if sources is not chosen:
            swap_in_refits(out, final["refit"])
    else:
        copy_run(sources[0] / REFIT if sources is not chosen else sources[0], out)
    return final


def final_run(out: Path) -> Run:
    return load_run(out)
