"""`ensembling.repoint_members`: members of a saved ensemble run pointed at runs that stand
in for them (auto's refits). The ensemble then predicts from the new runs with its own
combiner, keeps working when moved with them, and refuses a run of other classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fitclass
from conftest import make_rows, write_table
from fitclass.ensembling import repoint_members
from fitclass.errors import RunError
from fitclass.models.base import MODEL_INFO

pytestmark = pytest.mark.usefixtures("no_reports")

TEXTS = ["football goal for the team", "my laptop runs new software",
         "pizza with cheese in the kitchen", "a story about the city"]


def _runs(root: Path, recipe_for: Any, train_csv: Path) -> dict[str, Path]:
    """Two members (word and character TF-IDF), two stand-ins (other C), their ensemble."""
    made = {}
    for name, model in {"a": {"analyzer": "word"}, "b": {"analyzer": "char_wb"},
                        "a2": {"analyzer": "word", "C": 0.05},
                        "b2": {"analyzer": "char_wb", "C": 0.05}}.items():
        recipe = recipe_for("tfidf", train_csv, model={"backbone": "tfidf", **model})
        made[name] = fitclass.train(recipe, out=root / name).path
    made["ens"] = fitclass.ensemble([made["a"], made["b"]], root / "ens", method="weighted",
                                    metric="log_loss").path
    return made


def test_the_ensemble_predicts_from_its_new_members_even_when_moved(
        tmp_path: Path, recipe_for: Any, train_csv: Path) -> None:
    runs = _runs(tmp_path / "work", recipe_for, train_csv)
    before = fitclass.load_run(runs["ens"]).predict_proba(TEXTS)
    repointed = repoint_members(runs["ens"], {runs["a"]: runs["a2"], runs["b"]: runs["b2"]})
    combiner = repointed.classifier.combiner  # type: ignore[attr-defined]
    expected = combiner.combine(np.stack([fitclass.load_run(runs[n]).predict_proba(TEXTS)
                                          for n in ("a2", "b2")]))
    expected = repointed.decision.calibrate(expected)
    after = repointed.predict_proba(TEXTS)
    np.testing.assert_allclose(after, expected, atol=1e-6)
    assert not np.allclose(after, before, atol=1e-3)  # the stand-ins really predict
    info = json.loads((runs["ens"] / "model" / MODEL_INFO).read_text())
    assert [m["relative"] for m in info["members"]] == ["../a2", "../b2"]
    status = json.loads((runs["ens"] / "status.json").read_text())
    assert status["status"] == "finished"
    assert [r["to"] for r in status["repointed"]] == [str(runs["a2"]), str(runs["b2"])]
    moved = Path(shutil.move(str(tmp_path / "work"), str(tmp_path / "elsewhere")))
    np.testing.assert_allclose(fitclass.load_run(moved / "ens").predict_proba(TEXTS),
                               expected, atol=1e-6)


def test_a_run_of_other_classes_or_a_stranger_is_refused(
        tmp_path: Path, recipe_for: Any, train_csv: Path) -> None:
    runs = _runs(tmp_path, recipe_for, train_csv)
    two = write_table(make_rows({"sports": 30, "tech": 30}, seed=4), tmp_path / "two.csv")
    other = fitclass.train(recipe_for("tfidf", two), out=tmp_path / "other").path
    info = (runs["ens"] / "model" / MODEL_INFO).read_text()
    with pytest.raises(RunError, match=rf"{other}: cannot replace a member .*classes "
                                       rf"\['sports', 'tech'\]"):
        repoint_members(runs["ens"], {runs["a"]: other})
    with pytest.raises(RunError, match=rf"{runs['a2']} is not a member of this ensemble"):
        repoint_members(runs["ens"], {runs["a2"]: runs["b2"]})
    with pytest.raises(RunError, match="not an ensemble run"):
        repoint_members(runs["a"], {runs["a"]: runs["a2"]})
    assert (runs["ens"] / "model" / MODEL_INFO).read_text() == info  # nothing written
