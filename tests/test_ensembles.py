"""Ensembles: combiners on arrays, `fitclass.ensemble` on runs, seed ensembles, and the
classical linear heads that make cheap, diverse members."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

import fitclass
import fitclass.api
from fitclass.decide import combiners
from fitclass.decide.folds import cross_fit_folds
from fitclass.errors import FitclassError, RunError
from fitclass.models.classical import LinearTextClassifier, TfidfBackbone
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.linear_heads import fit_head, log_count_ratio
from fitclass.registry import Registry
from fitclass.target_kinds import MULTICLASS

#: Combiners are cross-fitted on a score; log loss is cheap, a full metrics dict per greedy
#: round (macro_f1, the default) costs seconds even on 30 validation rows.
FAST_METRIC = "log_loss"
PROBE_TEXTS = ["football goal for the team", "my laptop runs new software",
               "pizza with cheese in the kitchen", "a story about the city"]


pytestmark = pytest.mark.usefixtures("no_reports")


# --- combiners on synthetic member probabilities ----------------------------------------


def _peaked(targets: np.ndarray, strength: float, rng: np.random.Generator,
            classes: int = 3) -> np.ndarray:
    logits = rng.normal(size=(len(targets), classes))
    logits[np.arange(len(targets)), targets] += strength
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    """(members, rows, classes) probabilities: a good, a weak and a useless member."""
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, size=240)
    members = np.stack([_peaked(targets, 3.0, rng), _peaked(targets, 1.0, rng),
                        _peaked(targets, 0.0, rng)])
    return members, targets


def accuracy(targets: np.ndarray, probs: np.ndarray) -> float:
    return float((probs.argmax(1) == targets).mean())


def test_mean_is_the_hand_average(synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    members, targets = synthetic
    combiner = combiners.fit_mean(members, targets, accuracy, MULTICLASS)
    np.testing.assert_allclose(combiner.combine(members), (members[0] + members[1]
                                                           + members[2]) / 3, atol=1e-12)


@pytest.mark.parametrize("method", ["weighted", "greedy", "best"])
def test_weights_on_the_simplex(synthetic: tuple[np.ndarray, np.ndarray], method: str) -> None:
    members, targets = synthetic
    combiner = combiners.METHODS.get(method)(members, targets, accuracy, MULTICLASS)
    assert combiner.weights.shape == (3,)
    assert (combiner.weights >= 0).all()
    assert combiner.weights.sum() == pytest.approx(1.0)
    assert int(np.argmax(combiner.weights)) == 0  # the good member weighs most
    combined = combiner.combine(members)
    np.testing.assert_allclose(combined, np.tensordot(combiner.weights, members, axes=1))
    assert combined.sum(1) == pytest.approx(1.0)


def test_weighted_metric_objective_stays_on_the_simplex(
        synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    members, targets = synthetic
    combiner = combiners.fit_weighted(members, targets, accuracy, MULTICLASS,
                                      objective="metric", samples=50)
    assert (combiner.weights >= 0).all() and combiner.weights.sum() == pytest.approx(1.0)
    start = combiners.fit_weighted(members, targets, accuracy, MULTICLASS)
    assert accuracy(targets, combiner.combine(members)) >= accuracy(targets,
                                                                   start.combine(members))


def test_weighted_beats_the_mean_on_its_own_rows(
        synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    members, targets = synthetic
    weighted = combiners.fit_weighted(members, targets, accuracy, MULTICLASS)
    mean = combiners.fit_mean(members, targets, accuracy, MULTICLASS)
    weighted_loss = MULTICLASS.log_loss(targets, weighted.combine(members))
    mean_loss = MULTICLASS.log_loss(targets, mean.combine(members))
    assert weighted_loss <= mean_loss + 1e-9
    assert weighted_loss < mean_loss - 0.01  # a useless member is worth down-weighting


def test_stacking_probabilities(synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    members, targets = synthetic
    stacked = combiners.fit_stacking(members, targets, accuracy, MULTICLASS)
    probs = stacked.combine(members)
    assert probs.shape == members[0].shape
    assert probs.sum(1) == pytest.approx(1.0)
    assert accuracy(targets, probs) >= accuracy(targets, members[0]) - 0.02
    restored = combiners.Combiner.from_dict(json.loads(json.dumps(stacked.to_dict())))
    np.testing.assert_allclose(restored.combine(members), probs)


def with_stacking(fit: Any) -> Registry[Any]:
    """The combiner registry with `stacking` fitted by `fit` (for spying on cross-fitting)."""
    registry: Registry[Any] = Registry("combiner", "ensemble method")
    for name, entry in combiners.METHODS.items():
        registry.add(name, entry)
    registry.add("stacking", fit)
    return registry


def test_cross_fit_stacking_never_scores_its_own_rows(
        synthetic: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    members, targets = synthetic
    # every row is identifiable by its probabilities
    fingerprint = {members[:, row].tobytes(): row for row in range(len(targets))}
    calls: list[dict[str, set[int]]] = []
    real = combiners.fit_stacking

    class Spy:
        def __init__(self, inner: combiners.Combiner, record: dict[str, set[int]]) -> None:
            self.inner, self.record = inner, record

        def combine(self, member_probs: np.ndarray) -> np.ndarray:
            self.record["scored"] |= {fingerprint[member_probs[:, r].tobytes()]
                                      for r in range(member_probs.shape[1])}
            return self.inner.combine(member_probs)

    def spy_fit(member_probs: np.ndarray, fit_targets: np.ndarray, score: Any, kind: Any,
                **options: Any) -> Spy:
        record = {"fitted": {fingerprint[member_probs[:, r].tobytes()]
                             for r in range(member_probs.shape[1])}, "scored": set()}
        calls.append(record)
        return Spy(real(member_probs, fit_targets, score, kind, **options), record)

    monkeypatch.setattr(combiners, "METHODS", with_stacking(spy_fit))
    out = combiners.cross_fit("stacking", members, targets, accuracy, MULTICLASS, k=4,
                              seed=3)
    assert len(calls) == 4
    for record in calls:
        assert record["scored"] and not record["fitted"] & record["scored"]
        assert record["fitted"] | record["scored"] == set(range(len(targets)))
    assert set().union(*(c["scored"] for c in calls)) == set(range(len(targets)))
    # and each fold's output is what a combiner fitted on the other folds gives
    monkeypatch.setattr(combiners, "METHODS", with_stacking(real))
    for fit_rows, score_rows in cross_fit_folds(targets, MULTICLASS, 4, 3):
        alone = real(members[:, fit_rows], targets[fit_rows], accuracy, MULTICLASS)
        np.testing.assert_allclose(out[score_rows], alone.combine(members[:, score_rows]),
                                   atol=1e-10)
    everything = real(members, targets, accuracy, MULTICLASS).combine(members)
    assert not np.allclose(out, everything)


# --- ensembles of runs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
            recipe_for) -> dict[str, Path]:
    """Two TF-IDF runs (char_wb and word) on the same data and validation split."""
    root = tmp_path_factory.mktemp("members")
    runs = {}
    for analyzer in ("char_wb", "word"):
        recipe = recipe_for("tfidf", train_csv, model={"backbone": "tfidf",
                                                       "analyzer": analyzer})
        runs[analyzer] = fitclass.train(recipe, out=root / analyzer).path
    return runs


@pytest.fixture(scope="module")
def mean_ensemble(tmp_path_factory: pytest.TempPathFactory,
                  members: dict[str, Path]) -> fitclass.Run:
    out = tmp_path_factory.mktemp("ensembles") / "mean"
    return fitclass.ensemble([members["char_wb"], members["word"]], out, method="mean",
                             metric=FAST_METRIC)


def test_ensemble_run_predicts(mean_ensemble: fitclass.Run, members: dict[str, Path]) -> None:
    run = fitclass.load_run(mean_ensemble.path)
    assert run.recipe.model.backbone == "ensemble"
    assert run.class_names == ["food", "sports", "tech"]
    frame = run.predict(PROBE_TEXTS)
    assert len(frame) == len(PROBE_TEXTS)
    probs = frame[[f"prob:{c}" for c in run.class_names]].to_numpy()
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-6)
    assert frame["label"].tolist()[:3] == ["sports", "tech", "food"]
    summary = json.loads((run.path / "ensemble.json").read_text())
    assert summary["method"] == "mean"
    assert summary["combiner"]["weights"] == pytest.approx([0.5, 0.5])
    assert set(summary["methods"]) == {"mean", "weighted", "greedy", "stacking", "best"}
    assert [Path(m["path"]) for m in summary["members"]] == [members["char_wb"],
                                                             members["word"]]
    assert run.metrics["select"]["held_out"] is True
    valid = pd.read_csv(run.path / "valid_predictions.csv")
    assert len(valid) == 30 and "text" in valid.columns


def test_mean_ensemble_averages_calibrated_members(mean_ensemble: fitclass.Run,
                                                   members: dict[str, Path]) -> None:
    classifier = mean_ensemble.classifier
    assert isinstance(classifier, EnsembleClassifier)
    member_probs = [fitclass.load_run(members[k]).predict_proba(PROBE_TEXTS)
                    for k in ("char_wb", "word")]
    expected = (member_probs[0] + member_probs[1]) / 2
    np.testing.assert_allclose(classifier.predict_proba(PROBE_TEXTS), expected, atol=1e-9)
    # the members' temperatures are in there: the raw classifiers average differently
    raw = [fitclass.load_run(members[k]).classifier.predict_proba(PROBE_TEXTS)
           for k in ("char_wb", "word")]
    temps = [fitclass.load_run(members[k]).decision.temperature for k in ("char_wb", "word")]
    assert all(abs(t - 1.0) > 1e-3 for t in temps)
    assert not np.allclose(classifier.predict_proba(PROBE_TEXTS), (raw[0] + raw[1]) / 2)


@pytest.fixture(scope="module")
def odd_runs(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, synthetic_rows,
             table_writer, recipe_for) -> dict[str, Path]:
    """Runs that cannot join the members: two classes, multi-label, another split."""
    root = tmp_path_factory.mktemp("odd")
    two = table_writer([r for r in synthetic_rows if r["label"] != "food"], root / "two.csv")
    return {
        "two_classes": fitclass.train(recipe_for("tfidf", two), out=root / "two").path,
        "multilabel": fitclass.train(recipe_for("tfidf", train_csv, task="multilabel",
                                                data={"label_sep": "|"}),
                                     out=root / "multilabel").path,
        "other_split": fitclass.train(recipe_for("tfidf", train_csv,
                                                 data={"split": {"valid_size": 0.25,
                                                                 "seed": 1}}),
                                      out=root / "other_split").path,
    }


@pytest.mark.parametrize(("odd", "message"), [
    ("two_classes", "same label set"),
    ("multilabel", "task"),
    ("other_split", "different rows"),
])
def test_mismatched_members_refused(tmp_path: Path, members: dict[str, Path],
                                    odd_runs: dict[str, Path], odd: str, message: str) -> None:
    with pytest.raises(RunError, match=message):
        fitclass.ensemble([members["char_wb"], odd_runs[odd]], tmp_path / "ens",
                          metric=FAST_METRIC)
    assert not (tmp_path / "ens").exists()


def test_bad_ensemble_arguments(tmp_path: Path, members: dict[str, Path]) -> None:
    with pytest.raises(FitclassError, match="at least 2"):
        fitclass.ensemble([members["word"]], tmp_path / "one")
    with pytest.raises(FitclassError, match="method"):
        fitclass.ensemble([members["word"], members["char_wb"]], tmp_path / "x",
                          method="vote")
    with pytest.raises(FitclassError, match="metric"):
        fitclass.ensemble([members["word"], members["char_wb"]], tmp_path / "x",
                          metric="auc")


def test_ensemble_moves_with_its_members(tmp_path: Path, members: dict[str, Path]) -> None:
    first = tmp_path / "first"
    for name, path in members.items():
        shutil.copytree(path, first / name)
    built = fitclass.ensemble([first / "char_wb", first / "word"], first / "ensemble",
                              method="weighted", metric=FAST_METRIC)
    before = built.predict_proba(PROBE_TEXTS)
    moved = tmp_path / "elsewhere" / "second"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    assert not first.exists()  # the recorded absolute member paths are gone
    run = fitclass.load_run(moved / "ensemble")
    classifier = run.classifier
    assert isinstance(classifier, EnsembleClassifier)
    assert [p.resolve() for p in classifier.member_paths()] == [
        (moved / "char_wb").resolve(), (moved / "word").resolve()]
    np.testing.assert_allclose(run.predict_proba(PROBE_TEXTS), before, atol=1e-9)
    # a lone ensemble without its members cannot predict
    shutil.move(str(moved / "word"), str(tmp_path / "word-away"))
    with pytest.raises(RunError, match="member not found"):
        fitclass.load_run(moved / "ensemble").predict(PROBE_TEXTS)


def test_cli_ensemble_prints_the_directory(tmp_path: Path, members: dict[str, Path]) -> None:
    out = tmp_path / "cli-ensemble"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    done = subprocess.run([str(Path(sys.executable).parent / "fitclass"), "ensemble",
                           str(members["char_wb"]), str(members["word"]), "--out", str(out),
                           "--method", "greedy", "--metric", FAST_METRIC],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    summary = json.loads((out / "ensemble.json").read_text())
    assert summary["method"] == "greedy" and summary["metric"] == FAST_METRIC
    assert "method: stacking" in done.stderr


def test_train_seeds_builds_and_reuses_members(tmp_path: Path, train_csv: Path, recipe_for,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = recipe_for("tiny_bert", train_csv, train={
        "epochs": 2, "batch_size": 16, "seed": 5, "select": {"metric": FAST_METRIC}})
    out = tmp_path / "seeds"
    run = fitclass.train_seeds(recipe, 2, out)
    assert run.path == out / "ensemble"
    assert sorted(p.name for p in out.iterdir()) == ["ensemble", "seed-5", "seed-6"]
    seeds = [fitclass.load_run(out / f"seed-{s}").recipe.train.seed for s in (5, 6)]
    assert seeds == [5, 6]
    texts = PROBE_TEXTS
    first, second = (fitclass.load_run(out / f"seed-{s}").predict_proba(texts) for s in (5, 6))
    assert not np.allclose(first, second)  # seeds really differ
    np.testing.assert_allclose(run.classifier.predict_proba(texts), (first + second) / 2,
                               atol=1e-6)
    stamps = {s: (out / f"seed-{s}" / "status.json").stat().st_mtime_ns for s in (5, 6)}

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished seed run was trained again")

    monkeypatch.setattr(fitclass.api, "train", no_training)
    again = fitclass.train_seeds(recipe, 2, out)
    assert again.path == out / "ensemble"
    assert {s: (out / f"seed-{s}" / "status.json").stat().st_mtime_ns
            for s in (5, 6)} == stamps


# --- classical linear heads --------------------------------------------------------------


@pytest.fixture(scope="module", params=["three_classes", "binary"])
def head_data(request: pytest.FixtureRequest, rows_maker) -> dict[str, Any]:
    counts = ({"sports": 30, "tech": 20, "food": 12} if request.param == "three_classes"
              else {"sports": 25, "tech": 20})
    rows = rows_maker(counts, seed=4)
    names = sorted(counts)
    texts = [r["text"] for r in rows]
    targets = np.array([names.index(r["label"]) for r in rows])
    return {"texts": texts, "targets": targets, "names": names}


@pytest.mark.parametrize("head", ["linear_svm", "nbsvm"])
def test_heads_save_load_predict_identically(tmp_path: Path, head_data: dict[str, Any],
                                             head: str) -> None:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True,
                                 min_df=2, dtype=np.float32)
    features = vectorizer.fit_transform(head_data["texts"])
    fitted = fit_head(head, features, head_data["targets"], 4.0, None, 0)
    classifier = LinearTextClassifier(head_data["names"], vectorizer, fitted, head)
    probs = classifier.predict_proba(head_data["texts"] + PROBE_TEXTS)
    assert probs.shape == (len(head_data["texts"]) + 4, len(head_data["names"]))
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-6)
    assert (probs.argmax(1)[:len(head_data["texts"])] == head_data["targets"]).mean() > 0.9
    classifier.save(tmp_path / "model")
    loaded = TfidfBackbone.load(tmp_path / "model")
    assert loaded.classifier == head and loaded.class_names == head_data["names"]
    np.testing.assert_allclose(loaded.predict_proba(head_data["texts"] + PROBE_TEXTS), probs,
                               atol=1e-5)


@pytest.mark.parametrize("head", ["linear_svm", "nbsvm"])
def test_heads_through_a_run(tmp_path: Path, train_csv: Path, recipe_for, head: str) -> None:
    recipe = recipe_for("tfidf", train_csv, model={"backbone": "tfidf", "classifier": head})
    run = fitclass.train(recipe, out=tmp_path / "run")
    assert run.metrics["accuracy"] > 0.8
    valid = pd.read_csv(run.path / "valid_predictions.csv", dtype={"id": str})
    columns = [f"prob:{c}" for c in run.class_names]
    # the saved and reloaded model gives the probabilities the run recorded
    np.testing.assert_allclose(run.predict_proba(valid["text"].tolist()),
                               valid[columns].to_numpy(), atol=1e-5)
    assert run.predict(valid["text"].tolist())["label"].tolist() == valid["label"].tolist()


def test_log_count_ratio_by_hand() -> None:
    features = sparse.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0],
                                           [3.0, 0.0, 0.0]]))
    positive = np.array([True, False, True])
    p = np.array([4.0, 0.0, 2.0]) + 1.0
    q = np.array([0.0, 1.0, 0.0]) + 1.0
    expected = np.log((p / p.sum()) / (q / q.sum()))
    np.testing.assert_allclose(log_count_ratio(features, positive), expected)
    alpha = 0.5
    p, q = np.array([4.0, 0.0, 2.0]) + alpha, np.array([0.0, 1.0, 0.0]) + alpha
    np.testing.assert_allclose(log_count_ratio(features, positive, alpha),
                               np.log((p / p.sum()) / (q / q.sum())))


def test_best_member_is_the_floor_that_averaging_can_fall_below() -> None:
    """One good member among three useless ones: the mean is dragged down, while the
    cross-fitted `best` combiner returns the good member's probabilities on every fold."""
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, size=300)
    members = np.stack([_peaked(targets, 2.0, rng)] + [_peaked(targets, 0.0, rng)
                                                       for _ in range(3)])
    best = combiners.cross_fit("best", members, targets, accuracy, MULTICLASS, k=5, seed=0)
    np.testing.assert_allclose(best, members[0])
    mean = combiners.cross_fit("mean", members, targets, accuracy, MULTICLASS, k=5, seed=0)
    assert accuracy(targets, mean) < accuracy(targets, best)
    fitted = combiners.fit_best(members, targets, accuracy, MULTICLASS)
    assert fitted.weights.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert len(fitted.details["member_scores"]) == 4


def test_ensemble_recipe_keeps_only_what_members_share() -> None:
    """How a member learned is its own: the ensemble's recipe keeps the task, data,
    decision, selection and seed it uses, and none of the member's schedule or remedies."""
    from fitclass.ensembling import ensemble_recipe

    member = fitclass.load_recipe({
        "task": "multiclass", "data": {"train": "train.csv", "text": "text", "label": "label"},
        "model": {"backbone": "tfidf", "analyzer": "word"},
        "imbalance": {"class_weights": "inverse"},
        "decision": {"optimize": "macro_f1"},
        "train": {"epochs": 7, "seed": 5, "select": {"metric": "macro_f1"}}})
    raw = ensemble_recipe(member, "greedy")
    assert raw["model"] == {"backbone": "ensemble"} and raw["name"] == "ensemble-greedy"
    assert set(raw) == {"task", "name", "data", "model", "decision", "train"}
    assert raw["train"] == {"select": member.to_dict()["train"]["select"], "seed": 5}
    recipe = fitclass.load_recipe(raw)
    assert recipe.decision.optimize == "macro_f1"
    assert recipe.imbalance.class_weights != "inverse" and recipe.train.epochs != 7
