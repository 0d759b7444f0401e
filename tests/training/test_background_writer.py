"""The background checkpoint writer: host copies that later training does not reach, one
reused buffer, writes in order, errors raised on the next call, and writes in place when
training runs on the CPU."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from fitclass.errors import RunError
from fitclass.training.writer import BackgroundWriter


def test_host_copies_keep_structure_values_and_leaves() -> None:
    writer = BackgroundWriter()
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(5, 3).t()}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}],
             "mask": torch.tensor([True, False, True]), "ids": torch.arange(7),
             "empty": torch.zeros(0, 4), "half": torch.randn(3).half()}
    copied = writer.host_copies(state)
    assert copied["param_groups"] == state["param_groups"]
    assert copied["param_groups"][0] is not state["param_groups"][0]
    for key in ("mask", "ids", "empty", "half"):
        assert copied[key].dtype == state[key].dtype and torch.equal(copied[key], state[key])
    inner, source = copied["state"][0], state["state"][0]
    assert inner["step"].shape == () and inner["step"].item() == 3.0
    assert inner["exp_avg"].is_contiguous() and torch.equal(inner["exp_avg"], source["exp_avg"])
    source["exp_avg"].add_(1.0)  # training goes on in place
    state["param_groups"][0]["params"].append(1)
    assert not torch.equal(inner["exp_avg"], source["exp_avg"])
    assert copied["param_groups"][0]["params"] == [0]


def test_host_copies_convert_and_reuse_one_buffer() -> None:
    writer = BackgroundWriter()
    big = writer.host_copies({"w": torch.randn(64, 64, dtype=torch.float64)}, torch.float32)
    assert big["w"].dtype == torch.float32
    pointer = big["w"].data_ptr()
    small = writer.host_copies({"b": torch.ones(8)})
    assert small["b"].data_ptr() == pointer  # the same buffer, no new host memory
    writer.finish()
    assert writer._arena is None


def test_a_tensor_met_twice_is_copied_once_and_shared() -> None:
    """The weights in both the best checkpoint and the resume state: one host copy."""
    writer = BackgroundWriter()
    module = torch.nn.Linear(16, 4)
    first, second = module.state_dict(), module.state_dict()  # new tensor objects, same memory
    assert first["weight"] is not second["weight"]
    copied = writer.host_copies((first, second, {"other": torch.ones(3)}))
    assert copied[0]["weight"] is copied[1]["weight"] and copied[0]["bias"] is copied[1]["bias"]
    assert torch.equal(copied[0]["weight"], module.weight)
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    assert writer.copied_bytes == weights + 3 * 4
    as_view = writer.host_copies({"w": module.weight, "t": module.weight.t()})
    assert torch.equal(as_view["t"], module.weight.t())  # a view of other strides: its own


def in_background() -> BackgroundWriter:
    writer = BackgroundWriter()
    writer.background = True
    return writer


def test_copies_from_the_cpu_are_written_in_place(tmp_path: Path) -> None:
    writer, done = BackgroundWriter(), []
    state = writer.host_copies({"w": torch.ones(3)})
    writer.submit(tmp_path / "a", lambda: done.append(state["w"].sum().item()))
    assert done == [3.0] and not writer.busy and writer._pool is None  # no thread

    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(RunError, match=r"a: writing this checkpoint failed \(OSError"):
        writer.submit(tmp_path / "a", fail)
    writer.flush()  # reported once


def test_writes_run_in_order_one_at_a_time(tmp_path: Path) -> None:
    writer, order = in_background(), []
    release = threading.Event()

    def slow() -> None:
        assert release.wait(timeout=30)
        order.append("first")

    writer.submit(tmp_path / "a", slow)
    assert writer.busy
    threading.Timer(0.1, release.set).start()
    start = time.perf_counter()
    writer.submit(tmp_path / "b", lambda: order.append("second"))  # waits for the first
    assert time.perf_counter() - start >= 0.05
    writer.flush()
    assert order == ["first", "second"] and not writer.busy


def test_a_failed_write_raises_once_naming_its_target(tmp_path: Path) -> None:
    writer = in_background()

    def fail() -> None:
        raise PermissionError(13, "Permission denied")

    writer.submit(tmp_path / "checkpoints" / "last", fail)
    with pytest.raises(RunError, match=r"checkpoints/last: writing this checkpoint failed "
                                       r"\(PermissionError"):
        writer.submit(tmp_path / "next", lambda: None)
    writer.flush()  # the error was reported; the next write was not queued
    assert not writer.busy


def test_settle_waits_and_returns_the_error_instead_of_raising(tmp_path: Path) -> None:
    writer, done = in_background(), []
    writer.submit(tmp_path / "a", lambda: (time.sleep(0.1), done.append(1)))
    assert writer.settle() is None and done == [1]

    def fail() -> None:
        raise OSError("disk gone")

    writer.submit(tmp_path / "b", fail)
    error = writer.settle()
    assert isinstance(error, RunError) and "disk gone" in str(error)
    assert writer.settle() is None
