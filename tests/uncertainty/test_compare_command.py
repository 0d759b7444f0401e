"""`fitclass compare` end to end on tiny TF-IDF runs: on their shared validation rows, on a
labelled file, refused on different rows, and across the members of two ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fitclass
from fitclass.comparing import display_names
from fitclass.errors import FitclassError, RunError

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def runs(analyzer_runs: dict[str, Path]) -> dict[str, Path]:
    return analyzer_runs


def test_cli_compares_on_the_shared_validation_rows(runs: dict[str, Path], cli_main) -> None:
    code, out, err = cli_main("compare", runs["char_wb"], runs["word"])
    assert code == 0, err
    assert "30 rows" in out and "A - B" in out
    verdicts = [line for line in out.splitlines()
                if line.startswith(("no detectable difference", "char_wb beats", "word beats"))]
    assert len(verdicts) == 4  # macro_f1 (the selection metric), accuracy, balanced, log-loss
    code, out, err = cli_main("compare", runs["char_wb"], runs["word"], "--json",
                              "--metric", "macro_f1", "--metric", "accuracy")
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["a"], payload["b"], payload["rows"]) == ("char_wb", "word", 30)
    assert list(payload["metrics"]) == ["macro_f1", "accuracy"]
    accuracy = payload["metrics"]["accuracy"]
    assert accuracy["test"] == "McNemar mid-p" and 0 < accuracy["p_value"] <= 1
    difference = accuracy["difference"]
    assert difference["low"] <= difference["estimate"] <= difference["high"]
    assert difference["estimate"] == pytest.approx(accuracy["a"] - accuracy["b"])
    assert payload["across_members"] == {}


def test_different_validation_rows_are_refused_with_the_fix(runs: dict[str, Path],
                                                            cli_main) -> None:
    code, _, err = cli_main("compare", runs["char_wb"], runs["other_split"])
    assert code == 2
    assert "different rows" in err and "--on FILE" in err and "valid_predictions.csv" in err
    with pytest.raises(FitclassError, match="compare on"):
        fitclass.compare(runs["char_wb"], runs["word"], metrics=["samples_f1"])


def test_compare_on_a_labelled_file(runs: dict[str, Path], rows_maker, table_writer,
                                    tmp_path: Path) -> None:
    test_file = table_writer(rows_maker({"sports": 30, "tech": 20, "food": 10}, seed=11),
                             tmp_path / "test.csv")
    comparison = fitclass.compare(runs["char_wb"], runs["other_split"], on=test_file)
    assert comparison.rows == 60 and comparison.source == str(test_file)
    assert set(comparison.differences) >= {"accuracy", "macro_f1"}
    assert all(isinstance(line, str) and " on " in line for line in comparison.verdicts())


def test_across_members_of_two_ensembles(runs: dict[str, Path], tmp_path: Path) -> None:
    first = fitclass.ensemble([runs["char_wb"], runs["word"]], tmp_path / "mean",
                              method="mean", metric="log_loss")
    second = fitclass.ensemble([runs["char_wb"], runs["word"]], tmp_path / "best",
                               method="best", metric="log_loss")
    comparison = fitclass.compare(first.path, second.path, metrics=["macro_f1"])
    across = comparison.across_members["macro_f1"]
    assert across.test == "paired t over seeds"  # the same members: matched, no difference
    assert across.interval.estimate == 0 and not across.detected
    alone = fitclass.compare(first.path, runs["word"])
    assert alone.across_members == {} and "ensembles" in (alone.members_note or "")


def test_display_names_tell_runs_apart(tmp_path: Path) -> None:
    assert display_names(tmp_path / "plain" / "ensemble",
                         tmp_path / "probe" / "ensemble") == ("plain/ensemble",
                                                              "probe/ensemble")
    assert display_names(tmp_path / "a", tmp_path / "b") == ("a", "b")


def test_refuses_other_tasks(runs: dict[str, Path], train_csv: Path, recipe_for,
                             tmp_path: Path) -> None:
    multilabel = fitclass.train(recipe_for("tfidf", train_csv, task="multilabel",
                                           data={"label_sep": "|"}), out=tmp_path / "ml")
    with pytest.raises(RunError, match="one task and label set"):
        fitclass.compare(runs["char_wb"], multilabel.path)
