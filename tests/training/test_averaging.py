"""Weight averaging: the mean of state dicts, SWA member choice, BatchNorm recalibration,
the EMA update, the greedy soup, and averaged runs on the tiny BERT."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import fitclass
from fitclass import api
from fitclass.recipe import AveragingConfig, EmaConfig, SwaConfig
from fitclass.runs.folder import RunDir
from fitclass.training.averaging import (
    Averager,
    Snapshot,
    average,
    recalibrate_batchnorm,
)

# --- averaging state dicts ----------------------------------------------------------------


def test_average_is_the_elementwise_mean() -> None:
    states = [
        {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.0, 1.0])},
        {"w": torch.tensor([[3.0, 2.0], [1.0, 0.0]]), "b": torch.tensor([3.0, -1.0])},
        {"w": torch.tensor([[2.0, 5.0], [2.0, 2.0]]), "b": torch.tensor([6.0, 3.0])},
    ]
    mean = average(states)
    assert set(mean) == {"w", "b"}
    assert torch.allclose(mean["w"], torch.tensor([[2.0, 3.0], [2.0, 2.0]]))
    assert torch.allclose(mean["b"], torch.tensor([3.0, 1.0]))
    assert torch.equal(average(states[:1])["w"], states[0]["w"])


# --- which checkpoints SWA averages -------------------------------------------------------


def averager(tmp_path: Path, mode: str = "max", **config: Any) -> Averager:
    return Averager(AveragingConfig(**config), RunDir(tmp_path), mode)


def snapshots(tmp_path: Path) -> list[Snapshot]:
    values = [(6, 1.0, 0.5), (12, 2.0, 0.9), (18, 3.0, 0.7), (24, 4.0, None), (30, 5.0, 0.8)]
    return [Snapshot(step, epoch, value, tmp_path / f"step-{step}.safetensors")
            for step, epoch, value in values]


@pytest.mark.parametrize(("swa", "mode", "steps"), [
    ({"k": 2, "pick": "last"}, "max", [24, 30]),
    ({"k": 3, "pick": "last"}, "max", [18, 24, 30]),
    ({"k": 2, "pick": "top"}, "max", [12, 30]),  # 0.9 and 0.8, in step order
    ({"k": 2, "pick": "top"}, "min", [6, 18]),  # 0.5 and 0.7; unevaluated ones never
    ({"k": 3, "pick": "top"}, "max", [12, 18, 30]),
    ({"k": 2, "pick": "top", "from_epoch": 3.0}, "max", [18, 30]),
    ({"k": 2, "pick": "top", "from_epoch": 3.0}, "min", [18, 30]),
    ({"k": 4, "pick": "last", "from_epoch": 2.0}, "max", [12, 18, 24, 30]),
    ({"k": 5, "pick": "last", "from_epoch": 4.5}, "max", [30]),
])
def test_swa_members(tmp_path: Path, swa: dict[str, Any], mode: str,
                     steps: list[int]) -> None:
    averaging = averager(tmp_path, mode, swa=SwaConfig(**swa))
    averaging.snapshots = snapshots(tmp_path)
    assert [s.step for s in averaging.swa_members()] == steps


# --- BatchNorm recalibration --------------------------------------------------------------


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


def stale_net() -> tuple[BatchNormNet, torch.Tensor]:
    net = BatchNormNet()
    net.norm.running_mean.fill_(100.0)
    net.norm.running_var.fill_(50.0)
    net.eval()
    data = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)) * 3 + 2
    return net, data


def test_recalibrate_batchnorm_sets_statistics_of_the_data() -> None:
    net, data = stale_net()
    recalibrate_batchnorm(net, [{"x": data}])
    with torch.no_grad():
        hidden = net.linear(data)
    assert torch.allclose(net.norm.running_mean, hidden.mean(0), atol=1e-5)
    assert torch.allclose(net.norm.running_var, hidden.var(0, unbiased=True), atol=1e-4)
    assert net.norm.momentum == 0.1  # restored
    assert not net.training  # mode restored


def test_recalibrate_batchnorm_averages_over_batches() -> None:
    """momentum None: a cumulative average of the batch statistics, not an EMA."""
    net, data = stale_net()
    first, second = data[:20], data[20:]
    recalibrate_batchnorm(net, [{"x": first}, {"x": second}])
    with torch.no_grad():
        a, b = net.linear(first), net.linear(second)
    assert torch.allclose(net.norm.running_mean, (a.mean(0) + b.mean(0)) / 2, atol=1e-5)
    assert torch.allclose(net.norm.running_var, (a.var(0) + b.var(0)) / 2, atol=1e-4)
    assert int(net.norm.num_batches_tracked) == 2


# --- EMA ----------------------------------------------------------------------------------


def set_linear(module: nn.Linear, weight: float, bias: float) -> None:
    with torch.no_grad():
        module.weight.fill_(weight)
        module.bias.fill_(bias)


def test_ema_update_without_warmup(tmp_path: Path) -> None:
    averaging = averager(tmp_path, ema=EmaConfig(decay=0.8, warmup=False))
    linear = nn.Linear(2, 1)
    steps = [(1.0, 0.0), (2.0, 10.0), (4.0, -5.0), (0.0, 1.0)]
    weight, bias = steps[0]  # the first step starts the average
    for w, b in steps[1:]:
        weight, bias = 0.8 * weight + 0.2 * w, 0.8 * bias + 0.2 * b
    for w, b in steps:
        set_linear(linear, w, b)
        averaging.after_step(linear)
    assert averaging.ema is not None
    assert averaging.ema_updates == 3
    assert torch.allclose(averaging.ema["weight"], torch.full((1, 2), weight))
    assert torch.allclose(averaging.ema["bias"], torch.full((1,), bias))
    # by hand: 0.8 * (0.8 * (0.8 * 1 + 0.2 * 2) + 0.2 * 4) + 0.2 * 0
    assert weight == pytest.approx(0.8 * (0.8 * (0.8 + 0.4) + 0.8))
    # the average is a copy: the module keeps its own weights
    assert torch.equal(linear.weight, torch.zeros(1, 2))


def test_ema_warmup_caps_the_decay_early(tmp_path: Path) -> None:
    averaging = averager(tmp_path, ema=EmaConfig(decay=0.999, warmup=True))
    linear = nn.Linear(1, 1)
    set_linear(linear, 1.0, 0.0)
    averaging.after_step(linear)
    set_linear(linear, 12.0, 0.0)
    averaging.after_step(linear)  # update 1: decay min(0.999, 2 / 11)
    assert averaging.ema is not None
    assert averaging.ema["weight"].item() == pytest.approx(2 / 11 * 1.0 + 9 / 11 * 12.0)


def test_no_ema_configured_keeps_nothing(tmp_path: Path) -> None:
    averaging = averager(tmp_path, swa=SwaConfig(k=2))
    averaging.after_step(nn.Linear(1, 1))
    assert averaging.ema is None


# --- greedy soup --------------------------------------------------------------------------


TARGET = 1.0


def closeness(module: nn.Module) -> float:
    """A stand-in validation metric: higher the closer the single weight is to TARGET."""
    return -abs(float(module.weight.item()) - TARGET)


def soup_averager(tmp_path: Path, weights: dict[int, float], mode: str = "max") -> Averager:
    averaging = averager(tmp_path, mode, soup=True)
    for step, weight in weights.items():
        path = tmp_path / f"step-{step}.safetensors"
        save_file({"weight": torch.tensor([[weight]])}, str(path))
        value = -abs(weight - TARGET) if mode == "max" else abs(weight - TARGET)
        averaging.snapshots.append(Snapshot(step, float(step), value, path))
    return averaging


def test_greedy_soup_adds_a_checkpoint_only_when_it_does_not_hurt(tmp_path: Path) -> None:
    # ranked best first: 40 (1.1), 20 (0.8), 10 (1.4), 30 (3.0)
    averaging = soup_averager(tmp_path, {10: 1.4, 20: 0.8, 30: 3.0, 40: 1.1})
    module = nn.Linear(1, 1, bias=False)
    steps, score = averaging.greedy_soup(module, closeness)
    # 40 + 20 -> 0.95 (better: joins); + 10 -> 1.1 (worse); + 30 -> 1.63 (worse)
    assert steps == [40, 20]
    assert score == pytest.approx(-0.05, abs=1e-6)
    assert module.weight.item() == pytest.approx(0.95, abs=1e-6)


def test_greedy_soup_in_min_mode(tmp_path: Path) -> None:
    averaging = soup_averager(tmp_path, {10: 1.4, 20: 0.8, 30: 3.0, 40: 1.1}, mode="min")
    module = nn.Linear(1, 1, bias=False)
    steps, score = averaging.greedy_soup(module, lambda m: -closeness(m))
    assert steps == [40, 20]
    assert score == pytest.approx(0.05, abs=1e-6)


def test_greedy_soup_ties_join_and_unevaluated_trials_do_not(tmp_path: Path) -> None:
    weights = {10: 1.4, 20: 0.8, 30: 3.0}
    module = nn.Linear(1, 1, bias=False)
    steps, _ = soup_averager(tmp_path, weights).greedy_soup(module, lambda m: 0.0)
    assert sorted(steps) == [10, 20, 30]  # every trial ties with the score: all join
    assert module.weight.item() == pytest.approx((1.4 + 0.8 + 3.0) / 3, abs=1e-6)
    steps, score = soup_averager(tmp_path, weights).greedy_soup(module, lambda m: None)
    assert steps == [20] and score == pytest.approx(-0.2)  # the best snapshot alone
    assert module.weight.item() == pytest.approx(0.8)


def test_greedy_soup_of_nothing(tmp_path: Path) -> None:
    averaging = averager(tmp_path, soup=True)
    assert averaging.greedy_soup(nn.Linear(1, 1), closeness) == ([], None)


# --- averaged runs on the tiny BERT -------------------------------------------------------
# 90 training rows, batch 16: 6 steps per epoch; evaluations at steps 6, 12 and 18.


def averaged_recipe(recipe_for: Callable[..., dict[str, Any]], train_csv: Path,
                    averaging: dict[str, Any]) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv, train={"epochs": 3, "batch_size": 16},
                      averaging=averaging)


def select_record(run_path: Path) -> dict[str, Any]:
    return json.loads((run_path / "metrics.json").read_text())["select"]


def better(a: float | None, b: float | None) -> bool:  # macro_f1: higher is better
    return a is not None and (b is None or a > b)


def test_swa_ema_and_soup_are_recorded(tmp_path: Path, train_csv: Path,
                                       recipe_for: Callable[..., dict[str, Any]]) -> None:
    recipe = averaged_recipe(recipe_for, train_csv, {
        "swa": {"k": 2, "keep": "always"}, "ema": {"decay": 0.9}, "soup": True})
    run = fitclass.train(recipe, out=tmp_path / "run")
    select = select_record(run.path)
    record = select["averaging"]
    assert record["best_checkpoint"] == select["value"]
    assert record["swa"]["steps"] == [12, 18]  # the last two evaluations
    assert isinstance(record["swa"]["value"], float)
    assert isinstance(record["ema"]["value"], float) and record["ema"]["decay"] == 0.9
    assert record["soup"]["steps"] and set(record["soup"]["steps"]) <= {6, 12, 18}
    assert isinstance(record["soup"]["value"], float)
    # keep: always takes SWA, unless the EMA or then the soup is strictly better
    final, value = "swa", record["swa"]["value"]
    if better(record["ema"]["value"], value):
        final, value = "ema", record["ema"]["value"]
    if better(record["soup"]["value"], value):
        final, value = "soup", record["soup"]["value"]
    assert record["final"] == final
    assert record["final_value"] == pytest.approx(value)
    history = pd.read_csv(run.path / "history.csv")
    assert history["step"].tolist() == [6, 12, 18]
    assert history["ema_macro_f1"].notna().all()
    assert max(history["ema_macro_f1"]) == pytest.approx(record["ema"]["value"])
    assert not (run.path / "checkpoints").exists()  # cleaned up after a finished run


def test_swa_keep_always_saves_the_average_of_the_last_checkpoints(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.rmtree

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name != "checkpoints":  # keep the evaluated checkpoints to check
            real(path, *args, **kwargs)

    monkeypatch.setattr(api.shutil, "rmtree", rmtree)
    recipe = averaged_recipe(recipe_for, train_csv, {"swa": {"k": 2, "keep": "always"}})
    run = fitclass.train(recipe, out=tmp_path / "run")
    record = select_record(run.path)["averaging"]
    assert record["final"] == "swa"
    assert record["swa"]["steps"] == [12, 18]
    assert "ema" not in record and "soup" not in record
    evals = run.path / "checkpoints" / "evals"
    # pick: last without a soup keeps only the last k snapshots on disk
    assert sorted(p.name for p in evals.iterdir()) == ["step-12.safetensors",
                                                        "step-18.safetensors"]
    first = load_file(str(evals / "step-12.safetensors"))
    second = load_file(str(evals / "step-18.safetensors"))
    model = load_file(str(run.path / "model" / "model.safetensors"))
    best = load_file(str(run.path / "checkpoints" / "best" / "model.safetensors"))
    assert set(model) == set(first)
    for key, tensor in model.items():
        assert torch.allclose(tensor, (first[key] + second[key]) / 2, atol=1e-7), key
    assert any(not torch.equal(model[k], best[k]) for k in model)  # not the best checkpoint
    assert any(not torch.equal(first[k], second[k]) for k in first)

