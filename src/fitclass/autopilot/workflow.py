"""`fitclass.auto(table, label=..., time="30m")`: diagnose, search, finish, within budget.

OUT holds the run `auto` made (predict/evaluate/report/export work on it) beside its own
entries (`autopilot/folder.py`): `auto.json` (the command, the search space, the diagnosis
and the time each call spent), `auto.db` (the Optuna study, unless --storage names
another), `trials/` (one normal run per trial) and `auto.md`. Rerunning the same command
continues: the study keeps its finished trials, and the budget counts the time earlier
calls spent.

Several workers on one OUT (the same command started twice, or on several machines sharing
OUT and a --storage): the first to take `OUT/auto.lock` is the finisher; it diagnoses,
writes `auto.json`, searches, and writes the run and `auto.md`. Every other worker is a
contributor: it waits for `auto.json`, runs trials of the same study into `trials/` (trial
numbers come from the study, so no trial is run twice and no folder is written by two
workers) under the same deadline, writes nothing else, then waits for the finisher's run
and returns it. A finisher that died leaves its lock to the next call, which finishes.
"""

from __future__ import annotations

import json
import time as clock
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.autopilot import budget as timing
from fitclass.autopilot.finish import NothingFinished, build_final, ranked
from fitclass.autopilot.folder import AUTO_DIR, FINISHER_LOCK, NOTES, RECORD, STUDY, TABLE
from fitclass.autopilot.notes import write_notes
from fitclass.autopilot.preference import default_twins, prefer_twin
from fitclass.autopilot.refit import RefitPlan
from fitclass.autopilot.search import Trials, finished, open_auto_study, refit_reserve, search
from fitclass.autopilot.space import (
    EPOCHS,
    PRESETS,
    REFITS,
    TOP_MEMBERS,
    SearchSpace,
    candidate_backbones,
    choose_space,
)
from fitclass.diagnosis import Diagnosis, doctor
from fitclass.errors import FitclassError, RunError
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import claim_folder, now
from fitclass.runs.lock import RunLock
from fitclass.runs.run import Run, load_run
from fitclass.sweep_storage import hide_password
from fitclass.training.progress import Reporter

#: A backbone other than TF-IDF is searched when one trial of it (its default recipe's twin,
#: queued as its first) fits in this share of the budget, the rest left to TF-IDF and the
#: finish. It was 3 whole trials, which kept MiniLM out of a 15-minute search on SST-2 (5,536
#: rows; one MiniLM run 0.875 macro-F1, the best TF-IDF 0.797): one run of the stronger
#: backbone is worth more than many of the weaker (docs/benchmarks.md, fitclass auto).
AFFORDABLE_SHARE = 0.5
#: How often a contributing worker looks for the finisher's auto.json and run.
POLL_S = 0.5


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
    """TF-IDF, and each other backbone whose estimated trial fits in `AFFORDABLE_SHARE` of
    the budget."""
    device = _device() if len(backbones) > 1 else "cpu"
    return [b for b in backbones if b == timing.CHEAPEST or timing.estimate_seconds(
        b, rows, EPOCHS[preset], device) <= AFFORDABLE_SHARE * budget_s]


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
    "1h", "90s" or seconds), ensemble the best trials (refit first under `best`) into the
    run at `out` and return it. `trials` caps the study's finished trials (a resumed call
    counts earlier ones). A second call on the same `out` while one runs contributes trials
    to its study and returns its run."""
    budget_s = float(time) if isinstance(time, int | float) else timing.parse_time(time)
    if preset not in PRESETS:
        raise FitclassError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    reporter = reporter or Reporter()
    named = list(backbones or [])
    stem = "table" if isinstance(table, pd.DataFrame) else Path(table).stem
    target = claim_folder(Path(out or Path("runs") / f"auto-{stem}").resolve(), AUTO_DIR)
    data = _table_path(table, target)
    command = _command(data, label, text, preset, named, valid)
    storage = storage or f"sqlite:///{target / STUDY}"
    finisher = RunLock(target, FINISHER_LOCK)
    try:
        finisher.acquire()
    except RunError:
        return contribute(target, command, budget_s, storage, trials, reporter)
    try:
        return _finish_call(target, command, budget_s, storage, trials, reporter)
    finally:
        finisher.release()


def _diagnose(command: dict[str, Any], deadline: timing.Deadline,
              reporter: Reporter) -> dict[str, Any]:
    """The first call's record: doctor's diagnosis and the search space it calls for."""
    budget_s = deadline.budget_s
    # before reading anything: a budget below a TF-IDF run's fixed cost never fits
    timing.refuse_if_too_small(budget_s, 0.0, timing.TFIDF_FIXED_S, None)
    preset = command["preset"]
    diagnosis = doctor(command["data"], label=command["label"], text=command["text"],
                       valid=command["valid"])
    refuse_blocking(diagnosis, given_valid=command["valid"] is not None)
    backbones = affordable(candidate_backbones(diagnosis, command["backbones"], preset),
                           diagnosis.rows, budget_s, preset)
    space = choose_space(diagnosis, backbones, preset)
    record = {"tool": "fitclass auto", "command": command, "budget_seconds": budget_s,
              "spent_seconds": 0.0, "doctor_seconds": deadline.this_call(),
              "calls": [], "space": space.to_dict(), "diagnosis": diagnosis.to_dict()}
    cheapest = timing.estimate_seconds(timing.CHEAPEST, diagnosis.rows, space.epochs, "cpu")
    timing.refuse_if_too_small(budget_s, deadline.used(), cheapest, diagnosis.rows)
    reporter.log(f"doctor: {', '.join(diagnosis.regimes) or 'no regime'}; searching "
                 f"{', '.join(space.backbones)} with "
                 f"{', '.join(space.remedies()) or 'no remedies'} in mind")
    return record


def refuse_blocking(diagnosis: Diagnosis, given_valid: bool) -> None:
    """Stop before the search on what doctor found that every trial would stop on (a class
    of one row cannot be split off for validation; a validation label the table lacks),
    naming the file, what was found and the fix: otherwise each trial fails its data check
    in turn and the budget ends with no model."""
    blocking = [f for f in diagnosis.findings if f.severity == "error"
                and not (given_valid and f.code == "few_rows")]  # nothing is split off
    if blocking:
        raise FitclassError(f"{diagnosis.source}: auto cannot train on this table: "
                            + "; ".join(f"{f.title} (fix: {f.remedy})" for f in blocking)
                            + ". `fitclass doctor` shows the whole diagnosis")


def _refit_plan(preset: str, trials: Trials, remaining_s: float) -> tuple[int, RefitPlan]:
    """How many members the finish takes, and whether they are refit (the preset asks and
    at least one refit fits the time left)."""
    each = refit_reserve(trials, REFITS[preset])
    top, refit = timing.members_that_fit(remaining_s, TOP_MEMBERS[preset], each)
    if not REFITS[preset] or refit:
        return top, RefitPlan(REFITS[preset])
    need = "nothing finished to price it" if each is None else (
        f"one member's cross-validation and refit takes about {timing.format_seconds(each)}")
    return top, RefitPlan(True, f"the {timing.format_seconds(max(0.0, remaining_s))} left "
                                f"could not fit it ({need}); give a larger --time")


def _finish_call(target: Path, command: dict[str, Any], budget_s: float, storage: str,
                 trials: int | None, reporter: Reporter) -> Run:
    """The finisher's call: diagnose (first call), search, write the run and auto.md."""
    record = _read_record(target, command)
    deadline = timing.Deadline(budget_s, float(record["spent_seconds"]) if record else 0.0)
    if record is None:
        record = _diagnose(command, deadline, reporter)
    space = SearchSpace.from_dict(record["space"])
    record["budget_seconds"] = budget_s
    record["calls"].append({"started": now(), "seconds": 0.0})
    rows, preset = int(record["diagnosis"]["rows"]), command["preset"]

    def account() -> None:
        record["calls"][-1]["seconds"] = round(deadline.this_call(), 2)
        record["spent_seconds"] = round(deadline.used(), 2)
        _save(target, record)

    # the study (and its first trial) before auto.json: a contributor waits for auto.json
    study = open_auto_study(space, storage, space.base["name"], 0, reporter)
    account()
    before = finished(study.trials)
    reporter.log(f"study in {hide_password(storage)}: {before} trials done; budget "
                 f"{timing.format_seconds(budget_s)}, "
                 f"{timing.format_seconds(max(0.0, deadline.remaining()))} left")
    stopped = search(study, space, target, deadline, rows, _device(), reporter,
                     trials=trials, on_trial=account, refit=REFITS[preset])
    reporter.log(f"search stopped: {stopped}")
    await_contributors(study, deadline, refit_reserve(study.trials, REFITS[preset]), reporter)
    done = study.get_trials(deepcopy=False)
    board = ranked(done)
    record["workers"] = workers(done)
    if (record.get("final") is None or finished(done) != before
            or RunDir(target).status() != "finished"):
        top, plan = _refit_plan(preset, done, deadline.remaining())
        try:
            preferred = prefer_twin(board, default_twins(done, space), space.metric)
            record["final"] = build_final(board, target, top, space.metric, plan, reporter,
                                          preferred)
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


def await_contributors(study: Any, deadline: timing.Deadline, refit_each_s: float | None,
                       reporter: Reporter) -> None:
    """Wait for the trials other workers are running (they started them only when they fit
    before the finish's reserve) while the finish's reserve still fits, so the finish
    chooses among them too."""
    def state() -> tuple[int, int]:  # running and finished trials, one read of the study
        trials = study.get_trials(deepcopy=False)
        return sum(t.state.name == "RUNNING" for t in trials), finished(trials)

    running, done = state()
    if running:
        reporter.log(f"waiting for {running} trial(s) of other workers")
    while running and deadline.remaining() - POLL_S > timing.reserve_seconds(
            done, refit_each_s, deadline.remaining()):
        clock.sleep(POLL_S)
        running, done = state()


def workers(trials: Trials) -> dict[str, int]:
    """Finished trials per worker ("host:pid"), for auto.md."""
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.state.name in ("COMPLETE", "PRUNED"):
            name = str(trial.user_attrs.get("worker", "unknown"))
            counts[name] = counts.get(name, 0) + 1
    return counts


def _finisher(target: Path) -> str | None:
    """Who holds OUT's finisher lock (alive), or None."""
    from fitclass.runs.lock import LockInfo

    holder = LockInfo.read(target / FINISHER_LOCK)
    return holder.describe() if holder is not None and holder.alive() else None


def contribute(target: Path, command: dict[str, Any], budget_s: float, storage: str,
               trials: int | None, reporter: Reporter) -> Run:
    """A worker that found OUT's finisher at work: run trials of its study under the same
    deadline, then wait for the finisher's run and return it."""
    import os

    started = clock.monotonic()
    limit = budget_s * 1.1
    record = _read_record(target, command)
    while record is None:  # the finisher is diagnosing
        if clock.monotonic() - started > limit or _finisher(target) is None:
            raise FitclassError(f"{target}: another worker holds {FINISHER_LOCK} but wrote "
                                f"no {RECORD}; rerun the command once it has ended")
        clock.sleep(POLL_S)
        record = _read_record(target, command)
    written = (target / RECORD).stat().st_mtime
    # the finisher's spent time when it last wrote auto.json, and since
    deadline = timing.Deadline(budget_s, float(record["spent_seconds"])
                               + max(0.0, clock.time() - written))
    space = SearchSpace.from_dict(record["space"])
    reporter.log(f"auto: {target} is finished by {_finisher(target) or 'another worker'}; "
                 f"this worker contributes trials to its study")
    # its own sampler seed: two TPE samplers seeded alike propose the same values
    study = open_auto_study(space, storage, space.base["name"], os.getpid(), reporter,
                            first=False)
    stopped = search(study, space, target, deadline, int(record["diagnosis"]["rows"]),
                     _device(), reporter, trials=trials, refit=REFITS[command["preset"]])
    reporter.log(f"search stopped: {stopped}; waiting for the finisher's run")
    while _finisher(target) is not None and clock.monotonic() - started < limit:
        clock.sleep(POLL_S)
    if RunDir(target).status() != "finished":
        raise FitclassError(f"{target}: this worker contributed trials, but the finisher "
                            f"left no finished run; rerun the command to finish it")
    return load_run(target)
