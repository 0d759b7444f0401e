"""`fitclass auto`'s output folder: the names of its own entries beside the run it holds,
and the lock that makes one of several workers on one OUT its finisher.

OUT is a normal run (the run layout's entries) plus `auto.json` (the command, the space,
the diagnosis, each call's time), `auto.md`, `trials/` (one run per trial, and under
`best` each member's cross-validation and refit), the Optuna study `auto.db` (unless
--storage names another), `table.csv` (a DataFrame given to `fitclass.auto`) and
`auto.lock`, held by the worker that writes the run, `auto.json` and `auto.md`. Replacing
the run deletes the run's entries only (`RunDir.create(..., within=AUTO_DIR)`).
"""

from __future__ import annotations

from pathlib import Path

from fitclass.runs.layout import RUN, Layout

RECORD = "auto.json"
NOTES = "auto.md"
TRIALS = "trials"
TABLE = "table.csv"  # a DataFrame given to fitclass.auto, saved so trials can read it
STUDY = "auto.db"
#: Held by the finisher: the one worker on OUT that writes its run, auto.json and auto.md.
FINISHER_LOCK = "auto.lock"
#: Where an earlier fitclass staged the finish before moving it in (a left-over is ours).
OLD_STAGING = ".auto-final"
AUTO_DIR = Layout("auto", RUN.names | frozenset({
    RECORD, NOTES, TRIALS, TABLE, FINISHER_LOCK, OLD_STAGING, STUDY, f"{STUDY}-journal",
    f"{STUDY}-wal", f"{STUDY}-shm"}), patterns=RUN.patterns)


def trial_dir(out: Path, number: int) -> Path:
    return out / TRIALS / f"trial-{number:04d}"


def crossval_dir(trial: Path) -> Path:
    """Where a chosen trial's recipe is cross-validated and refit under `best` (its refit
    in `<that>/refit`), beside the trial in `trials/`."""
    return trial.parent / f"{trial.name}-cv"
