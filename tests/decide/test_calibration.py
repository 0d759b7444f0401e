"""Temperature scaling and expected calibration error on synthetic probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

from fitclass.decide.calibration import expected_calibration_error, fit_temperature, scale
from fitclass.recipe import DecisionConfig
from fitclass.target_kinds import MULTICLASS, MULTILABEL
from fitclass.tasks import make_task


def sample_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One class per row drawn from that row's probabilities."""
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((len(probs), 1))
    return np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)


@pytest.fixture(scope="module")
def overconfident() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels from softmax(z); the model reports softmax(2 z)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 1.5, size=(20000, 4))
    true = softmax(logits, axis=1)
    labels = sample_labels(rng, true)
    return labels, true, softmax(2 * logits, axis=1)


def test_fit_temperature_recovers_two(overconfident: tuple[np.ndarray, ...]) -> None:
    labels, true, reported = overconfident
    assert fit_temperature(labels, reported, MULTICLASS) == pytest.approx(2.0, abs=0.15)
    # calibrated probabilities are already right: temperature about 1
    assert fit_temperature(labels, true, MULTICLASS) == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(scale(reported, 2.0, MULTICLASS), true, atol=1e-3)


def test_fit_temperature_multilabel() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 2.0, size=(20000, 3))
    targets = (rng.random(logits.shape) < expit(logits)).astype(float)
    got = fit_temperature(targets, expit(logits * 2), MULTILABEL)
    assert got == pytest.approx(2.0, abs=0.15)
    np.testing.assert_allclose(scale(expit(logits * 2), 2.0, MULTILABEL), expit(logits), atol=1e-3)


def test_ece_small_when_calibrated_larger_when_overconfident(
        overconfident: tuple[np.ndarray, ...]) -> None:
    labels, true, reported = overconfident
    calibrated = expected_calibration_error(labels, true, MULTICLASS)
    over = expected_calibration_error(labels, reported, MULTICLASS)
    assert calibrated < 0.02
    assert over > 0.1
    assert over > 5 * calibrated


def test_ece_by_hand() -> None:
    # two rows at confidence 0.9 (one right), two at 0.6 (both right)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    targets = np.array([0, 1, 1, 1])
    expected = 0.5 * abs(0.9 - 0.5) + 0.5 * abs(0.6 - 1.0)
    assert expected_calibration_error(targets, probs, MULTICLASS) == pytest.approx(expected)
    ml = np.array([[0.2, 0.8], [0.2, 0.8]])
    ml_targets = np.array([[0, 1], [0, 0]])
    # bin 0.2: outcomes 0,0 -> 0.2 off; bin 0.8: outcomes 1,0 -> 0.3 off
    assert expected_calibration_error(ml_targets, ml, MULTILABEL) == pytest.approx(
        0.5 * 0.2 + 0.5 * 0.3)


def test_fit_decision_temperature_lowers_ece(overconfident: tuple[np.ndarray, ...]) -> None:
    labels, _, reported = overconfident
    task = make_task("multiclass", ["a", "b", "c", "d"])
    decision = task.fit_decision(DecisionConfig(), labels, reported, np.full(4, 0.25))
    assert decision.temperature == pytest.approx(2.0, abs=0.15)
    assert decision.report["ece_after"] < 0.02 < decision.report["ece_before"]
    off = task.fit_decision(DecisionConfig(calibration="none"), labels, reported,
                            np.full(4, 0.25))
    assert off.temperature == 1.0
