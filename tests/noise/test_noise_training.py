"""Training under label noise: bootstrapping, soft targets, dynamics, audit actions,
self-training and co-teaching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

import fitclass
import fitclass.api
from fitclass.errors import RecipeError
from fitclass.noise import selftrain
from fitclass.recipe import CoteachingConfig, load_recipe
from fitclass.tasks import Task, make_task
from fitclass.training.coteaching import (
    class_wise_small_loss_rows,
    forget_rate,
    pick_rows,
    small_loss_rows,
)
from fitclass.training.dynamics import DynamicsRecorder
from fitclass.training.losses import LossSpec, make_loss, with_bootstrap

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]])
TARGETS = torch.tensor([0, 0, 1])  # row 1 and 2 disagree with the model
ML_LOGITS = torch.tensor([[1.0, -2.0, 0.3], [-0.5, 2.0, -1.0]])
ML_TARGETS = torch.tensor([[1, 0, 0], [0, 0, 1]])


pytestmark = pytest.mark.usefixtures("no_reports")


MULTICLASS = make_task("multiclass", ["a", "b", "c"])
MULTILABEL = make_task("multilabel", ["x", "y", "z"])


def spec(task: Task = MULTICLASS, **kwargs: Any) -> LossSpec:
    return LossSpec(task=task, priors=np.full(3, 1 / 3), **kwargs)


def hand_ce(logits: torch.Tensor, q: torch.Tensor) -> float:
    return float(-(q * torch.log_softmax(logits, 1)).sum(1).mean())


def hand_bce(logits: torch.Tensor, q: torch.Tensor) -> float:
    p = torch.sigmoid(logits)
    return float(-(q * torch.log(p) + (1 - q) * torch.log(1 - p)).mean())


# --- losses ------------------------------------------------------------------------------


def test_soft_multiclass_targets_in_ce() -> None:
    q = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    loss = make_loss("ce", spec())
    assert float(loss(LOGITS, q)) == pytest.approx(hand_ce(LOGITS, q), abs=1e-6)
    # one-hot rows as floats equal class indices
    onehot = F.one_hot(TARGETS, 3).float()
    assert float(loss(LOGITS, onehot)) == pytest.approx(float(loss(LOGITS, TARGETS)), abs=1e-6)
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(
        float(F.cross_entropy(LOGITS, TARGETS)), abs=1e-6)


def test_soft_targets_with_smoothing_and_weights() -> None:
    q = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    smoothed = make_loss("ce", spec(label_smoothing=0.3))
    q_smooth = q * 0.7 + 0.1
    assert float(smoothed(LOGITS, q)) == pytest.approx(hand_ce(LOGITS, q_smooth), abs=1e-6)
    weights = np.array([1.0, 2.0, 0.5])
    weighted = make_loss("ce", spec(weights=weights))
    w = torch.tensor(weights, dtype=torch.float32)
    per_row = -(q * w * torch.log_softmax(LOGITS, 1)).sum(1)
    expected = float(per_row.sum() / (q @ w).sum())
    assert float(weighted(LOGITS, q)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("beta", [0.2, 0.5])
def test_bootstrap_soft_multiclass(beta: float) -> None:
    loss = with_bootstrap(make_loss("ce", spec()), "soft", beta, MULTICLASS)
    q = (1 - beta) * F.one_hot(TARGETS, 3).float() + beta * torch.softmax(LOGITS, 1)
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(hand_ce(LOGITS, q), abs=1e-6)


def test_bootstrap_hard_multiclass() -> None:
    beta = 0.4
    loss = with_bootstrap(make_loss("ce", spec()), "hard", beta, MULTICLASS)
    predicted = F.one_hot(torch.tensor([0, 1, 2]), 3).float()  # argmax of LOGITS
    q = (1 - beta) * F.one_hot(TARGETS, 3).float() + beta * predicted
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(hand_ce(LOGITS, q), abs=1e-6)
    # row 0 agrees with its label: its target stays one-hot
    assert q[0].tolist() == [1.0, 0.0, 0.0]


def test_bootstrap_prediction_is_detached() -> None:
    """The gradient is softmax - q with q held constant (the model's own prediction is not
    differentiated through)."""
    beta = 0.3
    logits = LOGITS.clone().requires_grad_(True)
    loss = with_bootstrap(make_loss("ce", spec()), "soft", beta, MULTICLASS)
    loss(logits, TARGETS).backward()
    p = torch.softmax(LOGITS, 1)
    q = (1 - beta) * F.one_hot(TARGETS, 3).float() + beta * p
    assert logits.grad is not None
    torch.testing.assert_close(logits.grad, (p - q) / len(TARGETS))


def test_bootstrap_soft_input_targets() -> None:
    """Targets that are already probability rows are mixed as they are."""
    beta = 0.25
    given = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]])
    loss = with_bootstrap(make_loss("ce", spec()), "soft", beta, MULTICLASS)
    q = (1 - beta) * given + beta * torch.softmax(LOGITS, 1)
    assert float(loss(LOGITS, given)) == pytest.approx(hand_ce(LOGITS, q), abs=1e-6)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_bootstrap_multilabel(mode: str) -> None:
    beta = 0.3
    loss = with_bootstrap(make_loss("bce", spec(MULTILABEL)), mode, beta, MULTILABEL)
    predicted = torch.sigmoid(ML_LOGITS)
    if mode == "hard":
        predicted = (predicted > 0.5).float()
    q = (1 - beta) * ML_TARGETS.float() + beta * predicted
    assert float(loss(ML_LOGITS, ML_TARGETS)) == pytest.approx(hand_bce(ML_LOGITS, q),
                                                               abs=1e-6)
    if mode == "hard":  # row 0: predicted [1, 0, 1] vs given [1, 0, 0]
        assert q[0].tolist() == pytest.approx([1.0, 0.0, 0.3])


def test_bootstrap_beta_zero_is_the_plain_loss() -> None:
    plain = make_loss("ce", spec())
    loss = with_bootstrap(plain, "soft", 0.0, MULTICLASS)
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(float(plain(LOGITS, TARGETS)))


# --- dynamics ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_dynamics_recorder_hand_values() -> None:
    recorder = DynamicsRecorder(num_rows=4, epochs=2, task=make_task("multiclass", ["a", "b", "c"]))
    # epoch 0: rows 2, 0, 1 in that batch order; row 3 never seen
    recorder.record(0, torch.tensor([2, 0, 1]), LOGITS, TARGETS)
    # epoch 1: only row 0 and 1, with other logits
    second = torch.tensor([[1.0, 1.0, 0.0], [0.0, 4.0, 0.0]])
    recorder.record(1, torch.tensor([0, 1]), second, torch.tensor([2, 0]))
    log_p = torch.log_softmax(LOGITS, 1)
    arrays = recorder.arrays
    # row 2 got LOGITS[0] with target 0
    assert arrays["loss"][0, 2] == pytest.approx(float(-log_p[0, 0]), abs=1e-6)
    assert arrays["p_given"][0, 2] == pytest.approx(float(log_p[0, 0].exp()), abs=1e-6)
    assert arrays["margin"][0, 2] == pytest.approx(2.0)  # 2 - 0
    assert arrays["margin"][0, 0] == pytest.approx(0.5 - 1.5)  # given 0, best other 1
    assert arrays["margin"][0, 1] == pytest.approx(0.0 - 3.0)  # given 1, best other 2
    assert arrays["predicted"][0].tolist()[:3] == [1.0, 2.0, 0.0]
    assert arrays["margin"][1, 0] == pytest.approx(0.0 - 1.0)  # given 2
    assert arrays["margin"][1, 1] == pytest.approx(0.0 - 4.0)  # given 0
    assert np.isnan(arrays["loss"][1, 2]) and np.isnan(arrays["loss"][:, 3]).all()

    summary = recorder.summary(["a", "b", "c", "d"], ["x", "y", "z", "w"],
                               ["c0", "c1", "c2"])
    # lowest mean margin first; the unseen row (NaN) last
    assert summary["id"].tolist() == ["b", "a", "c", "d"]
    by_id = summary.set_index("id")
    assert by_id.loc["b", "margin_mean"] == pytest.approx(-3.5)
    assert by_id.loc["a", "margin_mean"] == pytest.approx(-1.0)
    assert by_id.loc["c", "margin_mean"] == pytest.approx(2.0)
    assert by_id.loc["a", "loss_mean"] == pytest.approx(
        (float(-log_p[1, 0]) + float(-torch.log_softmax(second, 1)[0, 2])) / 2, abs=1e-5)
    assert by_id["epochs_seen"].tolist() == [2, 2, 1, 0]
    assert by_id.loc["a", "last_predicted"] == "c0"  # epoch 1: tie 1.0/1.0 -> first
    assert by_id.loc["b", "last_predicted"] == "c1"
    assert by_id.loc["c", "last_predicted"] == "c0"
    assert by_id.loc["a", "given_label"] == "x"


def test_dynamics_recorder_multilabel() -> None:
    recorder = DynamicsRecorder(num_rows=2, epochs=1, task=make_task("multilabel", ["a", "b", "c"]))
    recorder.record(0, torch.tensor([0, 1]), ML_LOGITS, ML_TARGETS)
    y = ML_TARGETS.float()
    margin = ((2 * y - 1) * ML_LOGITS).mean(1)
    assert recorder.arrays["margin"][0] == pytest.approx(margin.numpy(), abs=1e-6)
    bce = F.binary_cross_entropy_with_logits(ML_LOGITS, y, reduction="none").mean(1)
    assert recorder.arrays["loss"][0] == pytest.approx(bce.numpy(), abs=1e-6)


# --- runs --------------------------------------------------------------------------------


def test_tiny_bert_run_writes_dynamics(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16})
    run = fitclass.train(recipe, out=tmp_path / "run")
    dynamics = pd.read_csv(run.path / "dynamics.csv", dtype={"id": str})
    valid_ids = set(pd.read_csv(run.path / "valid_predictions.csv", dtype={"id": str})["id"])
    all_ids = set(pd.read_csv(train_csv, dtype={"id": str})["id"])
    assert len(dynamics) == 90 == dynamics["id"].nunique()
    assert set(dynamics["id"]) == all_ids - valid_ids
    assert (dynamics["epochs_seen"] == 2).all()
    margins = dynamics["margin_mean"].tolist()
    assert margins == sorted(margins)
    assert dynamics["p_given_mean"].between(0, 1).all()
    assert {"loss_mean", "last_predicted", "text", "given_label"} <= set(dynamics.columns)
    source = pd.read_csv(train_csv, dtype={"id": str})
    texts = dict(zip(source["id"], source["text"], strict=True))
    assert all(texts[i] == t for i, t in zip(dynamics["id"], dynamics["text"], strict=True))


@pytest.fixture(scope="module")
def split_files(tmp_path_factory: pytest.TempPathFactory, synthetic_rows,
                table_writer) -> dict[str, Any]:
    """The synthetic rows as an explicit train (first 90) and valid (last 30) file."""
    folder = tmp_path_factory.mktemp("noise-action")
    train, valid = synthetic_rows[:90], synthetic_rows[90:]
    return {"folder": folder, "rows": train,
            "train": table_writer(train, folder / "train.csv"),
            "valid": table_writer(valid, folder / "valid.csv")}


def _other(label: str) -> str:
    return {"sports": "food", "tech": "food", "food": "sports"}[label]


def write_suspects(split_files: dict[str, Any], path: Path) -> dict[str, Any]:
    """Two rows at or above min_score 0.5, one below, one without a suggestion."""
    rows = split_files["rows"]
    picked = {"high": rows[0], "edge": rows[1], "low": rows[2], "blank": rows[3]}
    scores = {"high": 0.9, "edge": 0.5, "low": 0.49, "blank": 0.8}
    frame = pd.DataFrame([{
        "id": row["id"], "text": row["text"], "given_label": row["label"],
        "suggested_label": "" if key == "blank" else _other(row["label"]),
        "score": scores[key], "methods": "confident_learning"} for key, row in picked.items()])
    frame.to_csv(path, index=False)
    return picked


def train_counts(run: fitclass.Run) -> dict[str, int]:
    labels = json.loads((run.path / "labels.json").read_text())
    return dict(zip(labels["classes"], labels["train_counts"], strict=True))


@pytest.mark.parametrize("action", ["drop", "relabel"])
def test_noise_action(tmp_path: Path, split_files: dict[str, Any], recipe_for,
                      action: str) -> None:
    suspects = tmp_path / "suspects.csv"
    picked = write_suspects(split_files, suspects)
    recipe = recipe_for("tfidf", split_files["train"],
                        data={"valid": str(split_files["valid"])},
                        noise={"action": action, "suspects": str(suspects), "min_score": 0.5})
    run = fitclass.train(recipe, out=tmp_path / "run")
    changes = pd.read_csv(run.path / "noise_changes.csv", dtype={"id": str},
                          keep_default_na=False)
    changed = dict(zip(changes["id"], changes["action"], strict=True))
    expected_actions = {"high": action, "edge": action, "blank": "drop"}
    assert changed == {picked[k]["id"]: v for k, v in expected_actions.items()}
    assert picked["low"]["id"] not in changed
    by_id = changes.set_index("id")
    for key in ("high", "edge", "blank"):
        assert by_id.loc[picked[key]["id"], "given_label"] == picked[key]["label"]
    assert by_id.loc[picked["high"]["id"], "score"] == pytest.approx(0.9)

    original: dict[str, int] = {}
    for row in split_files["rows"]:
        original[row["label"]] = original.get(row["label"], 0) + 1
    counts = train_counts(run)
    expected = dict(original)
    expected[picked["blank"]["label"]] -= 1  # no suggestion: dropped in both modes
    for key in ("high", "edge"):
        expected[picked[key]["label"]] -= 1
        if action == "relabel":
            expected[_other(picked[key]["label"])] += 1
            assert by_id.loc[picked[key]["id"], "new_label"] == _other(picked[key]["label"])
    assert counts == expected
    assert sum(counts.values()) == (87 if action == "drop" else 89)
    # the explicit validation file is left alone
    assert len(pd.read_csv(run.path / "valid_predictions.csv")) == 30


def test_noise_action_on_a_split_changes_validation_rows_too(
        tmp_path: Path, train_csv: Path, synthetic_rows, recipe_for) -> None:
    suspects = tmp_path / "suspects.csv"
    chosen = synthetic_rows[:12]
    pd.DataFrame([{"id": r["id"], "suggested_label": _other(r["label"]), "score": 0.9}
                  for r in chosen]).to_csv(suspects, index=False)
    recipe = recipe_for("tfidf", train_csv,
                        noise={"action": "drop", "suspects": str(suspects)})
    run = fitclass.train(recipe, out=tmp_path / "run")
    valid_ids = set(pd.read_csv(run.path / "valid_predictions.csv", dtype={"id": str})["id"])
    assert not valid_ids & {r["id"] for r in chosen}
    assert sum(train_counts(run).values()) + len(valid_ids) == 120 - 12
    changes = pd.read_csv(run.path / "noise_changes.csv", dtype={"id": str})
    assert sorted(changes["id"]) == sorted(r["id"] for r in chosen)


# --- self-training -----------------------------------------------------------------------

CLEAR = {
    "sports": ["football goal match team score coach", "coach team football goal match",
               "score goal team coach football", "match football score team goal"],
    "tech": ["computer software laptop code internet server",
             "server code laptop software computer", "internet laptop computer code software"],
    "food": ["pizza recipe cheese soup bread kitchen", "kitchen bread soup cheese pizza recipe"],
}
GIBBERISH = ["zzz qqq xxx", "lorem ipsum dolor", "blorp snarf", "quux wibble", "the a we",
             "today the story"]


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory, table_writer) -> Path:
    rows = [{"id": f"u{i}", "text": text} for i, text in
            enumerate([t for texts in CLEAR.values() for t in texts] + GIBBERISH)]
    return table_writer(rows, tmp_path_factory.mktemp("unlabelled") / "unlabelled.csv")


def spy_pseudo_labels(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    added: list[list[str]] = []
    original = selftrain.add_pseudo_labels

    def spy(train, unlabelled, rows, predicted, class_names):  # type: ignore[no-untyped-def]
        table = original(train, unlabelled, rows, predicted, class_names)
        added.append([str(t) for t in table.texts[len(train):]])
        return table

    monkeypatch.setattr(selftrain, "add_pseudo_labels", spy)
    return added


def test_self_training_adds_only_confident_rows(tmp_path: Path, train_csv: Path, recipe_for,
                                                unlabelled: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    added = spy_pseudo_labels(monkeypatch)
    recipe = recipe_for("tfidf", train_csv, self_training={
        "unlabelled": str(unlabelled), "tau": 0.9, "max_per_class": 100, "rounds": 2})
    run = fitclass.train(recipe, out=tmp_path / "run")
    rounds = json.loads((run.path / "self_training.json").read_text())
    assert rounds[0]["round"] == 1
    assert rounds[0]["added_per_class"] == {name: len(texts) for name, texts in CLEAR.items()}
    assert rounds[0]["added"] == 9
    # nothing confident is left for round 2: it adds nothing and stops
    assert rounds[1:] == [{"round": 2, "added": 0,
                           "added_per_class": {"food": 0, "sports": 0, "tech": 0}}]
    clear = {t for texts in CLEAR.values() for t in texts}
    assert len(added) == 1 and set(added[0]) == clear
    assert not set(added[0]) & set(GIBBERISH)


def test_self_training_max_per_class_caps(tmp_path: Path, train_csv: Path, recipe_for,
                                          unlabelled: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    added = spy_pseudo_labels(monkeypatch)
    recipe = recipe_for("tfidf", train_csv, self_training={
        "unlabelled": str(unlabelled), "tau": 0.9, "max_per_class": 2})
    run = fitclass.train(recipe, out=tmp_path / "run")
    rounds = json.loads((run.path / "self_training.json").read_text())
    assert rounds == [{"round": 1, "added": 6,
                       "added_per_class": {"food": 2, "sports": 2, "tech": 2}}]
    assert len(added[0]) == 6 and set(added[0]) <= {t for ts in CLEAR.values() for t in ts}


def test_select_confident_caps_and_orders() -> None:
    from fitclass.recipe import SelfTrainingConfig

    probs = np.array([[0.95, 0.05], [0.99, 0.01], [0.6, 0.4], [0.02, 0.98], [0.97, 0.03]])
    config = SelfTrainingConfig(unlabelled=Path("u.csv"), tau=0.9, max_per_class=2)
    taken = np.zeros(5, dtype=bool)
    chosen = selftrain.select_confident(probs, taken, config, ["a", "b"], np.array([5, 5]))
    assert chosen.tolist() == [1, 4, 3]  # most confident first, class a capped at 2
    taken[[1]] = True
    chosen = selftrain.select_confident(probs, taken, config, ["a", "b"], np.array([5, 5]))
    assert chosen.tolist() == [4, 0, 3]
    per_class = SelfTrainingConfig(unlabelled=Path("u.csv"), tau={"b": 0.99},
                                   max_per_class=10)
    chosen = selftrain.select_confident(probs, np.zeros(5, dtype=bool), per_class, ["a", "b"],
                                        np.array([5, 5]))
    assert chosen.tolist() == [1, 4, 0]  # b's row (0.98) misses its 0.99 threshold


# --- co-teaching -------------------------------------------------------------------------


def test_forget_rate_schedule() -> None:
    config = CoteachingConfig(forget_rate=0.2, ramp_epochs=2.0)
    assert [forget_rate(config, e) for e in (0.0, 0.5, 1.0, 2.0, 3.5)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.2, 0.2])
    assert forget_rate(CoteachingConfig(forget_rate=0.4, ramp_epochs=0.5), 0.25) == \
        pytest.approx(0.2)


def test_small_loss_rows() -> None:
    losses = torch.tensor([0.5, 0.1, 2.0, 0.3])
    assert small_loss_rows(losses, 2).tolist() == [1, 3]
    assert small_loss_rows(losses, 4).tolist() == [1, 3, 0, 2]


def test_class_wise_selection_keeps_a_rare_class() -> None:
    """Class 1 is rare and high-loss: a batch-wide cut at rate 0.5 drops both its rows,
    the class-wise cut keeps its smaller-loss row and half of class 0."""
    losses = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 3.0, 2.0])
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    batch_wide = pick_rows(losses, labels, 0.5, CoteachingConfig(per_class=False), False)
    assert batch_wide.tolist() == [0, 1, 2, 3, 4]  # 5 of 10 rows, none of class 1
    class_wise = pick_rows(losses, labels, 0.5, CoteachingConfig(), False)
    assert class_wise.tolist() == [0, 1, 2, 3, 9]  # 4 of 8 class-0 rows, 1 of 2 rare
    assert class_wise_small_loss_rows(losses, labels, 0.0).tolist() == list(range(10))
    multilabel = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert pick_rows(losses[:4], multilabel, 0.5, CoteachingConfig(), True).tolist() == [0, 1]


def test_coteaching_run(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    recipe = recipe_for("tiny_bert", train_csv,
                        train={"epochs": 2, "batch_size": 16, "eval_every": 0.5},
                        noise={"coteaching": {"forget_rate": 0.3, "ramp_epochs": 1.0}})
    run = fitclass.train(recipe, out=tmp_path / "run")
    history = pd.read_csv(run.path / "history.csv")
    rates = history["forget_rate"].tolist()
    assert len(rates) >= 3
    assert rates == sorted(rates)
    assert rates[0] < 0.3 and rates[-1] == pytest.approx(0.3)
    assert {"macro_f1_a", "macro_f1_b", "is_best"} <= set(history.columns)
    assert history["is_best"].sum() == 1
    select = run.metrics["select"]
    assert select["network"] in ("a", "b")
    best = history.loc[history["is_best"], f"macro_f1_{select['network']}"].item()
    assert select["value"] == pytest.approx(best)
    assert run.predict(["football goal today"])["label"].iloc[0] in ("food", "sports", "tech")


# --- recipe errors -----------------------------------------------------------------------


def test_noise_action_needs_suspects(train_csv: Path, recipe_for) -> None:
    with pytest.raises(RecipeError, match=r"noise\.suspects"):
        load_recipe(recipe_for("tfidf", train_csv, noise={"action": "drop"}))


def test_coteaching_needs_a_neural_backbone(train_csv: Path, recipe_for) -> None:
    with pytest.raises(RecipeError, match="coteaching"):
        load_recipe(recipe_for("tfidf", train_csv, noise={"coteaching": {}}))


def test_missing_suspects_file_is_a_data_error(tmp_path: Path, train_csv: Path,
                                               recipe_for) -> None:
    recipe = recipe_for("tfidf", train_csv, noise={"action": "relabel",
                                                   "suspects": str(tmp_path / "none.csv")})
    with pytest.raises(fitclass.DataError, match="fitclass audit"):
        fitclass.train(recipe, out=tmp_path / "run")
