"""A sweep's Optuna storage: connecting to it, and the trials of workers that died.

Optuna's RDB storage with heartbeats: every running trial records one every
HEARTBEAT_SECONDS; a trial silent for GRACE_SECONDS is marked failed by the next worker that
looks (`optuna.storages.fail_stale_trials`, run by `study.optimize` before every trial and by
`fitclass sweep` when it starts) and queued once more. A trial whose process on this machine
is gone is failed and queued at once, so a sweep killed and rerun straight away leaves no
trial RUNNING forever.
"""

from __future__ import annotations

import os
import random
import re
import socket
import time
import warnings
from typing import Any

from fitclass.errors import FitclassError
from fitclass.runs.lock import pid_alive
from fitclass.training.progress import Reporter

#: A running trial's heartbeat interval, and the silence after which any worker marks it
#: failed (its worker died) and queues its retry: optuna's heartbeat mechanism.
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 90


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise FitclassError("sweeps need optuna: pip install 'fitclass[sweep]'") from None
    return optuna


def hide_password(url: str) -> str:
    """A storage URL fit for logs: `postgresql://user:***@host/db`."""
    return re.sub(r"^([A-Za-z0-9+.-]+://[^:/@]*:)[^/]*@", r"\1***@", url)


def rdb_storage(storage: str, attempts: int = 5) -> Any:
    """Optuna's RDB storage. Workers started together on an empty database all try to create
    its schema and all but one fail on a unique or duplicate-table error: they wait for the
    winner and connect again, finding the schema there."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    optuna = import_optuna()

    def connect() -> Any:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=GRACE_SECONDS,
                                                  **retry_once(optuna))
        except ImportError as error:  # the URL's database driver is not installed
            raise FitclassError(
                f"--storage {hide_password(storage)}: no database driver for this URL "
                f"({error.__cause__ or error}); install one, e.g. pip install "
                f"'psycopg[binary]' for postgresql:// (or name the driver: "
                f"postgresql+psycopg2://...)") from None

    for _ in range(attempts - 1):
        try:
            return connect()
        except (IntegrityError, ProgrammingError):
            time.sleep(0.5 + random.random())
    return connect()  # the last attempt's error, if any, is the caller's


def retry_once(optuna: Any) -> dict[str, Any]:
    """The RDB storage argument that queues one retry of a trial whose worker died (named
    `heartbeat_stale_trial_callback` since optuna 4.9, `failed_trial_callback` before)."""
    storages = optuna.storages
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback":
                storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}


def process_gone(worker: str | None) -> bool:
    """True when `worker` ("host:pid", as a trial records it) names a process of this machine
    that no longer exists. POSIX only; a reused pid reads as alive, so a mistake here only
    leaves the decision to the heartbeat."""
    if not worker or os.name != "posix":
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not pid_alive(int(pid))


def fail_dead_trials(study: Any, rdb: Any, reporter: Reporter) -> None:
    """Mark the trials of dead workers failed and queue one retry of each: the trials whose
    heartbeat stopped more than GRACE_SECONDS ago (optuna's `fail_stale_trials`, any
    machine), and at once those whose process on this machine is gone, so a sweep killed
    and rerun straight away leaves no trial RUNNING forever."""
    optuna = import_optuna()
    running = optuna.trial.TrialState.RUNNING
    before = {t.number for t in study.get_trials(deepcopy=False, states=(running,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    still = study.get_trials(deepcopy=False, states=(running,))
    for number in sorted(before - {t.number for t in still}):
        reporter.log(f"trial {number}: no heartbeat for {GRACE_SECONDS}s, its worker died; "
                     f"marked failed and queued again")
    retry = (rdb.get_heartbeat_stale_trial_callback
             if hasattr(rdb, "get_heartbeat_stale_trial_callback")
             else rdb.get_failed_trial_callback)  # optuna before 4.9
    for trial in still:
        worker = trial.user_attrs.get("worker")
        if not process_gone(worker):
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker finished it first, and queued the retry
        reporter.log(f"trial {trial.number}: its worker {worker} is gone; marked failed and "
                     f"queued again")
        callback = retry()
        if callback is not None:
            callback(study, trial)
