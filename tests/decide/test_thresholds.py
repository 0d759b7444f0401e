"""Multi-label thresholds, prior correction, least cost and the saved `Decision`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fitclass.decide.decision import Decision
from fitclass.decide.priors import least_cost, prior_weights, reweight
from fitclass.decide.thresholds import (
    apply_thresholds,
    best_f1_threshold,
    best_global_threshold,
    fit_thresholds,
)
from fitclass.errors import RecipeError
from fitclass.recipe import DecisionConfig
from fitclass.tasks import make_task


def separated_scores(rng: np.random.Generator, n_pos: int = 60,
                     n_neg: int = 140) -> tuple[np.ndarray, np.ndarray]:
    """Positives score in [0.7, 1], negatives in [0, 0.6] (plus noise kept in range)."""
    pos = np.clip(rng.uniform(0.7, 1.0, n_pos) + rng.normal(0, 0.01, n_pos), 0.7, 1.0)
    neg = np.clip(rng.uniform(0.0, 0.6, n_neg) + rng.normal(0, 0.01, n_neg), 0.0, 0.6)
    scores = np.r_[pos, neg]
    positive = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    order = rng.permutation(len(scores))
    return positive[order], scores[order]


def test_best_f1_threshold_recovers_a_separating_cut() -> None:
    positive, scores = separated_scores(np.random.default_rng(0))
    threshold, f1 = best_f1_threshold(positive, scores)
    assert 0.6 <= threshold <= 0.7
    assert f1 == pytest.approx(1.0)
    # the cut sits midway between the lowest positive and the highest negative
    low_pos, high_neg = scores[positive == 1].min(), scores[positive == 0].max()
    assert threshold == pytest.approx((low_pos + high_neg) / 2)
    np.testing.assert_array_equal(scores >= threshold, positive == 1)


def test_best_f1_threshold_with_a_few_noisy_negatives() -> None:
    rng = np.random.default_rng(1)
    positive, scores = separated_scores(rng)
    positive = np.r_[positive, [0, 0, 0]]
    scores = np.r_[scores, [0.8, 0.85, 0.9]]  # three negatives among the positives
    threshold, f1 = best_f1_threshold(positive, scores)
    assert 0.6 <= threshold <= 0.7
    assert f1 == pytest.approx(2 * 60 / (63 + 60))


def test_best_f1_threshold_by_brute_force() -> None:
    rng = np.random.default_rng(2)
    positive = rng.random(80) < 0.3
    scores = np.round(np.clip(positive * 0.2 + rng.random(80) * 0.8, 0, 1), 2)  # with ties
    threshold, f1 = best_f1_threshold(positive, scores)
    best = 0.0
    for cut in np.unique(scores):
        predicted = scores >= cut
        tp = (predicted & positive).sum()
        best = max(best, 2 * tp / (predicted.sum() + positive.sum()))
    assert f1 == pytest.approx(best)
    predicted = scores >= threshold
    assert 2 * (predicted & positive).sum() / (predicted.sum() + positive.sum()) == \
        pytest.approx(best)


def test_no_positives_gives_threshold_one() -> None:
    assert best_f1_threshold(np.zeros(5), np.linspace(0, 1, 5)) == (1.0, 0.0)


def test_per_class_falls_back_to_global_for_rare_labels() -> None:
    rng = np.random.default_rng(3)
    n = 200
    targets = np.zeros((n, 3))
    targets[:80, 0] = 1
    targets[50:130, 1] = 1
    targets[[5, 150], 2] = 1  # support 2 < min_support
    probs = np.clip(targets * 0.5 + rng.random((n, 3)) * 0.5, 0, 1)
    probs[:, 1] = np.clip(targets[:, 1] * 0.2 + rng.random(n) * 0.3, 0, 1)  # lower scale
    probs[[5, 150], 2] = [0.97, 0.99]  # its own best cut would be far above the global one
    shared = best_global_threshold(targets, probs)
    got = fit_thresholds(targets, probs, "per_class", min_support=5)
    assert got[2] == pytest.approx(shared)
    assert got[0] == pytest.approx(best_f1_threshold(targets[:, 0], probs[:, 0])[0])
    assert got[1] == pytest.approx(best_f1_threshold(targets[:, 1], probs[:, 1])[0])
    assert got[1] != pytest.approx(shared)
    assert best_f1_threshold(targets[:, 2], probs[:, 2])[0] != pytest.approx(shared)
    # with min_support lowered to 2, the rare label gets its own cut
    own = fit_thresholds(targets, probs, "per_class", min_support=2)
    assert own[2] == pytest.approx(best_f1_threshold(targets[:, 2], probs[:, 2])[0])
    np.testing.assert_allclose(fit_thresholds(targets, probs, "global"), [shared] * 3)
    np.testing.assert_allclose(fit_thresholds(targets, probs, "none"), [0.5] * 3)


def test_apply_thresholds_and_at_least_one() -> None:
    probs = np.array([[0.9, 0.2, 0.6],
                      [0.4, 0.3, 0.1],    # nothing clears its threshold
                      [0.1, 0.5, 0.35]])
    cut = np.array([0.5, 0.35, 0.4])
    plain = apply_thresholds(probs, cut)
    np.testing.assert_array_equal(plain, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    forced = apply_thresholds(probs, cut, at_least_one=True)
    # row 1: margins -0.1, -0.05, -0.3: label 1 wins though label 0 has the higher prob
    np.testing.assert_array_equal(forced, [[1, 0, 1], [0, 1, 0], [0, 1, 0]])
    assert apply_thresholds(probs, np.full(3, 0.5)).tolist()[0] == [1, 0, 1]


def test_prior_correction_to_uniform_by_hand() -> None:
    train_priors = np.array([0.5, 0.3, 0.2])
    weights = prior_weights(train_priors, np.full(3, 1 / 3))
    np.testing.assert_allclose(weights, [2 / 3, 10 / 9, 5 / 3])
    probs = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    got = reweight(probs, weights)
    # p(c) * (1/3) / train(c), renormalised: the first row becomes uniform
    np.testing.assert_allclose(got[0], [1 / 3] * 3)
    raw = np.array([0.6 / 0.5, 0.1 / 0.3, 0.3 / 0.2])
    np.testing.assert_allclose(got[1], raw / raw.sum())
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    assert got[1].argmax() == 2 and probs[1].argmax() == 0  # the decision flips


def test_least_cost_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1],
                      [0.5, 0.1, 0.4]])
    # missing class 2 (true 2, predicted 0 or 1) costs 10; other errors cost 1
    costs = np.array([[0, 1, 1],
                      [1, 0, 1],
                      [10, 10, 0]], dtype=float)
    # expected costs row 0: [0.2+1.0, 0.7+1.0, 0.9] -> class 2
    # row 1: [0.1+4.0, 0.5+4.0, 0.6] -> class 2
    np.testing.assert_array_equal(least_cost(probs, costs), [2, 2])
    np.testing.assert_array_equal(least_cost(probs, 1 - np.eye(3)), probs.argmax(axis=1))
    decision = Decision(multilabel=False, cost_matrix=costs.tolist())
    np.testing.assert_array_equal(decision.predict(probs), [2, 2])


def test_decision_roundtrip_through_json() -> None:
    decision = Decision(multilabel=False, temperature=1.7, class_weights=[0.5, 1.5],
                        cost_matrix=[[0.0, 1.0], [5.0, 0.0]], report={"ece_before": 0.1})
    again = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert again == decision
    ml = Decision(multilabel=True, thresholds=[0.3, 0.6], at_least_one=True)
    assert Decision.from_dict(json.loads(json.dumps(ml.to_dict()))) == ml
    probs = np.array([[0.2, 0.8], [0.7, 0.1]])
    np.testing.assert_allclose(again.calibrate(probs), decision.calibrate(probs))


def test_decision_calibrate_applies_temperature_then_prior_weights() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    decision = Decision(multilabel=False, temperature=2.0, class_weights=[1.0, 2.0, 4.0])
    soft = np.sqrt(probs) / np.sqrt(probs).sum()  # logits halved
    expected = soft * [1, 2, 4] / (soft * [1, 2, 4]).sum()
    np.testing.assert_allclose(decision.calibrate(probs), expected, rtol=1e-6)


def test_fit_decision_multiclass_prior_correction() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=50)
    targets = rng.integers(0, 3, size=50)
    train_priors = np.array([0.6, 0.3, 0.1])
    config = DecisionConfig(calibration="none", prior_correction="uniform")
    task = make_task("multiclass", ["a", "b", "c"])
    decision = task.fit_decision(config, targets, probs, train_priors)
    np.testing.assert_allclose(decision.class_weights, (1 / 3) / train_priors)
    assert decision.thresholds is None and decision.temperature == 1.0
    mapping = DecisionConfig(calibration="none", prior_correction={"a": 1, "b": 1})
    got = task.fit_decision(mapping, targets, probs, train_priors)
    np.testing.assert_allclose(got.class_weights, [0.5 / 0.6, 0.5 / 0.3, 0.0])
    with pytest.raises(RecipeError, match=r"decision\.prior_correction"):
        task.fit_decision(DecisionConfig(prior_correction={"zzz": 1.0}), targets, probs,
                          train_priors)
    with pytest.raises(RecipeError, match=r"decision\.cost_matrix"):
        task.fit_decision(DecisionConfig(cost_matrix=[[0, 1], [1, 0]]), targets, probs,
                          train_priors)


def test_fit_decision_multilabel_thresholds() -> None:
    rng = np.random.default_rng(4)
    targets = (rng.random((120, 2)) < 0.4).astype(float)
    probs = np.clip(targets * 0.3 + rng.random((120, 2)) * 0.6, 0, 1)
    config = DecisionConfig(calibration="none", thresholds="auto", at_least_one=True)
    decision = make_task("multilabel", ["x", "y"]).fit_decision(config, targets, probs,
                                                                targets.mean(0))
    assert decision.multilabel and decision.at_least_one
    expected = [best_f1_threshold(targets[:, i], probs[:, i])[0] for i in range(2)]
    np.testing.assert_allclose(decision.thresholds, expected)
    assert decision.class_weights is None
    assert set(decision.report) >= {"ece_before", "ece_after", "temperature"}
