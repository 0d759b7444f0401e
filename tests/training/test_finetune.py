"""Fine-tuning (`training/finetune.py`) on the tiny BERT: evaluation schedule, accumulation,
selection, early stopping and resume."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from transformers import BertConfig

import fitclass
from fitclass.errors import RunError
from fitclass.training import finetune, loop, writer
from fitclass.training.progress import Reporter

# 90 training rows (120 minus a 25% validation split), batch 16: 6 batches per epoch.
STEPS_PER_EPOCH = 6


@pytest.fixture(scope="module")
def base_recipe(train_csv: Path, recipe_for) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16})


def with_train(recipe: dict[str, Any], **train: Any) -> dict[str, Any]:
    return {**recipe, "train": {**recipe["train"], **train}}


def history(run_path: Path) -> pd.DataFrame:
    return pd.read_csv(run_path / "history.csv")


def metrics(run_path: Path) -> dict[str, Any]:
    return json.loads((run_path / "metrics.json").read_text())


def status(run_path: Path) -> dict[str, Any]:
    return json.loads((run_path / "status.json").read_text())


# --- evaluation schedule ------------------------------------------------------------------


@pytest.mark.parametrize(("epochs", "every", "steps"), [
    (2, 1, [6, 12]),
    (2, "5 steps", [5, 10, 12]),  # the last step is always evaluated
    (2, "4 steps", [4, 8, 12]),
    (2, 0.5, [3, 6, 9, 12]),
    (3, "2 epochs", [12, 18]),
])
def test_eval_every_sets_history_rows(tmp_path: Path, base_recipe: dict[str, Any],
                                      epochs: int, every: Any, steps: list[int]) -> None:
    run = fitclass.train(with_train(base_recipe, epochs=epochs, eval_every=every),
                         out=tmp_path / "run")
    rows = history(run.path)
    assert rows["step"].tolist() == steps
    assert rows["epoch"].tolist() == pytest.approx([s / STEPS_PER_EPOCH for s in steps],
                                                   abs=1e-4)
    assert rows["valid_loss"].notna().all() and rows["train_loss"].notna().all()


@pytest.mark.parametrize(("accumulation", "steps"), [(2, [3, 6]), (4, [2, 4])])
def test_grad_accumulation_counts_optimiser_steps(tmp_path: Path, base_recipe: dict[str, Any],
                                                  accumulation: int, steps: list[int]) -> None:
    """6 batches per epoch: 3 optimiser steps with accumulation 2; with 4, the epoch's last
    partial accumulation still makes a step (2 per epoch)."""
    recipe = with_train(base_recipe, grad_accumulation=accumulation, warmup_ratio=0.0)
    run = fitclass.train(recipe, out=tmp_path / "run")
    rows = history(run.path)
    assert rows["step"].tolist() == steps
    assert rows["epoch"].tolist() == [1.0, 2.0]
    # The linear schedule reaches 0 exactly at the last of the steps it was built for.
    assert rows["lr"].iloc[-1] == 0.0
    assert rows["lr"].iloc[0] == pytest.approx(base_recipe["train"]["lr"] / 2)


# --- early stopping -----------------------------------------------------------------------


@pytest.mark.parametrize(("patience", "evaluations"), [(1, 2), (2, 3)])
def test_early_stopping_when_metric_cannot_improve(tmp_path: Path, base_recipe: dict[str, Any],
                                                   patience: int, evaluations: int) -> None:
    # accuracy cannot rise by more than min_delta=1.0: no evaluation after the first counts
    # as an improvement, so training stops after `patience` more.
    recipe = with_train(base_recipe, epochs=6, select={"metric": "accuracy"},
                        early_stopping={"patience": patience, "min_delta": 1.0})
    run = fitclass.train(recipe, out=tmp_path / "run")
    rows = history(run.path)
    assert rows["step"].tolist() == [STEPS_PER_EPOCH * (i + 1) for i in range(evaluations)]
    # Selection still moves to a later evaluation that ties (accuracy no lower, a gain within
    # min_delta) with a lower validation loss.
    best = 0
    for row in range(1, evaluations):
        if (rows["accuracy"][row] >= rows["accuracy"][best]
                and rows["valid_loss"][row] < rows["valid_loss"][best]):
            best = row
    assert metrics(run.path)["select"]["step"] == rows["step"][best]
    assert rows["is_best"].iloc[0] and rows["is_best"].iloc[best]
    assert status(run.path)["status"] == "finished"


def test_early_stopping_with_a_frozen_model(tmp_path: Path, base_recipe: dict[str, Any]) -> None:
    # With a vanishing learning rate the predictions, hence accuracy, never change.
    recipe = with_train(base_recipe, epochs=5, lr=1e-12, select={"metric": "accuracy"},
                        early_stopping={"patience": 1})
    rows = history(fitclass.train(recipe, out=tmp_path / "run").path)
    assert len(rows) == 2 < 5
    assert rows["accuracy"].nunique() == 1


def test_without_early_stopping_every_epoch_runs(tmp_path: Path,
                                                 base_recipe: dict[str, Any]) -> None:
    recipe = with_train(base_recipe, epochs=3, lr=1e-12, select={"metric": "accuracy"})
    assert len(history(fitclass.train(recipe, out=tmp_path / "run").path)) == 3


# --- checkpoint selection -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["min", "max"])
def test_select_on_loss_picks_that_evaluation(tmp_path: Path, base_recipe: dict[str, Any],
                                              mode: str) -> None:
    recipe = with_train(base_recipe, epochs=3, eval_every=0.5, lr=5e-3,
                        select={"metric": "loss", "mode": mode})
    run = fitclass.train(recipe, out=tmp_path / "run")
    rows = history(run.path)
    pick = rows["valid_loss"].idxmin() if mode == "min" else rows["valid_loss"].idxmax()
    select = metrics(run.path)["select"]
    assert select["metric"] == "loss" and select["mode"] == mode
    assert select["step"] == rows["step"][pick]
    assert select["value"] == pytest.approx(rows["valid_loss"][pick])
    best_so_far = rows["valid_loss"].cummin() if mode == "min" else rows["valid_loss"].cummax()
    assert rows["is_best"].tolist() == (rows["valid_loss"] == best_so_far).tolist()
    # The saved model is the selected checkpoint, not the last one: its validation log loss
    # (plain cross-entropy, the training loss here) is the selected row's.
    assert metrics(run.path)["before_decision"]["log_loss"] == pytest.approx(
        rows["valid_loss"][pick], rel=1e-4)


def test_a_tie_on_the_metric_goes_to_the_lower_validation_loss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_recipe: dict[str, Any]) -> None:
    """Every checkpoint ties on accuracy (pinned here; coarse metrics on small validation
    sets tie often): the checkpoint with the lowest validation loss is kept, not the first."""
    real = finetune.evaluate

    def tied(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], np.ndarray]:
        metrics, probs = real(*args, **kwargs)
        return metrics | {"accuracy": 0.5}, probs

    monkeypatch.setattr(finetune, "evaluate", tied)
    run = fitclass.train(with_train(base_recipe, epochs=3, lr=5e-3,
                                    select={"metric": "accuracy"}), out=tmp_path / "run")
    rows = history(run.path)
    pick = rows["valid_loss"].idxmin()
    assert pick > 0  # the model learns: the first checkpoint is not the lowest loss
    select = metrics(run.path)["select"]
    assert select["step"] == rows["step"][pick] != rows["step"][0]
    assert select["valid_loss"] == pytest.approx(rows["valid_loss"][pick])
    assert rows["is_best"].tolist() == (rows["valid_loss"] == rows["valid_loss"].cummin()
                                        ).tolist()
    # the saved model is that checkpoint (log loss = the training criterion here)
    assert metrics(run.path)["before_decision"]["log_loss"] == pytest.approx(
        rows["valid_loss"][pick], rel=1e-4)


def stop_check_steps(recipe: dict[str, Any], out: Path) -> tuple[list[int], list[int]]:
    """(steps of the evaluations the listeners heard, steps the stop checks were asked)."""
    reporter = Reporter(enabled=False)
    heard: list[int] = []
    checked: list[int] = []
    reporter.listeners.append(lambda row: heard.append(row["step"]))
    reporter.stop_checks.append(lambda row: checked.append(row["step"]))
    fitclass.train(recipe, out=out, reporter=reporter)
    return heard, checked


def test_stop_checks_are_never_asked_after_the_last_evaluation(
        tmp_path: Path, base_recipe: dict[str, Any]) -> None:
    """A sweep's pruner is a stop check: pruning after the last evaluation saves nothing and
    would discard the finished result."""
    heard, checked = stop_check_steps(with_train(base_recipe, epochs=2, eval_every=0.5),
                                      tmp_path / "full")
    assert heard == [3, 6, 9, 12] and checked == [3, 6, 9]
    # early stopping ends the run at its second evaluation: that one is the last
    heard, checked = stop_check_steps(
        with_train(base_recipe, epochs=4, select={"metric": "accuracy"},
                   early_stopping={"patience": 1, "min_delta": 1.0}), tmp_path / "stopped")
    assert heard == [6, 12] and checked == [6]


def test_history_rows_carry_every_metric(tmp_path: Path, base_recipe: dict[str, Any]) -> None:
    rows = history(fitclass.train(base_recipe, out=tmp_path / "run").path)
    for column in ("step", "epoch", "train_loss", "lr", "train_samples_per_s", "valid_loss",
                   "loss", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "is_best"):
        assert column in rows.columns, column
    assert (rows["loss"] == rows["valid_loss"]).all()


# --- resume -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def still_bert_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without dropout: training is then a pure function of the seed and the
    batch order, so a resumed run must repeat an uninterrupted one exactly."""
    folder = tmp_path_factory.mktemp("still-bert")
    shutil.copytree(tiny_bert_dir, folder, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return folder


def interrupt_on_evaluation(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the `call`-th evaluation raise KeyboardInterrupt, as Ctrl-C would."""
    real = loop._evaluate
    calls = {"n": 0}

    def evaluate(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_evaluate", evaluate)


COMPARED = ["step", "epoch", "train_loss", "lr", "valid_loss", "accuracy", "macro_f1"]


def lazy_writes(patch: pytest.MonkeyPatch) -> None:
    """The most asynchronous writer: a background write starts only when someone waits
    for it, so every checkpoint is still unwritten until the next write or read."""
    permits = threading.Semaphore(0)
    real_flush, real_submit = writer.WRITER.flush, writer.WRITER.submit

    def flush() -> None:
        if writer.WRITER.busy:
            permits.release()
        real_flush()

    def submit(target: Path, write: Any) -> None:
        def held() -> None:
            assert permits.acquire(timeout=60)
            write()

        real_submit(target, held)

    patch.setattr(writer.WRITER, "background", True)  # on the CPU it would write in place
    patch.setattr(writer.WRITER, "flush", flush)
    patch.setattr(writer.WRITER, "submit", submit)


@pytest.mark.parametrize(("every", "cut", "steps", "lazy"), [
    (1, 2, [6, 12, 18], False),  # interrupted at an epoch boundary
    ("4 steps", 3, [4, 8, 12, 16, 18], False),  # mid-epoch: resume skips seen batches
    ("4 steps", 3, [4, 8, 12, 16, 18], True),  # each checkpoint unwritten until waited for
])
def test_resume_after_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                base_recipe: dict[str, Any], still_bert_dir: Path,
                                every: Any, cut: int, steps: list[int], lazy: bool) -> None:
    recipe = with_train({**base_recipe, "model": {**base_recipe["model"],
                                                  "backbone": str(still_bert_dir)}},
                        epochs=3, eval_every=every)
    full = fitclass.train(recipe, out=tmp_path / "full")

    path = tmp_path / "cut"
    with pytest.MonkeyPatch.context() as writes:
        if lazy:
            lazy_writes(writes)
        interrupt_on_evaluation(monkeypatch, cut)
        with pytest.raises(KeyboardInterrupt):
            fitclass.train(recipe, out=path)
        monkeypatch.undo()
        assert status(path)["status"] == "interrupted"
        # the interrupted fit let its last checkpoint write land before it unlocked the run
        assert not writer.WRITER.busy
        assert (path / "checkpoints" / "last").is_dir()
        assert not (path / "model").exists()

        resumed = fitclass.train({}, resume=path)  # reads the checkpoint once it is written
    assert resumed.path == path
    assert status(path)["status"] == "finished" and status(path)["resumed"] is True
    assert not (path / "checkpoints").exists()
    rows, expected = history(path), history(full.path)
    assert rows["step"].tolist() == steps
    # Same weights, optimiser, schedule and batch order: the same numbers as without the cut.
    assert np.allclose(rows[COMPARED].to_numpy(), expected[COMPARED].to_numpy(), atol=1e-5)
    assert metrics(path)["accuracy"] == pytest.approx(metrics(full.path)["accuracy"])


def test_unfinished_run_needs_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     base_recipe: dict[str, Any]) -> None:
    interrupt_on_evaluation(monkeypatch, 2)  # after the first evaluation's checkpoint
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fitclass.train(base_recipe, out=path)
    monkeypatch.undo()
    with pytest.raises(RunError, match=r"an unfinished run \(interrupted\) with a "
                                       r"checkpoint") as info:
        fitclass.train(base_recipe, out=path)
    assert f"--resume {path}" in str(info.value)
    with pytest.raises(RunError, match="--resume"):
        fitclass.load_run(path)
    # --overwrite starts again from scratch
    run = fitclass.train(base_recipe, out=path, overwrite=True)
    assert status(run.path)["status"] == "finished"
    assert len(history(run.path)) == 2


def test_resume_without_a_training_state_starts_over(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     base_recipe: dict[str, Any]) -> None:
    """Interrupted before the first evaluation saved anything: resume trains from step 0."""
    interrupt_on_evaluation(monkeypatch, 1)
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fitclass.train(base_recipe, out=path)
    monkeypatch.undo()
    assert not (path / "checkpoints" / "last").exists()
    fitclass.train(None, resume=path)  # type: ignore[arg-type]
    assert history(path)["step"].tolist() == [6, 12]


def test_resume_refuses_finished_and_foreign_folders(tmp_path: Path,
                                                     base_recipe: dict[str, Any]) -> None:
    run = fitclass.train(with_train(base_recipe, epochs=1), out=tmp_path / "run")
    with pytest.raises(RunError, match="already finished; nothing to resume"):
        fitclass.train({}, resume=run.path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(RunError, match="not a fitclass run directory"):
        fitclass.train({}, resume=foreign)


@pytest.mark.parametrize(("stages", "find_unused"), [
    (None, False),
    ([{"epochs": 1, "lr": 3e-3, "trainable": "head"},
      {"epochs": 1, "lr": 1e-3, "trainable": "all"}], True),
])
def test_ddp_searches_for_unused_parameters_only_when_stages_freeze(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_recipe: dict[str, Any],
        stages: Any, find_unused: bool) -> None:
    """The encoder's pooler (no forward reaches it) is frozen before DDP would wrap the
    module, so `find_unused_parameters` (a graph walk every step) is needed only for stages,
    which freeze parameters after the wrap."""
    seen: dict[str, Any] = {}
    real_make, real_prepare = finetune.make_accelerator, finetune.prepare

    def make(*args: Any, **kwargs: Any) -> Any:
        seen["find_unused"] = kwargs["find_unused"]
        return real_make(*args, **kwargs)

    def prepare(classifier: Any, *args: Any) -> Any:
        seen["pooler"] = [p.requires_grad for name, p in classifier.module.named_parameters()
                          if name.startswith("encoder.pooler.")]
        return real_prepare(classifier, *args)

    monkeypatch.setattr(finetune, "make_accelerator", make)
    monkeypatch.setattr(finetune, "prepare", prepare)
    recipe = with_train(base_recipe, epochs=1, **({"stages": stages} if stages else {}))
    fitclass.train(recipe, out=tmp_path / "run")
    assert seen["find_unused"] is find_unused
    assert seen["pooler"] and not any(seen["pooler"])
