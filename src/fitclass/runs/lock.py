"""The lock a live run holds on its folder: process id, host and a heartbeat.

`run.lock` is created with O_CREAT|O_EXCL, so of two processes starting on one folder only one
gets it. While the run lives, a background thread rewrites the heartbeat every
`HEARTBEAT_SECONDS`. Another process judges a lock dead when its process is gone (same host,
checked by pid and the process's start time, so a reused pid does not count) or, for a lock
from another host, when its heartbeat is older than `STALE_SECONDS`. A dead lock is taken
over; a live one makes `--resume`, `--overwrite` and training into the same folder refuse.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fitclass.atomic import atomic_write_text
from fitclass.errors import RunError
from fitclass.runs.layout import LOCK

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 120.0  # a lock from another host whose heartbeat is older than this is dead
WRITING_SECONDS = 5.0  # an unreadable lock younger than this is still being written


def process_start(pid: int) -> str | None:
    """An id for the process's start (boot id and start tick on Linux), None elsewhere: with
    the pid it tells a live process from a later one that reused the pid."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: count fields after its closing parenthesis
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


@dataclass
class LockInfo:
    """What a lock file says about its holder."""

    path: Path
    pid: int
    host: str
    started: str
    heartbeat: float
    token: str
    process: str | None = None

    @classmethod
    def read(cls, path: Path) -> LockInfo | None:
        """The lock at `path`; None when there is none. An unreadable lock is one being
        written right now, or half-written by a crash: its file time is its heartbeat."""
        try:
            text = path.read_text(encoding="utf-8")
            raw: Any = json.loads(text)
            return cls(path=path, pid=int(raw["pid"]), host=str(raw["host"]),
                       started=str(raw["started"]), heartbeat=float(raw["heartbeat"]),
                       token=str(raw["token"]), process=raw.get("process"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            try:
                written = path.stat().st_mtime
            except OSError:
                return None
            return cls(path=path, pid=-1, host="?", started="?", heartbeat=written,
                       token=f"unreadable:{written}")

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.heartbeat)

    def alive(self) -> bool:
        """Whether the holder still runs (see the module docstring)."""
        if self.pid < 0:  # unreadable: alive only while it may still be being written
            return self.age < WRITING_SECONDS
        if self.host != socket.gethostname():
            return self.age < STALE_SECONDS
        if not pid_alive(self.pid):
            return False
        current = process_start(self.pid)
        return self.process is None or current is None or current == self.process

    def describe(self) -> str:
        return (f"pid {self.pid} on host {self.host} (heartbeat {self.age:.0f} s ago, "
                f"started {self.started})")


class RunLock:
    """The lock this process holds on one run folder (`name`: another lock file in it, for
    a folder with more than one kind of writer, e.g. `fitclass auto`'s finisher)."""

    def __init__(self, folder: Path, name: str = LOCK) -> None:
        self.path = folder / name
        self.token = os.urandom(8).hex()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock, taking over a dead holder's; RunError when a live run holds it."""
        self._stop.clear()
        for _ in range(3):
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True,
                                                name=f"fitclass-heartbeat:{self.path.parent}")
                self._thread.start()
                return
            holder = LockInfo.read(self.path)
            if holder is not None and holder.alive():
                raise held(self.path.parent, holder)
            if holder is not None:
                self._remove_dead(holder)
        raise RunError(f"{self.path}: could not take the run lock (another process keeps "
                       f"taking it); retry when the other process has started")

    def _record(self) -> str:
        pid = os.getpid()
        return json.dumps({"pid": pid, "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "heartbeat": time.time(), "token": self.token,
                           "process": process_start(pid)}, indent=2)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._record())
        return True

    def _remove_dead(self, holder: LockInfo) -> None:
        """Remove a dead holder's lock, unless it changed since it was judged dead (another
        process took it over in between)."""
        again = LockInfo.read(self.path)
        if again is not None and again.token == holder.token:
            self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            current = LockInfo.read(self.path)
            if current is None or current.token != self.token:
                return  # the folder or the lock is gone: nothing to refresh
            try:
                record = json.loads(self.path.read_text(encoding="utf-8"))
                record["heartbeat"] = time.time()
                atomic_write_text(self.path, json.dumps(record, indent=2))
            except (OSError, ValueError):
                return

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS)
            self._thread = None
        current = LockInfo.read(self.path)
        if current is not None and current.token == self.token:
            self.path.unlink(missing_ok=True)


def held(folder: Path, holder: LockInfo) -> RunError:
    """The refusal while a live run holds `folder`."""
    return RunError(f"run {folder} is being trained by {holder.describe()}; wait for it to "
                    f"end, or stop that process and then continue it with --resume {folder}")


def lock_holder(folder: Path) -> LockInfo | None:
    """The live holder of `folder`'s lock, or None (no lock, or a dead one)."""
    holder = LockInfo.read(folder / LOCK)
    return holder if holder is not None and holder.alive() else None
