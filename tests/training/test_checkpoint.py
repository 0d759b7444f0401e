"""The best checkpoint at the end of training: restored, or a clear error when it is missing,
never a silent fallback to the last weights. Checkpoints written in the background equal
synchronous saves of the state at the moment they were asked for, and a failed write
surfaces."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import save_model

import fitclass
from fitclass.errors import RunError
from fitclass.runs.folder import RunDir
from fitclass.training import checkpoint, writer
from fitclass.training.accelerator import make_accelerator
from fitclass.training.state import LoopState


def test_restore_selected_loads_the_best_or_says_none_was_selected(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    best, final = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    checkpoint.save_best(run, best)
    assert checkpoint.restore_selected(run, final, best_step=None) is False
    assert not torch.equal(final.weight, best.weight)  # nothing selected: final weights stay
    assert checkpoint.restore_selected(run, final, best_step=3) is True
    assert torch.equal(final.weight, best.weight)


def test_restore_selected_refuses_a_missing_best(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(RunError, match=r"checkpoints/best/model.safetensors: the best "
                                       r"checkpoint \(step 6\) is missing"):
        checkpoint.restore_selected(run, torch.nn.Linear(2, 2), best_step=6)


def test_a_best_checkpoint_removed_during_training_fails_the_run(
        tmp_path: Path, train_csv: Path, recipe_for: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a second process deleting the folder's checkpoints looks like: the run fails
    naming the file instead of writing metrics for weights it never selected."""
    monkeypatch.setattr(checkpoint, "_write_best", lambda run, tensors, metadata: None)
    out = tmp_path / "run"
    with pytest.raises(RunError, match=r"the best checkpoint .* is missing"):
        fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}), out=out)
    record = json.loads((out / "status.json").read_text())
    assert record["status"] == "failed" and "best checkpoint" in record["error"]
    assert not (out / "metrics.json").exists()


# --- checkpoints written in the background ------------------------------------------------


class Tied(torch.nn.Module):
    """Tied weights (stored once) and a non-contiguous parameter (stored contiguous)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(5, 3)
        self.decode = torch.nn.Linear(3, 5, bias=False)
        self.decode.weight = self.embed.weight
        self.transposed = torch.nn.Parameter(torch.randn(4, 3).t())
        self.register_buffer("count", torch.tensor(7))


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds every background write (before it writes anything) until the test sets the
    event."""
    event = threading.Event()

    def held(target: Path, write: Callable[[], None]) -> None:
        def wait_then_write() -> None:
            assert event.wait(timeout=30)
            write()

        writer.submit(target, wait_then_write)

    monkeypatch.setattr(checkpoint, "submit", held)
    monkeypatch.setattr(writer.WRITER, "background", True)  # as on a GPU
    yield event
    event.set()
    checkpoint.flush()


def test_the_best_checkpoint_equals_a_synchronous_save_of_the_weights_it_copied(
        tmp_path: Path, gate: threading.Event) -> None:
    module, run = Tied(), RunDir(tmp_path / "run")
    save_model(module, str(tmp_path / "sync.safetensors"))
    checkpoint.save_best(run, module)
    with torch.no_grad():  # training goes on while the file is written
        module.embed.weight.add_(1.0)
        module.transposed.mul_(2.0)
    assert not (run.checkpoint("best") / "model.safetensors").exists()  # still in flight
    gate.set()
    checkpoint.flush()
    written = run.checkpoint("best") / "model.safetensors"
    assert written.read_bytes() == (tmp_path / "sync.safetensors").read_bytes()


def test_restore_selected_waits_for_the_write_in_flight(tmp_path: Path,
                                                        gate: threading.Event) -> None:
    run = RunDir(tmp_path / "run")
    best, final = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    checkpoint.save_best(run, best)
    threading.Timer(0.2, gate.set).start()
    assert checkpoint.restore_selected(run, final, best_step=1) is True
    assert torch.equal(final.weight, best.weight)


def prepared_accelerator() -> tuple[Accelerator, torch.nn.Module, Any, Any]:
    accelerator = make_accelerator("fp32")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    return accelerator, module, optimizer, scheduler


def train_step(module: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
    module(torch.randn(3, 4)).square().sum().backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def loaded(path: Path) -> Any:
    return torch.load(path, weights_only=False)


def test_the_training_state_equals_accelerates_save_state(tmp_path: Path,
                                                          gate: threading.Event) -> None:
    accelerator, module, optimizer, scheduler = prepared_accelerator()
    for _ in range(2):
        train_step(module, optimizer, scheduler)
    sync = tmp_path / "sync"
    accelerator.save_state(str(sync))
    run = RunDir(tmp_path / "run")
    checkpoint.save_training_state(run, accelerator, {"step": 2},
                                   {"loss": np.arange(3.0)})
    train_step(module, optimizer, scheduler)  # moves weights, moments, schedule and RNG
    gate.set()
    checkpoint.flush()
    written = run.checkpoint("last")
    names = sorted(p.name for p in written.iterdir())
    assert names == sorted([*(p.name for p in sync.iterdir()), "loop_state.json",
                            "arrays.safetensors"])
    assert (written / "model.safetensors").read_bytes() == (sync / "model.safetensors"
                                                            ).read_bytes()
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        assert_same(loaded(written / name), loaded(sync / name), name)
        # torch.save writes whole storages: no file carries the writer's shared buffer
        assert (written / name).stat().st_size == (sync / name).stat().st_size, name
    assert json.loads((written / "loop_state.json").read_text()) == {"step": 2}
    assert checkpoint.load_arrays(run)["loss"].tolist() == [0.0, 1.0, 2.0]


def assert_same(a: Any, b: Any, where: str) -> None:
    """Equal nested state (tensors equal, numpy arrays equal, the rest ==)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, torch.Tensor):
        assert a.device == b.device and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


def test_a_resume_state_loads_back_into_the_prepared_objects(tmp_path: Path) -> None:
    accelerator, module, optimizer, scheduler = prepared_accelerator()
    train_step(module, optimizer, scheduler)
    run = RunDir(tmp_path / "run")
    checkpoint.save_training_state(run, accelerator, {"step": 1})
    expected = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    train_step(module, optimizer, scheduler)
    assert checkpoint.has_training_state(run)
    assert checkpoint.load_training_state(run, accelerator) == {"step": 1}
    for key, value in module.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert torch.equal(torch.get_rng_state(), rng)
    assert scheduler.scheduler.last_epoch == 1


def test_a_failed_background_write_surfaces(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    monkeypatch.setattr(writer.WRITER, "background", True)  # as on a GPU
    run = RunDir(tmp_path / "run")
    checkpoint.save_best(run, torch.nn.Linear(2, 2))  # the copy is made; the write fails later
    with pytest.raises(RunError, match=r"checkpoints/best: writing this checkpoint failed "
                                       r"\(OSError: .*No space left") as info:
        checkpoint.flush()
    assert isinstance(info.value.__cause__, OSError)
    checkpoint.flush()  # reported once
    checkpoint.save_best(run, torch.nn.Linear(2, 2))
    with pytest.raises(RunError, match="No space left"):  # or on the next write
        checkpoint.save_best(run, torch.nn.Linear(2, 2))
    checkpoint.flush()
    assert not run.checkpoint("best").exists()


def test_a_new_best_shares_the_resume_states_copy_of_the_weights(tmp_path: Path) -> None:
    """An evaluation that is a new best copies the weights to the host once: the best
    checkpoint is written from the resume state's copy, not from a second clone."""
    accelerator, module, optimizer, scheduler = prepared_accelerator()
    train_step(module, optimizer, scheduler)
    weights = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    run = RunDir(tmp_path / "run")
    best = checkpoint.BestCheckpoint(run, lambda: accelerator.unwrap_model(module))
    resume = checkpoint.ResumeState(run, accelerator, best=best)
    state = LoopState(step=1)

    def copied_by(row: dict[str, Any]) -> int:
        before = writer.WRITER.copied_bytes
        for callback in (best, resume):
            callback.on_evaluate(state, row)
        checkpoint.flush()
        return writer.WRITER.copied_bytes - before

    plain = copied_by({"is_best": False})  # the resume state alone: weights and optimiser
    assert plain > weights
    assert copied_by({"is_best": True}) == plain  # and no second copy of the weights
    save_model(accelerator.unwrap_model(module), str(tmp_path / "sync.safetensors"))
    written = run.checkpoint("best") / "model.safetensors"
    assert written.read_bytes() == (tmp_path / "sync.safetensors").read_bytes()
    assert (run.checkpoint("last") / "model.safetensors").is_file()
    alone = checkpoint.BestCheckpoint(run, lambda: accelerator.unwrap_model(module))
    before = writer.WRITER.copied_bytes
    alone.on_evaluate(state, {"is_best": True})  # no resume state: it writes on its own
    checkpoint.flush()
    assert writer.WRITER.copied_bytes - before == weights
