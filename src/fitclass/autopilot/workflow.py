"""`fitclass.auto(table, label=..., time="30m")`: diagnose, search, finish, within budget.

OUT holds the run `auto` made (predict/evaluate/report/export work on it) beside its own
entries: `auto.json` (the command, the search space, the diagnosis and the time each call
spent), `auto.db` (the Optuna study, unless --storage names another), `trials/` (one normal
run per trial) and `auto.md`. Rerunning the same command continues: the study keeps its
finished trials, and the budget counts the time earlier calls spent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.autopilot import budget as timing
from fitclass.autopilot.finish import STAGING, NothingFinished, build_final, ranked
from fitclass.autopilot.notes import NOTES, write_notes
from fitclass.autopilot.search import TRIALS, finished, open_auto_study, search
from fitclass.autopilot.space import (
    EPOCHS,
    PRESETS,
    TOP_MEMBERS,
    SearchSpace,
    candidate_backbones,
    choose_space,
)
from fitclass.diagnosis import doctor
from fitclass.errors import FitclassError
from fitclass.runs.layout import RUN, Layout, claim_folder, is_run, now
from fitclass.runs.run import Run, load_run
from fitclass.sweep_storage import hide_password
from fitclass.training.progress import Reporter

RECORD = "auto.json"
#: A backbone other than TF-IDF is searched when this many of its trials fit the budget.
AFFORDABLE_TRIALS = 3
TABLE = "table.csv"  # a DataFrame given to fitclass.auto, saved so trials can read it
#: What `fitclass auto` writes into OUT: a run's entries and its own.
AUTO_DIR = Layout("auto", RUN.names | frozenset({
    RECORD, NOTES, TRIALS, TABLE, STAGING, "auto.db", "auto.db-journal", "auto.db-wal",
    "auto.db-shm"}), patterns=RUN.patterns)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _table_path(table: str | Path | pd.DataFrame, out: Path) -> str:
    if isinstance(table, pd.DataFrame):
        path, text = out / TABLE, table.to_csv(index=False)
        if path.is_file() and path.read_text(encoding="utf-8") != text:
            # the earlier call's trials were trained on that table: never replace it
            raise FitclassError(f"{out}: an auto run of a different table is here (its "
                                f"{TABLE} differs from the DataFrame given); pass the same "
                                f"DataFrame to continue it, or choose another out folder")
        if not path.is_file():
            atomic_write_text(path, text)
        return str(path)
    if not Path(table).exists():
        raise FitclassError(f"{table}: no such file or folder; give the labelled table "
                            f"(.csv, .tsv, .jsonl, .parquet)")
    return str(Path(table).resolve())


def _command(data: str, label: Any, text: Any, preset: str, backbones: list[str],
             valid: Any) -> dict[str, Any]:
    return {"data": data, "label": label, "text": text, "preset": preset,
            "backbones": backbones, "valid": None if valid is None else str(Path(valid)
                                                                               .resolve())}


def affordable(backbones: list[str], rows: int, budget_s: float, preset: str) -> list[str]:
    """TF-IDF, and each other backbone whose estimated trial fits the budget
    `AFFORDABLE_TRIALS` times (a search needs a few trials of a backbone to tune it)."""
    device = _device() if len(backbones) > 1 else "cpu"
    return [b for b in backbones if b == timing.CHEAPEST or AFFORDABLE_TRIALS
            * timing.estimate_seconds(b, rows, EPOCHS[preset], device) <= budget_s]


def _read_record(out: Path, command: dict[str, Any]) -> dict[str, Any] | None:
    """An earlier call's record, when OUT holds one; a different command is refused."""
    path = out / RECORD
    if not path.is_file():
        return None
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    earlier = record["command"]
    changed = sorted(k for k in command if earlier.get(k) != command[k])
    if changed:
        raise FitclassError(
            f"{out}: an auto run of a different command is here ({', '.join(changed)} "
            f"differ: was " + ", ".join(f"{k}={earlier.get(k)!r}" for k in changed)
            + "); rerun that command to continue it, or choose another --out")
    return record


def _save(out: Path, record: dict[str, Any]) -> None:
    atomic_write_text(out / RECORD, json.dumps(record, indent=2, default=str))


def auto(table: str | Path | pd.DataFrame, *, label: str | list[str] | None = None,
         text: str | list[str] | None = None, time: str | float = "30m",
         preset: str = "good", out: str | Path | None = None, storage: str | None = None,
         valid: str | Path | None = None, backbones: list[str] | None = None,
         trials: int | None = None, reporter: Reporter | None = None) -> Run:
    """Diagnose `table`, search the remedies its findings call for within `time` ("30m",
    "1h", "90s" or seconds), ensemble the best trials into the run at `out` and return it.
    `trials` caps the study's finished trials (a resumed call counts earlier ones)."""
    budget_s = float(time) if isinstance(time, int | float) else timing.parse_time(time)
    if preset not in PRESETS:
        raise FitclassError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    reporter = reporter or Reporter()
    named = list(backbones or [])
    stem = "table" if isinstance(table, pd.DataFrame) else Path(table).stem
    target = claim_folder(Path(out or Path("runs") / f"auto-{stem}").resolve(), AUTO_DIR)
    data = _table_path(table, target)
    command = _command(data, label, text, preset, named, valid)
    record = _read_record(target, command)
    spent = float(record["spent_seconds"]) if record else 0.0
    deadline = timing.Deadline(budget_s, spent)
    if record is None:
        # before reading anything: a budget below a TF-IDF run's fixed cost never fits
        timing.refuse_if_too_small(budget_s, 0.0, timing.TFIDF_FIXED_S, None)
        diagnosis = doctor(data, label=label, text=text, valid=valid)
        space = choose_space(diagnosis, affordable(candidate_backbones(diagnosis, named,
                                                                       preset),
                                                   diagnosis.rows, budget_s, preset),
                             preset)
        record = {"tool": "fitclass auto", "command": command, "budget_seconds": budget_s,
                  "spent_seconds": 0.0, "doctor_seconds": deadline.this_call(),
                  "calls": [], "space": space.to_dict(), "diagnosis": diagnosis.to_dict()}
        cheapest = timing.estimate_seconds(timing.CHEAPEST, diagnosis.rows, space.epochs,
                                           "cpu")
        timing.refuse_if_too_small(budget_s, deadline.used(), cheapest, diagnosis.rows)
        reporter.log(f"doctor: {', '.join(diagnosis.regimes) or 'no regime'}; searching "
                     f"{', '.join(space.backbones)} with "
                     f"{', '.join(space.remedies()) or 'no remedies'} in mind")
    space = SearchSpace.from_dict(record["space"])
    record["budget_seconds"] = budget_s
    record["calls"].append({"started": now(), "seconds": 0.0})
    rows = int(record["diagnosis"]["rows"])

    def account() -> None:
        record["calls"][-1]["seconds"] = round(deadline.this_call(), 2)
        record["spent_seconds"] = round(deadline.used(), 2)
        _save(target, record)

    account()
    storage = storage or f"sqlite:///{target / 'auto.db'}"
    study = open_auto_study(space, storage, space.base["name"], 0, reporter)
    before = finished(study)
    reporter.log(f"study in {hide_password(storage)}: {before} trials done; budget "
                 f"{timing.format_seconds(budget_s)}, "
                 f"{timing.format_seconds(max(0.0, deadline.remaining()))} left")
    stopped = search(study, space, target, deadline, rows, _device(), reporter,
                     trials=trials, on_trial=account)
    reporter.log(f"search stopped: {stopped}")
    board = ranked(study)
    if record.get("final") is None or finished(study) != before or not is_run(target):
        top = timing.members_that_fit(deadline.remaining(), TOP_MEMBERS[preset])
        try:
            record["final"] = build_final(board, target, top, space.metric)
        except NothingFinished:
            account()
            write_notes(target, record["diagnosis"], space, board, None, record, stopped)
            raise
    account()
    write_notes(target, record["diagnosis"], space, board, record["final"], record, stopped)
    account()
    reporter.log(f"auto: {target} ({record['final']['kind']}); notes in {target / NOTES}; "
                 f"used {timing.format_seconds(deadline.used())} of "
                 f"{timing.format_seconds(budget_s)}")
    return load_run(target)

