"""`run.lock`: exclusive creation, release, and telling live holders from dead ones."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from fitclass.errors import RunError
from fitclass.runs.lock import LOCK, LockInfo, RunLock, lock_holder, process_start


def write_lock(folder: Path, **fields: object) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now",
              "heartbeat": time.time(), "token": "t", "process": process_start(os.getpid())}
    (folder / LOCK).write_text(json.dumps(record | fields))


def test_one_holder_at_a_time_and_release_removes_the_lock(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    with pytest.raises(RunError, match=rf"being trained by pid {os.getpid()} on host"):
        second.acquire()
    first.release()
    assert not (tmp_path / LOCK).exists()
    second.acquire()
    first.release()  # not its lock any more: leaves it alone
    assert lock_holder(tmp_path) is not None
    second.release()


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    write_lock(tmp_path)
    assert lock_holder(tmp_path) is not None
    if process_start(os.getpid()) is None:
        pytest.skip("no process start times on this system")
    write_lock(tmp_path, process="another-boot:1")  # same pid, another process
    assert lock_holder(tmp_path) is None
    taken = RunLock(tmp_path)
    taken.acquire()  # taken over
    assert json.loads((tmp_path / LOCK).read_text())["token"] == taken.token
    taken.release()


def test_an_unreadable_lock_is_dead_once_it_cannot_still_be_being_written(
        tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text("")
    assert lock_holder(tmp_path) is not None  # maybe half-way through its first write
    old = time.time() - 60
    os.utime(tmp_path / LOCK, (old, old))
    assert lock_holder(tmp_path) is None
    holder = LockInfo.read(tmp_path / LOCK)
    assert holder is not None and holder.pid == -1


def test_the_heartbeat_refreshes_the_lock(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fitclass.runs.lock.HEARTBEAT_SECONDS", 0.05)
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        first = json.loads((tmp_path / LOCK).read_text())["heartbeat"]
        time.sleep(0.3)
        assert json.loads((tmp_path / LOCK).read_text())["heartbeat"] > first
    finally:
        lock.release()
    assert not (tmp_path / LOCK).exists()


def test_a_folder_holding_only_a_dead_lock_is_taken_over(tmp_path: Path) -> None:
    """A run killed between taking its lock and writing its first status: the same
    command takes the folder over; a foreign file beside the lock still refuses it."""
    from fitclass.runs.folder import RunDir

    killed = tmp_path / "killed"
    killed.mkdir()
    write_lock(killed, process="another-boot:1")  # this pid, but another (dead) process
    if process_start(os.getpid()) is None:
        pytest.skip("no process start times on this system")
    run = RunDir.create(killed)
    assert run.status() == "running"
    run.release()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    write_lock(foreign, process="another-boot:1")
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a fitclass run folder"):
        RunDir.create(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
