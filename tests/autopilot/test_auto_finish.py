"""`fitclass auto`'s finish on tiny TF-IDF tables: written in place beside `trials/` (no
staging), `--preset best` refits its members with decisions fitted on out-of-fold
probabilities, the study's pruner hears every evaluation, and multi-label tables work."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fitclass
from conftest import make_rows, write_table
from fitclass.models.base import MODEL_INFO
from fitclass.runs.layout import is_run

#: In-process: no interpreter start to allow for, only scheduling noise on a shared CPU.
SLACK_S = 3.0


@pytest.fixture(scope="module")
def three_classes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = make_rows({"sports": 40, "tech": 40, "food": 40}, seed=7)
    return write_table(rows, tmp_path_factory.mktemp("finish") / "three.csv")


def member_paths(out: Path) -> list[str]:
    info = json.loads((out / "model" / MODEL_INFO).read_text(encoding="utf-8"))
    return sorted(m["relative"] for m in info["members"])


def test_the_finish_writes_in_place_and_a_rerun_replaces_only_the_runs_entries(
        tmp_path: Path, three_classes_csv: Path) -> None:
    import optuna

    out = tmp_path / "auto"
    fitclass.auto(three_classes_csv, label="label", time="2m", preset="fast", out=out,
                  trials=2)
    assert member_paths(out) == ["trials/trial-0000", "trials/trial-0001"]
    assert (out / ".fitclass.json").is_file() and not (out / ".auto-final").exists()
    first = out / "trials" / "trial-0000" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    # every evaluation is reported to the pruner (a TF-IDF fit has one)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'auto.db'}")
    assert all(t.intermediate_values for t in study.trials if t.state.name == "COMPLETE")
    run = fitclass.auto(three_classes_csv, label="label", time="2m", preset="fast",
                        out=out, trials=3)
    assert first.stat().st_mtime_ns == stamp  # trials stay, the run's entries are rewritten
    assert member_paths(out) == [f"trials/trial-000{i}" for i in range(3)]
    assert (out / ".fitclass.json").is_file() and (out / "auto.json").is_file()
    assert run.metrics["ensemble"]["members"]
    moved = shutil.move(str(out), str(tmp_path / "moved"))  # members are relative to OUT
    predicted = fitclass.load_run(moved).predict(["the football match and the goal"])
    assert list(predicted["label"]) == ["sports"]


def test_best_refits_its_members_with_decisions_on_out_of_fold_probabilities(
        tmp_path: Path, three_classes_csv: Path) -> None:
    out = tmp_path / "best"
    budget = 240.0
    started = time.perf_counter()
    # naming tfidf keeps the embedded encoder out: two TF-IDF members, refit in seconds
    run = fitclass.auto(three_classes_csv, label="label", time=f"{budget:.0f}s",
                        preset="best", out=out, trials=2, backbones=["tfidf"])
    assert time.perf_counter() - started <= budget * 1.1 + SLACK_S
    record = json.loads((out / "auto.json").read_text())
    refit = record["final"]["refit"]
    assert refit["done"] and refit["skipped"] is None, refit
    assert len(refit["refits"]) == 2
    for path in map(Path, refit["refits"]):
        assert path.name == "refit" and path.parent.name.endswith("-cv") and is_run(path)
        info = json.loads((path / "refit.json").read_text())
        assert "out-of-fold" in info["refit"]["decision_from"]
        # a cross-validation over train and validation rows: every labelled row
        assert fitclass.load_run(path.parent).metrics["n"] == 120
    # the ensemble's combiner and decision were fitted on the out-of-fold rows, all 120,
    # and it predicts with the refits
    assert run.metrics["n"] == 120
    assert member_paths(out) == sorted(
        str(Path(p).relative_to(out)) for p in refit["refits"])
    predicted = fitclass.load_run(out).predict(["pizza with cheese in the kitchen"])
    assert list(predicted["label"]) == ["food"]
    notes = (out / "auto.md").read_text()
    assert "Refit: each chosen trial's recipe was cross-validated (5 folds" in notes
    assert "out-of-fold probabilities of all 120 labelled rows" in notes


def test_best_without_time_for_a_refit_says_so_and_keeps_the_validation_members(
        tmp_path: Path, three_classes_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fitclass.autopilot import budget

    monkeypatch.setattr(budget, "REFIT_FIXED_S", 10_000.0)  # no refit can fit
    out = tmp_path / "norefit"
    run = fitclass.auto(three_classes_csv, label="label", time="90s", preset="best",
                        out=out, trials=2, backbones=["tfidf"])
    refit = json.loads((out / "auto.json").read_text())["final"]["refit"]
    assert not refit["done"] and "could not fit it" in refit["skipped"]
    assert not list((out / "trials").glob("*-cv"))
    assert run.metrics["n"] < 120  # validation rows
    assert "Not refit (the preset asks for it)" in (out / "auto.md").read_text()


LABELS = ["food", "music", "sports", "tech"]
KEYWORDS = {"food": ["pizza", "cheese", "soup"], "music": ["guitar", "concert", "song"],
            "sports": ["football", "goal", "match"], "tech": ["laptop", "software", "code"]}


def multilabel_rows(n: int = 160, seed: int = 0) -> list[dict[str, Any]]:
    """One or two labels a row, each cued by a keyword; 0/1 label columns."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        on = rng.sample(LABELS, rng.choice([1, 1, 2]))
        words = [f"w{rng.randrange(400)}" for _ in range(4)] + [
            rng.choice(KEYWORDS[name]) for name in on]
        rng.shuffle(words)
        rows.append({"id": f"r{i:03d}", "text": " ".join(words),
                     **{name: int(name in on) for name in LABELS}})
    return rows


def test_a_multilabel_table_gives_a_run_and_doctor_names_its_cardinality(
        tmp_path: Path) -> None:
    data = write_table(multilabel_rows(), tmp_path / "ml.csv")
    run = fitclass.auto(data, label=LABELS, time="90s", preset="fast",
                        out=tmp_path / "ml", trials=2)
    record = json.loads((run.path / "auto.json").read_text())
    assert record["diagnosis"]["task"] == "multilabel"
    codes = {f["code"] for f in record["diagnosis"]["findings"]}
    assert "label_cardinality" in codes
    cardinality = next(f for f in record["diagnosis"]["findings"]
                       if f["code"] == "label_cardinality")
    assert cardinality["measured"]["max_labels_per_row"] == 2
    loaded = fitclass.load_run(run.path)
    assert loaded.task.kind.multilabel
    predicted = loaded.predict(["pizza and a guitar song", "the football match"])
    assert isinstance(predicted, pd.DataFrame) and len(predicted) == 2
    assert "label_cardinality" in (run.path / "auto.md").read_text()


def test_a_neural_trial_reports_every_epochs_validation_score_to_the_pruner(
        tmp_path: Path, three_classes_csv: Path,
        recipe_for: Any) -> None:
    """The search trains no folds: Hyperband prunes on validation scores, one per
    evaluation (an epoch here), each reported as the trial's intermediate value."""
    from fitclass.autopilot.budget import Deadline
    from fitclass.autopilot.search import open_auto_study, search
    from fitclass.autopilot.space import SearchSpace
    from fitclass.training.progress import Reporter

    base = recipe_for("tiny_bert", three_classes_csv, name="pruned",
                      train={"epochs": 3, "select": {"metric": "macro_f1"}})
    space = SearchSpace(base=base, backbones=[base["model"]["backbone"]], epochs=3)
    study = open_auto_study(space, f"sqlite:///{tmp_path / 'study.db'}", "pruned", 0,
                            Reporter(enabled=False))
    stopped = search(study, space, tmp_path, Deadline(300.0), 120, "cpu",
                     Reporter(enabled=False), trials=1)
    assert "finished trials" in stopped
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE"
    assert sorted(trial.intermediate_values) == sorted(
        int(s) for s in pd.read_csv(tmp_path / "trials" / "trial-0000" / "history.csv")
        ["step"].dropna())
    assert len(trial.intermediate_values) == 3  # one per epoch
