"""Intervals in the run record: metrics.json, evaluate, the ensemble's across-member interval
and table marks, the summary and the report; runs from before intervals still report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import fitclass
from fitclass.cli.base import print_summary
from fitclass.report.build import write_report
from fitclass.runs.noise_marks import noise_marks

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def tfidf_runs(analyzer_runs: dict[str, Path]) -> dict[str, Path]:
    return analyzer_runs


def test_metrics_json_holds_an_interval_per_headline_metric(
        tfidf_runs: dict[str, Path]) -> None:
    metrics = json.loads((tfidf_runs["word"] / "metrics.json").read_text())
    intervals = metrics["intervals"]
    assert {"accuracy", "balanced_accuracy", "macro_f1", "log_loss"} <= set(intervals)
    for name, interval in intervals.items():
        assert interval["estimate"] == pytest.approx(metrics[name])
        assert interval["low"] <= interval["high"]
        assert (interval["method"], interval["n"], interval["level"]) == ("bootstrap", 1000,
                                                                          0.95)
    run = fitclass.load_run(tfidf_runs["word"])
    evaluated = run.evaluate(run.dir.path / "valid_predictions.csv", text_column="text",
                             overrides=["data.label=true_label"])
    assert evaluated["intervals"]["accuracy"]["estimate"] == pytest.approx(
        evaluated["accuracy"])


def test_ensemble_intervals_across_members_and_marks(tfidf_runs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    run = fitclass.ensemble([tfidf_runs["char_wb"], tfidf_runs["word"]], tmp_path / "ens",
                            method="mean", metric="log_loss")
    across = run.metrics["intervals_across_members"]
    members = [fitclass.load_run(p).metrics for p in (tfidf_runs["char_wb"],
                                                      tfidf_runs["word"])]
    assert across["accuracy"]["n"] == 2 and across["accuracy"]["method"] == "t"
    assert across["accuracy"]["estimate"] == pytest.approx(
        (members[0]["accuracy"] + members[1]["accuracy"]) / 2)
    assert "accuracy" in run.metrics["intervals"]
    rows = [*run.metrics["ensemble"]["members"], *run.metrics["ensemble"]["methods"].values()]
    assert all(isinstance(r["within_noise"], bool) for r in rows)
    assert sum(r["p_vs_best"] is None for r in rows) == 1  # the best itself
    html = write_report(run.path).read_text()
    assert "Across members" in html and "vs best on log_loss" in html


def test_summary_and_report_show_intervals_and_old_runs_still_report(
        tfidf_runs: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = fitclass.load_run(tfidf_runs["char_wb"])
    print_summary(run)
    low = run.metrics["intervals"]["accuracy"]["low"]
    assert f"[{low:.4f}, " in capsys.readouterr().err
    assert f"[{low:.4f}, " in write_report(run.path).read_text()
    # a run written before intervals existed: no key, and everything still reads it
    run = fitclass.load_run(shutil.copytree(run.path, tmp_path / "old"))
    metrics_file = run.dir.path / "metrics.json"
    old = json.loads(metrics_file.read_text())
    del old["intervals"]
    metrics_file.write_text(json.dumps(old))
    print_summary(fitclass.load_run(run.path))
    err = capsys.readouterr().err
    assert f"accuracy={old['accuracy']:.4f}" in err and "bootstrap" not in err
    html = write_report(run.path).read_text()
    assert "percentile bootstrap" not in html and "Headline metrics" in html
    marks = noise_marks([tfidf_runs["word"], run.path], "macro_f1")
    assert marks[1]["noise_rule"] == "paired test"  # per-row predictions need no intervals


def test_leaderboard_marks_fall_back_to_interval_overlap(tfidf_runs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    marks = noise_marks([tfidf_runs["word"], tfidf_runs["char_wb"], tfidf_runs["other_split"],
                         None, tmp_path / "missing"], "macro_f1")
    assert marks[0] == {"within_noise": True, "p_vs_best": None, "noise_rule": "best"}
    assert marks[1]["noise_rule"] == "paired test" and 0 < marks[1]["p_vs_best"] <= 1
    assert marks[2]["noise_rule"] == "interval overlap"  # validated on other rows
    assert isinstance(marks[2]["within_noise"], bool)
    assert marks[3] == marks[4] == {"within_noise": None, "p_vs_best": None,
                                    "noise_rule": None}


def test_multilabel_runs_get_intervals_and_compare(train_csv: Path, recipe_for,
                                                    tmp_path: Path) -> None:
    runs = [fitclass.train(recipe_for("tfidf", train_csv, task="multilabel",
                                      data={"label_sep": "|"},
                                      model={"backbone": "tfidf", "analyzer": analyzer}),
                           out=tmp_path / analyzer).path for analyzer in ("char_wb", "word")]
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert {"micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss",
            "log_loss"} <= set(metrics["intervals"])
    for name, interval in metrics["intervals"].items():
        assert interval["estimate"] == pytest.approx(metrics[name])
    comparison = fitclass.compare(*runs)
    assert comparison.differences["subset_accuracy"].test == "McNemar mid-p"
    assert "accuracy" not in comparison.differences
