"""`fitclass.train(..., folds=K)` with the TF-IDF backbone: fold runs, out-of-fold rows that
no fold model trained on, OUT as the mean of its folds, scores over folds, resuming an
interrupted cross-validation fold by fold, and refits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import fitclass
from fitclass.data.prepare import prepare_data
from fitclass.errors import FitclassError, RunError
from fitclass.models.classical import TfidfBackbone
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.run import load_run

pytestmark = pytest.mark.usefixtures("no_reports")

K = 3


@pytest.fixture(scope="module")
def cv_out(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
           recipe_for: Callable[..., dict[str, Any]]) -> Path:
    """One finished 3-fold cross-validation with a refit."""
    out = tmp_path_factory.mktemp("cv") / "out"
    fitclass.train(recipe_for("tfidf", train_csv), out=out, folds=K, refit=True)
    return out


def test_fold_runs_and_oof_cover_every_row_once(cv_out: Path, train_csv: Path) -> None:
    assert sorted(p.name for p in cv_out.glob("fold-*")) == [f"fold-{k}" for k in range(K)]
    oof = readers.read_oof(load_run(cv_out).dir)
    assert oof is not None
    every = pd.read_csv(train_csv, dtype=str)["id"].tolist()
    assert sorted(oof["id"]) == sorted(every)  # every labelled row, once
    assert list(oof.columns[:5]) == ["id", "text", "true_label", "fold", "label"]
    assert {f"prob:{c}" for c in ("food", "sports", "tech")} <= set(oof.columns)
    assert sorted(oof["fold"].unique()) == list(range(K))


def test_no_row_is_scored_by_a_model_that_trained_on_it(cv_out: Path) -> None:
    oof = readers.read_oof(load_run(cv_out).dir)
    assert oof is not None
    for k in range(K):
        fold = load_run(cv_out / f"fold-{k}")
        prepared = prepare_data(fold.recipe.data)  # the rows the fold run trained on
        held = set(oof.loc[oof["fold"] == k, "id"])
        assert held == set(prepared.valid.ids)
        assert not held & set(prepared.train.ids)
        assert len(held) + len(prepared.train.ids) == len(oof)


def test_cv_run_predicts_as_the_mean_of_its_folds(cv_out: Path) -> None:
    texts = ["the football team scored a goal", "new laptop software", "cheese soup recipe"]
    run = load_run(cv_out)
    # the folds' models' raw probabilities (their own decisions were fitted on their fold)
    folds = [load_run(cv_out / f"fold-{k}").classifier.predict_proba(texts) for k in range(K)]
    expected = run.decision.calibrate(np.mean(folds, axis=0))
    np.testing.assert_allclose(run.predict_proba(texts), expected, atol=1e-6)
    assert list(run.predict(texts)["label"]) == ["sports", "tech", "food"]


def test_cv_scores_every_metric_over_folds(cv_out: Path) -> None:
    run = load_run(cv_out)
    metrics = run.metrics
    cv = metrics["cv"]
    assert {"accuracy", "macro_f1", "log_loss"} <= set(cv)
    per_fold = [f["scores"]["macro_f1"] for f in metrics["folds"]]
    assert len(per_fold) == K
    interval = cv["macro_f1"]
    assert interval["method"] == "t" and interval["n"] == K
    assert interval["estimate"] == pytest.approx(np.mean(per_fold))
    assert interval["low"] <= interval["estimate"] <= interval["high"]
    assert interval["std"] == pytest.approx(np.std(per_fold, ddof=1))
    assert metrics["n"] == 120  # OUT's own validation metrics are the out-of-fold ones
    rows = metrics["intervals"]["macro_f1"]  # and their bootstrap is over the oof rows
    assert rows["method"] == "bootstrap" and rows["estimate"] == pytest.approx(metrics["macro_f1"])
    assert [r["best_epoch"] for f in metrics["folds"] for r in f["runs"]] == [1.0] * K
    stored = readers.read_cv(run.dir)
    assert stored is not None and stored["k"] == K and stored["cv"] == cv
    arrays = readers.read_oof_arrays(run.dir)
    assert arrays["raw"].shape == (120, 3) and arrays["fold"].shape == (120,)


def test_refit_trains_on_every_row_with_the_oof_decision(cv_out: Path) -> None:
    refit = load_run(cv_out / "refit")
    prepared = prepare_data(refit.recipe.data)
    assert len(prepared.train) == 120 and len(prepared.valid) == 0
    info = refit.metrics["refit"]
    assert info["train_rows"] == 120 and info["validation_rows"] == 0
    assert "cross-validation" in info["expected_from"]
    assert "out-of-fold" in info["decision_from"]
    assert refit.decision.to_dict() == load_run(cv_out).decision.to_dict()
    # it carries the cross-validation's estimate as its expected score
    assert refit.metrics["cv"] == load_run(cv_out).metrics["cv"]
    assert refit.recipe.data.split.refit and refit.recipe.train.early_stopping is None
    assert readers.read_valid_predictions(refit.dir).empty
    assert list(refit.predict(["football goal for the team"])["label"]) == ["sports"]


def test_a_rerun_keeps_finished_work(cv_out: Path, train_csv: Path,
                                     recipe_for: Callable[..., dict[str, Any]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing should train again")

    monkeypatch.setattr(TfidfBackbone, "fit", never)
    run = fitclass.train(recipe_for("tfidf", train_csv), out=cv_out, folds=K, refit=True)
    assert run.path == cv_out / "refit"


def test_an_interrupted_cv_resumes_fold_by_fold(tmp_path: Path, train_csv: Path,
                                                recipe_for: Callable[..., dict[str, Any]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    recipe, out = recipe_for("tfidf", train_csv), tmp_path / "cv"
    real_fit = TfidfBackbone.fit
    fitted: list[int] = []

    def interrupted_second(self: TfidfBackbone, context: Any) -> Any:
        fitted.append(context.recipe.data.split.fold)
        if len(fitted) == 2:
            raise KeyboardInterrupt
        return real_fit(self, context)

    monkeypatch.setattr(TfidfBackbone, "fit", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        fitclass.train(recipe, out=out, folds=K)
    assert RunDir(out).status() == "interrupted"
    assert RunDir(out / "fold-0").status() == "finished"
    assert RunDir(out / "fold-1").status() == "interrupted"
    # a plain run into it would delete the folds: refused, naming how to continue
    with pytest.raises(RunError, match="unfinished cross-validation"):
        fitclass.train(recipe, out=out)
    with pytest.raises(RunError, match=r"not a finished run.*--resume"):
        load_run(out)
    run = fitclass.train({}, resume=out)
    assert fitted == [0, 1, 1, 2]  # fold 0 kept; the interrupted fold 1 retrained
    assert run.path == out and readers.read_oof(run.dir) is not None


def test_refit_without_folds_uses_a_validation_run(tmp_path: Path, train_csv: Path,
                                                   recipe_for: Callable[..., dict[str, Any]]
                                                   ) -> None:
    out = tmp_path / "plain"
    refit = fitclass.train(recipe_for("tfidf", train_csv), out=out, refit=True)
    assert refit.path == out / "refit"
    source = load_run(out)
    assert source.metrics["n"] == 30  # the validation run: its own 25% split
    assert refit.decision.to_dict() == source.decision.to_dict()
    assert refit.metrics["refit"]["train_rows"] == 120
    assert refit.metrics["macro_f1"] == source.metrics["macro_f1"]  # the expected score


def test_folds_run_over_train_and_valid_files_together(tmp_path: Path,
                                                       rows_maker: Callable[..., Any],
                                                       table_writer: Callable[..., Path],
                                                       recipe_for: Callable[..., Any]) -> None:
    rows = rows_maker(seed=5)
    train = table_writer(rows[:90], tmp_path / "train.csv")
    valid = table_writer(rows[90:], tmp_path / "valid.csv")
    recipe = recipe_for("tfidf", train, data={"train": str(train), "valid": str(valid),
                                              "id": "id"})
    run = fitclass.train(recipe, out=tmp_path / "cv", folds=2)
    oof = readers.read_oof(run.dir)
    assert oof is not None and sorted(oof["id"]) == sorted(r["id"] for r in rows)


def test_errors_name_the_flag(tmp_path: Path, train_csv: Path,
                              recipe_for: Callable[..., dict[str, Any]]) -> None:
    recipe = recipe_for("tfidf", train_csv)
    with pytest.raises(FitclassError, match="--folds 1: cross-validation needs at least 2"):
        fitclass.train(recipe, out=tmp_path / "a", folds=1)
    with pytest.raises(FitclassError, match="class 'food' has only 20 labelled rows"):
        fitclass.train(recipe, out=tmp_path / "b", folds=25)
    assert not (tmp_path / "b").exists()  # refused before anything was written
    plain = fitclass.train(recipe, out=tmp_path / "plain")
    with pytest.raises(RunError, match="is not a cross-validation run"):
        fitclass.train({}, resume=plain.path, folds=3)
    with pytest.raises(RunError, match="a run trained without --folds is here"):
        fitclass.train(recipe, out=plain.path, folds=3)
    with pytest.raises(FitclassError, match=r"--seeds 2: model\.backbone 'tfidf'"):
        fitclass.train(recipe, out=tmp_path / "c", folds=3, seeds=2)


def test_grouped_cv_keeps_each_group_in_one_fold(tmp_path: Path, synthetic_rows: list[Any],
                                                 table_writer: Callable[..., Path],
                                                 recipe_for: Callable[..., Any]) -> None:
    rows = [{**row, "user": f"u{i % 24}"} for i, row in enumerate(synthetic_rows)]
    train = table_writer(rows, tmp_path / "grouped.csv")
    recipe = recipe_for("tfidf", train, data={"train": str(train), "id": "id",
                                              "group": "user",
                                              "split": {"method": "group", "seed": 0}})
    run = fitclass.train(recipe, out=tmp_path / "cv", folds=4)
    oof = readers.read_oof(run.dir)
    assert oof is not None and run.metrics["crossval"]["method"] == "group"
    users = dict(zip((r["id"] for r in rows), (r["user"] for r in rows), strict=True))
    folds_of_user = oof.groupby(oof["id"].map(users))["fold"].nunique()
    assert (folds_of_user == 1).all()  # no group on both sides of any fold


def test_multilabel_cv_folds_are_iterative_and_cross_fitted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = {"food": "pizza soup", "music": "guitar song", "sports": "goal match"}
    rows = []
    for i in range(90):
        on = [name for name in words if rng.random() < 0.45] or ["food"]
        text = " ".join([*(words[n] for n in on), f"word{i}", "the", "story"])
        rows.append({"id": f"m{i}", "text": text, "tags": "|".join(on)})
    train = tmp_path / "ml.csv"
    pd.DataFrame(rows).to_csv(train, index=False)
    recipe = {"task": "multilabel",
              "data": {"train": str(train), "id": "id", "label": "tags", "label_sep": "|"},
              "model": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 1]},
              "train": {"select": {"metric": "micro_f1"}}}
    run = fitclass.train(recipe, out=tmp_path / "cv", folds=3, refit=True)
    cv = load_run(tmp_path / "cv")
    assert cv.metrics["crossval"]["method"] == "iterative"
    assert {"micro_f1", "samples_f1"} <= set(cv.metrics["cv"])
    oof = readers.read_oof(cv.dir)
    assert oof is not None and list(oof.columns[:5]) == ["id", "text", "true_labels", "fold",
                                                         "labels"]
    assert cv.decision.thresholds is not None  # per-label thresholds fitted on all rows
    assert run.decision.thresholds == cv.decision.thresholds


def test_decision_optimize_is_fitted_on_every_out_of_fold_row(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    recipe = recipe_for("tfidf", train_csv, decision={"optimize": "macro_f1"})
    run = fitclass.train(recipe, out=tmp_path / "out", folds=K)
    fitted = run.metrics["optimize"]  # the decision's section, as a single run records it
    assert fitted["metric"] == "macro_f1"
    assert sum(fitted["shares"]["true"].values()) == run.metrics["n"] == 120
    assert len(run.decision.offsets or []) == 3
    assert "optimize" not in run.metrics["calibration"]
