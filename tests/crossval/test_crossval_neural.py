"""`--folds` with `--seeds` and `--refit` on a neural backbone (the tiny BERT): N x K fold
runs whose out-of-fold probabilities are averaged over seeds, and a refit that trains on
every labelled row exactly once per epoch for the median best epoch of the folds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fitclass
from fitclass.data.prepare import prepare_data
from fitclass.runs import readers
from fitclass.runs.run import load_run
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.strategy import StepOutput

pytestmark = pytest.mark.usefixtures("no_reports")


class RowSpy(Callback):
    """The training row positions of each epoch of the latest fit."""

    def __init__(self) -> None:
        self.rows: dict[int, list[int]] = defaultdict(list)

    def on_train_begin(self, state: LoopState) -> None:
        self.rows = defaultdict(list)

    def on_batch_end(self, state: LoopState, output: StepOutput) -> None:
        assert output.positions is not None
        self.rows[state.epoch].extend(int(p) for p in output.positions.tolist())


@pytest.fixture(scope="module")
def spied(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
          recipe_for: Callable[..., dict[str, Any]]) -> tuple[Path, RowSpy]:
    out = tmp_path_factory.mktemp("neural-cv") / "out"
    spy = RowSpy()
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16,
                                                       "log_every": 1})
    fitclass.train(recipe, out=out, folds=2, seeds=2, refit=True, callbacks=[spy])
    return out, spy


def test_seeds_times_folds_member_runs(spied: tuple[Path, RowSpy]) -> None:
    out, _ = spied
    names = sorted(p.name for p in out.glob("fold-*"))
    assert names == ["fold-0-seed-0", "fold-0-seed-1", "fold-1-seed-0", "fold-1-seed-1"]
    run = load_run(out)
    assert len(run.classifier.member_paths()) == 4
    assert run.metrics["crossval"]["seeds"] == 2 and run.metrics["crossval"]["k"] == 2
    # a row's out-of-fold probabilities are the mean over the seeds of its fold
    arrays = readers.read_oof_arrays(run.dir)
    oof = readers.read_oof(run.dir)
    assert oof is not None
    row = int(np.flatnonzero(oof["fold"].to_numpy() == 1)[0])
    seeds = [load_run(out / f"fold-1-seed-{s}") for s in (0, 1)]
    raw = [readers.read_valid_arrays(m.dir)["raw"] for m in seeds]
    position = list(readers.read_valid_predictions(seeds[0].dir).iloc[:, 0]).index(
        oof["id"].iloc[row])
    assert not np.allclose(raw[0][position], raw[1][position])  # the seeds differ
    np.testing.assert_allclose(arrays["raw"][row],
                               np.mean([r[position] for r in raw], axis=0), atol=1e-5)


def test_refit_trains_every_row_once_per_epoch(spied: tuple[Path, RowSpy]) -> None:
    out, spy = spied
    refit = load_run(out / "refit")
    epochs = refit.metrics["refit"]["epochs"]
    best = load_run(out).metrics["crossval"]["best_epochs"]
    assert epochs == int(np.ceil(np.median(best)))
    assert refit.recipe.train.epochs == epochs
    prepared = prepare_data(refit.recipe.data)
    assert len(prepared.train) == 120 and len(prepared.valid) == 0
    assert sorted(spy.rows) == list(range(epochs))  # the last fit the spy heard: the refit
    for epoch in range(epochs):
        assert sorted(spy.rows[epoch]) == list(range(120))  # each row exactly once
    assert refit.metrics["select"]["weights"].startswith("final (no validation rows")
