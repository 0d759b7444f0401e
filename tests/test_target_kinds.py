"""The two target kinds against hand-computed values: counts, weights, strata, logits,
log-loss, calibration pairs and label text."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

from fitclass.target_kinds import (
    KINDS,
    MULTICLASS,
    MULTILABEL,
    TargetKind,
    kind_for,
    kind_of,
)

INDICES = np.array([0, 2, 2, 0, 0])
MATRIX = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=np.float32)


def test_kinds_by_name_flag_and_shape() -> None:
    assert KINDS == {"multiclass": MULTICLASS, "multilabel": MULTILABEL}
    assert kind_for(False) is MULTICLASS and kind_for(True) is MULTILABEL
    assert kind_of(INDICES) is MULTICLASS and kind_of(MATRIX) is MULTILABEL
    assert MULTICLASS.label_sep is None and MULTILABEL.label_sep == "|"


def test_class_counts_and_priors() -> None:
    np.testing.assert_array_equal(MULTICLASS.class_counts(INDICES, 4), [3, 0, 2, 0])
    np.testing.assert_allclose(MULTICLASS.priors(INDICES, 4), [0.6, 0.0, 0.4, 0.0])
    np.testing.assert_array_equal(MULTILABEL.class_counts(MATRIX, 3), [3, 1, 1])
    np.testing.assert_allclose(MULTILABEL.priors(MATRIX, 3), [0.75, 0.25, 0.25])
    assert MULTICLASS.priors(np.array([], dtype=int), 2).tolist() == [0.0, 0.0]


def test_rows_by_class() -> None:
    assert [r.tolist() for r in MULTICLASS.rows_by_class(INDICES)] == [[0, 3, 4], [], [1, 2]]
    assert [r.tolist() for r in MULTILABEL.rows_by_class(MATRIX)] == [[0, 1, 3], [1], [3]]


def test_row_weights_inverse_frequency() -> None:
    np.testing.assert_allclose(MULTICLASS.row_weights(INDICES), [1 / 3, 1 / 2, 1 / 2, 1 / 3,
                                                                 1 / 3])
    # the rarest label of each row; the row without labels counts as a class of its own
    np.testing.assert_allclose(MULTILABEL.row_weights(MATRIX), [1 / 3, 1.0, 1.0, 1.0])


def test_strata() -> None:
    np.testing.assert_array_equal(MULTICLASS.strata(INDICES), INDICES)
    # rarest label per row; no labels -> stratum 3 (one past the last label)
    np.testing.assert_array_equal(MULTILABEL.strata(MATRIX), [0, 1, 3, 2])


@pytest.mark.parametrize("kind", [MULTICLASS, MULTILABEL])
def test_logits_round_trip(kind: TargetKind) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=6) if not kind.multilabel else rng.random((6, 3))
    np.testing.assert_allclose(kind.activate(kind.to_logits(probs)), probs, atol=1e-6)


def test_activation_is_softmax_or_sigmoid() -> None:
    logits = np.array([[1.0, -0.5, 2.0]])
    np.testing.assert_allclose(MULTICLASS.activate(logits), softmax(logits, axis=1))
    np.testing.assert_allclose(MULTILABEL.activate(logits), expit(logits))


def test_log_loss_and_nll() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    targets = np.array([0, 2])
    expected = -(np.log(0.7) + np.log(0.8)) / 2
    assert MULTICLASS.log_loss(targets, probs) == pytest.approx(expected)
    assert MULTICLASS.nll(targets, np.log(probs)) == pytest.approx(expected)
    matrix = np.array([[1.0, 0.0], [0.0, 1.0]])
    label_probs = np.array([[0.9, 0.2], [0.4, 0.6]])
    per_label = -np.log([0.9, 0.8, 0.6, 0.6])
    assert MULTILABEL.log_loss(matrix, label_probs) == pytest.approx(per_label.mean())
    logits = np.log(label_probs / (1 - label_probs))
    assert MULTILABEL.nll(matrix, logits) == pytest.approx(per_label.mean())
    # a probability of 0 for the truth is clipped, not infinite
    assert np.isfinite(MULTICLASS.log_loss(np.array([1]), np.array([[1.0, 0.0]])))


def test_confidence_correct_indicator_and_restore() -> None:
    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    confidence, correct = MULTICLASS.confidence_and_correct(np.array([0, 0]), probs)
    np.testing.assert_allclose(confidence, [0.7, 0.6])
    np.testing.assert_array_equal(correct, [1.0, 0.0])
    matrix = np.array([[1, 0], [0, 0]])
    confidence, correct = MULTILABEL.confidence_and_correct(matrix, probs)
    np.testing.assert_allclose(confidence, [0.7, 0.3, 0.4, 0.6])
    np.testing.assert_array_equal(correct, [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(MULTICLASS.indicator(np.array([1, 0]), 3),
                                  [[0, 1, 0], [1, 0, 0]])
    assert MULTILABEL.indicator(matrix, 2) is matrix
    restored = MULTICLASS.restore(np.array([2.0, 0.0]))
    assert restored.dtype.kind == "i" and restored.tolist() == [2, 0]
    saved = np.array([[1.0, 0.0]], dtype=np.float32)
    assert MULTILABEL.restore(saved) is saved


def test_label_text_round_trip() -> None:
    assert MULTICLASS.label_text("sports") == "sports"
    assert MULTICLASS.parse_label(3) == "3"  # a numeric cell read back by pandas
    assert MULTILABEL.label_text(("food", "tech")) == "food|tech"
    assert MULTILABEL.parse_label("food|tech") == ("food", "tech")
    assert MULTILABEL.parse_label("") == () and MULTILABEL.parse_label(float("nan")) == ()
