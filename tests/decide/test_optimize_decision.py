"""`decision.optimize`: the recipe key, the task's fit, the saved decision and its scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from fitclass.decide.decision import Decision
from fitclass.errors import RecipeError, RunError
from fitclass.recipe import DecisionConfig, load_recipe
from fitclass.runs.folder import RunDir
from fitclass.runs.readers import read_decision
from fitclass.tasks import make_task

CLASSES = ["rare", "middle", "common"]


def validation(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A model that under-predicts the rare classes (it leans on the class prior)."""
    rng = np.random.default_rng(seed)
    shares = np.array([0.08, 0.22, 0.70])
    targets = rng.choice(3, size=n, p=shares)
    logits = 1.5 * np.eye(3)[targets] + rng.normal(size=(n, 3)) + np.log(shares)
    return softmax(logits, axis=1), targets


def recipe(**decision: object) -> dict[str, object]:
    return {"data": {"train": "train.csv"}, "model": {"backbone": "tfidf"},
            "decision": decision}


def test_fit_decision_saves_offsets_and_scores_rows_cross_fitted() -> None:
    probs, targets = validation()
    task = make_task("multiclass", CLASSES)
    config = DecisionConfig(optimize="macro_f1")
    decision = task.fit_decision(config, targets, probs, np.array([0.08, 0.22, 0.70]))
    assert decision.offsets is not None and len(decision.offsets) == 3
    assert sum(decision.offsets) == pytest.approx(0.0, abs=1e-9)
    report = decision.report["optimize"]
    assert report["metric"] == "macro_f1" and "ece_before" in decision.report
    metrics = task.metrics(targets, probs, decision)
    # the rows the offsets were fitted on are scored by offsets fitted without them
    assert metrics["macro_f1"] == pytest.approx(report["score"]["cross_fitted"])
    assert metrics["predicted_distribution"] == report["shares"]["after"]
    # also when the caller passes a copy of the same probabilities
    assert task.metrics(targets, probs.copy(), decision)["macro_f1"] == metrics["macro_f1"]
    # other rows: the saved offsets (fitted on every row)
    other_probs, other_targets = validation(seed=1)
    expected = (np.log(decision.calibrate(other_probs)) + decision.offsets).argmax(axis=1)
    np.testing.assert_array_equal(decision.predictions_on(other_targets, other_probs),
                                  expected)
    np.testing.assert_array_equal(task.decide(other_probs, decision), expected)
    # what the run would print and save
    sections = decision.metrics_sections()
    assert "optimize" not in sections["calibration"] and sections["optimize"] is report
    assert decision.warnings == []


def test_offsets_apply_after_prior_correction() -> None:
    probs, targets = validation()
    task = make_task("multiclass", CLASSES)
    config = DecisionConfig(optimize="balanced_accuracy", prior_correction="uniform",
                            calibration="none")
    decision = task.fit_decision(config, targets, probs, np.array([0.08, 0.22, 0.70]))
    assert decision.class_weights is not None and decision.offsets is not None
    corrected = probs * decision.class_weights
    corrected /= corrected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(decision.calibrate(probs), corrected)
    expected = (np.log(corrected) + decision.offsets).argmax(axis=1)
    np.testing.assert_array_equal(decision.predict(decision.calibrate(probs)), expected)
    before = decision.report["optimize"]["shares"]["before"]
    assert before == {n: int(c) for n, c in zip(
        CLASSES, np.bincount(corrected.argmax(axis=1), minlength=3), strict=True)}


def test_without_optimize_nothing_changes() -> None:
    probs, targets = validation()
    task = make_task("multiclass", CLASSES)
    decision = task.fit_decision(DecisionConfig(), targets, probs, np.ones(3) / 3)
    assert decision.offsets is None and decision.held_out is None
    assert "optimize" not in decision.report and "optimize" not in decision.metrics_sections()


def test_decision_json_round_trip_and_old_files(tmp_path: Path) -> None:
    probs, targets = validation()
    task = make_task("multiclass", CLASSES)
    decision = task.fit_decision(DecisionConfig(optimize="macro_f1"), targets, probs,
                                 np.ones(3) / 3)
    payload = json.loads(json.dumps(decision.to_dict()))
    assert "held_out" not in payload and payload["offsets"] == decision.offsets
    loaded = Decision.from_dict(payload)
    assert loaded == decision and loaded.held_out is None
    np.testing.assert_array_equal(task.decide(probs, loaded), task.decide(probs, decision))

    old = {k: v for k, v in payload.items() if k != "offsets"}  # decision.json before issue 16
    assert Decision.from_dict(old).offsets is None

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_json("decision.json", payload)
    reread = read_decision(run, 3)
    assert reread is not None and reread.offsets == decision.offsets
    run.write_json("decision.json", {**payload, "offsets": [0.1, 0.2]})
    with pytest.raises(RunError, match="offsets"):
        read_decision(run, 3)


@pytest.mark.parametrize(("decision", "expected"), [
    ({"optimize": "f1"}, r"decision\.optimize: 'f1' is not a metric fitclass reports.*"
                         r"macro_f1"),
    ({"optimize": "roc_auc_macro"}, r"decision\.optimize: 'roc_auc_macro' is not a multi-class "
                                    r"metric of the predicted labels.*balanced_accuracy"),
    ({"optimize": "samples_f1"}, r"decision\.optimize: 'samples_f1'.*task: multilabel"),
    ({"optimize": "macro_f1", "cost_matrix": [[0, 1], [1, 0]]},
     r"decision\.optimize and decision\.cost_matrix.*keep one"),
    ({"optimize_folds": 1}, r"decision\.optimize_folds"),
])
def test_recipe_refuses_what_it_cannot_fit(decision: dict[str, object], expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        load_recipe(recipe(**decision))


def test_multilabel_points_to_thresholds() -> None:
    raw = {"task": "multilabel", "data": {"train": "t.csv", "label": ["x", "y"]},
           "model": {"backbone": "tfidf"}, "decision": {"optimize": "macro_f1"}}
    with pytest.raises(RecipeError, match=r"decision\.optimize applies to task: multiclass.*"
                                          r"decision\.thresholds: per_class"):
        load_recipe(raw)


def test_recipe_accepts_every_label_metric() -> None:
    for metric in ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1"):
        assert load_recipe(recipe(optimize=metric)).decision.optimize == metric
    loaded = load_recipe(recipe(), ["decision.optimize=macro_f1", "decision.optimize_folds=3"])
    assert loaded.decision.optimize == "macro_f1" and loaded.decision.optimize_folds == 3
    assert load_recipe(recipe()).decision.optimize == "none"
