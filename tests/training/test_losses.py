"""Every registered loss against a value computed by hand with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fitclass.errors import RecipeError
from fitclass.tasks import make_task
from fitclass.training.losses import LossSpec, focal_alpha, loss_names, make_loss

LOGITS = np.array([[2.0, 0.5, -1.0],
                   [0.1, 0.3, 0.2],
                   [-0.5, 1.5, 0.0],
                   [1.0, -2.0, 3.0]])
TARGETS = np.array([0, 2, 1, 2])
PRIORS = np.array([0.6, 0.3, 0.1])

ML_LOGITS = np.array([[1.5, -0.5, 0.2],
                      [-1.0, 2.0, -0.3],
                      [0.4, 0.1, -2.5]])
ML_TARGETS = np.array([[1.0, 0.0, 1.0],
                       [0.0, 1.0, 0.0],
                       [1.0, 1.0, 0.0]])
ML_PRIORS = np.array([0.5, 0.4, 0.2])
MULTICLASS = make_task("multiclass", ["a", "b", "c"])
MULTILABEL = make_task("multilabel", ["x", "y", "z"])


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def run(name: str, spec: LossSpec, logits: np.ndarray, targets: np.ndarray) -> float:
    loss = make_loss(name, spec)
    dtype = torch.float32 if spec.task.multilabel else torch.long
    return float(loss(torch.tensor(logits, dtype=torch.float32),
                      torch.tensor(targets, dtype=dtype)))


def test_registry_has_the_documented_losses() -> None:
    assert {"ce", "bce", "focal", "logit_adjusted"} <= set(loss_names())


@pytest.mark.parametrize("name", ["ce", "bce"])
def test_plain_multiclass_is_cross_entropy(name: str) -> None:
    p = np_softmax(LOGITS)
    expected = -np.log(p[np.arange(4), TARGETS]).mean()
    got = run(name, LossSpec(task=MULTICLASS, priors=PRIORS), LOGITS, TARGETS)
    assert got == pytest.approx(expected, rel=1e-5)


def test_ce_with_class_weights_and_label_smoothing() -> None:
    weights = np.array([0.5, 2.0, 4.0])
    eps = 0.2
    spec = LossSpec(task=MULTICLASS, priors=PRIORS, weights=weights, label_smoothing=eps)
    got = run("ce", spec, LOGITS, TARGETS)
    # torch's own weighted, smoothed cross-entropy
    reference = F.cross_entropy(torch.tensor(LOGITS, dtype=torch.float32),
                                torch.tensor(TARGETS), weight=torch.tensor(weights,
                                                                           dtype=torch.float32),
                                label_smoothing=eps)
    assert got == pytest.approx(float(reference), rel=1e-5)
    # and by hand: (1-eps) * weighted NLL + eps/C * sum_c w_c (-log p_c), over sum w_y
    log_p = np.log(np_softmax(LOGITS))
    rows = np.arange(4)
    w_y = weights[TARGETS]
    nll = (1 - eps) * (w_y * -log_p[rows, TARGETS]).sum()
    smooth = eps / 3 * (-(log_p * weights).sum())
    assert got == pytest.approx((nll + smooth) / w_y.sum(), rel=1e-5)


def test_multilabel_bce_with_pos_weight() -> None:
    pos_weight = np.array([1.0, 3.0, 0.5])
    spec = LossSpec(task=MULTILABEL, priors=ML_PRIORS, pos_weight=pos_weight)
    got = run("bce", spec, ML_LOGITS, ML_TARGETS)
    p = np_sigmoid(ML_LOGITS)
    y = ML_TARGETS
    expected = -(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert got == pytest.approx(expected, rel=1e-5)
    # pos_weight does change the loss
    plain = run("bce", LossSpec(task=MULTILABEL, priors=ML_PRIORS), ML_LOGITS, ML_TARGETS)
    assert plain == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(), rel=1e-5)
    assert plain != pytest.approx(got)


def test_focal_gamma_zero_equals_cross_entropy() -> None:
    spec = LossSpec(task=MULTICLASS, priors=PRIORS, gamma=0.0)
    ce = run("ce", LossSpec(task=MULTICLASS, priors=PRIORS), LOGITS, TARGETS)
    assert run("focal", spec, LOGITS, TARGETS) == pytest.approx(ce, rel=1e-5)


def test_focal_gamma_two_with_alpha_list() -> None:
    alpha = [0.25, 1.0, 2.0]
    spec = LossSpec(task=MULTICLASS, priors=PRIORS, gamma=2.0, alpha=alpha)
    got = run("focal", spec, LOGITS, TARGETS)
    p = np_softmax(LOGITS)
    expected = 0.0
    for row, y in enumerate(TARGETS):
        p_y = p[row, y]
        expected += -alpha[y] * (1 - p_y) ** 2 * math.log(p_y)
    expected /= len(TARGETS)
    assert got == pytest.approx(expected, rel=1e-5)
    # focusing makes it smaller than plain CE on these (alpha <= 2) rows
    assert run("focal", LossSpec(task=MULTICLASS, priors=PRIORS, gamma=2.0), LOGITS,
               TARGETS) < run("ce", LossSpec(task=MULTICLASS, priors=PRIORS), LOGITS, TARGETS)


def test_sigmoid_focal_multilabel() -> None:
    gamma, alpha = 2.0, 0.25
    spec = LossSpec(task=MULTILABEL, priors=ML_PRIORS, gamma=gamma, alpha=alpha)
    got = run("focal", spec, ML_LOGITS, ML_TARGETS)
    p = np_sigmoid(ML_LOGITS)
    y = ML_TARGETS
    p_t = np.where(y == 1, p, 1 - p)
    a_t = np.where(y == 1, alpha, 1 - alpha)
    expected = (-a_t * (1 - p_t) ** gamma * np.log(p_t)).mean()
    assert got == pytest.approx(expected, rel=1e-5)
    no_alpha = run("focal", LossSpec(task=MULTILABEL, priors=ML_PRIORS, gamma=gamma),
                   ML_LOGITS, ML_TARGETS)
    assert no_alpha == pytest.approx((-(1 - p_t) ** gamma * np.log(p_t)).mean(), rel=1e-5)


def test_logit_adjusted_is_ce_on_shifted_logits() -> None:
    tau = 1.5
    spec = LossSpec(task=MULTICLASS, priors=PRIORS, tau=tau)
    got = run("logit_adjusted", spec, LOGITS, TARGETS)
    shifted = LOGITS + tau * np.log(PRIORS)
    p = np_softmax(shifted)
    expected = -np.log(p[np.arange(4), TARGETS]).mean()
    assert got == pytest.approx(expected, rel=1e-5)
    plain = run("ce", LossSpec(task=MULTICLASS, priors=PRIORS), LOGITS, TARGETS)
    assert got != pytest.approx(plain)


def test_logit_adjusted_multilabel_shifts_by_prior_log_odds() -> None:
    spec = LossSpec(task=MULTILABEL, priors=ML_PRIORS, tau=1.0)
    got = run("logit_adjusted", spec, ML_LOGITS, ML_TARGETS)
    p = np_sigmoid(ML_LOGITS + np.log(ML_PRIORS / (1 - ML_PRIORS)))
    y = ML_TARGETS
    assert got == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(), rel=1e-5)


def test_label_smoothing_composes_with_focal() -> None:
    eps, gamma = 0.1, 2.0
    spec = LossSpec(task=MULTICLASS, priors=PRIORS, gamma=gamma, label_smoothing=eps)
    got = run("focal", spec, LOGITS, TARGETS)
    p = np_softmax(LOGITS)
    q = np.full_like(p, eps / 3)
    q[np.arange(4), TARGETS] += 1 - eps
    expected = (-(q * (1 - p) ** gamma * np.log(p)).sum(axis=1)).mean()
    assert got == pytest.approx(expected, rel=1e-5)
    unsmoothed = run("focal", LossSpec(task=MULTICLASS, priors=PRIORS, gamma=gamma),
                     LOGITS, TARGETS)
    assert got != pytest.approx(unsmoothed)


def test_label_smoothing_multilabel_bce_targets() -> None:
    eps = 0.2
    spec = LossSpec(task=MULTILABEL, priors=ML_PRIORS, label_smoothing=eps)
    got = run("bce", spec, ML_LOGITS, ML_TARGETS)
    q = ML_TARGETS * (1 - eps) + 0.5 * eps
    p = np_sigmoid(ML_LOGITS)
    assert got == pytest.approx(-(q * np.log(p) + (1 - q) * np.log(1 - p)).mean(), rel=1e-5)


def test_unknown_loss_lists_the_valid_names() -> None:
    with pytest.raises(RecipeError) as error:
        make_loss("hinge", LossSpec(task=MULTICLASS, priors=PRIORS))
    message = str(error.value)
    assert "imbalance.loss" in message and "hinge" in message
    for name in ("ce", "bce", "focal", "logit_adjusted"):
        assert repr(name) in message


def test_focal_alpha_auto_multiclass_has_mean_one_over_rows() -> None:
    alpha = focal_alpha(LossSpec(task=MULTICLASS, priors=PRIORS, alpha="auto"))
    assert alpha is not None
    assert float((alpha * PRIORS).sum()) == pytest.approx(1.0)
    # inverse square-root of the share: rarer classes weigh more, by sqrt of the ratio
    assert alpha[2] / alpha[0] == pytest.approx(math.sqrt(0.6 / 0.1))
    assert alpha[0] < alpha[1] < alpha[2]


def test_focal_alpha_auto_multilabel_and_scalar() -> None:
    ml = focal_alpha(LossSpec(task=MULTILABEL, priors=ML_PRIORS, alpha="auto"))
    np.testing.assert_allclose(ml, 1 - ML_PRIORS)
    scalar = focal_alpha(LossSpec(task=MULTICLASS, priors=PRIORS, alpha=0.5))
    np.testing.assert_allclose(scalar, [0.5, 0.5, 0.5])
    assert focal_alpha(LossSpec(task=MULTICLASS, priors=PRIORS)) is None
    with pytest.raises(RecipeError, match=r"imbalance\.alpha"):
        focal_alpha(LossSpec(task=MULTICLASS, priors=PRIORS, alpha="big"))


def test_a_loss_without_a_form_for_the_task_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from fitclass.training import losses

    registry = losses.Registry[dict[str, losses.LossFactory]]("loss", "imbalance.loss")
    registry.add("ce", losses.LOSSES.get("ce"))
    registry.add("multiclass_only", {"multiclass": losses.cross_entropy})
    monkeypatch.setattr(losses, "LOSSES", registry)
    assert run("multiclass_only", LossSpec(task=MULTICLASS, priors=PRIORS), LOGITS,
               TARGETS) == pytest.approx(run("ce", LossSpec(task=MULTICLASS, priors=PRIORS),
                                             LOGITS, TARGETS))
    with pytest.raises(RecipeError, match=r"'multiclass_only' has no form for task: "
                                          r"multilabel; choose one of \['ce'\]"):
        make_loss("multiclass_only", LossSpec(task=MULTILABEL, priors=ML_PRIORS))
