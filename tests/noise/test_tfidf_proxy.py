"""The TF-IDF proxy in memory (`noise.proxies.oof_tfidf`): scikit-learn's cross-fit of the
TF-IDF backbone's vectoriser and C, and the proxy `fitclass doctor`'s noise estimate uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from fitclass.diagnosis import label_noise
from fitclass.models.classical import TfidfBackbone, flatten
from fitclass.noise import proxies
from fitclass.recipe import ModelConfig


def table(rows_maker: Callable[..., list[dict[str, str]]]) -> tuple[list[str], np.ndarray]:
    rows = rows_maker({"sports": 40, "tech": 30, "food": 12})
    names = sorted({row["label"] for row in rows})
    return [row["text"] for row in rows], np.array([names.index(r["label"]) for r in rows])


def test_oof_tfidf_is_scikit_learns_cross_fit(rows_maker: Callable[..., Any]) -> None:
    texts, targets = table(rows_maker)
    config = ModelConfig(backbone="tfidf")
    features = TfidfBackbone(config).vectorizer().fit_transform(flatten(texts))
    expected = cross_val_predict(LogisticRegression(C=config.C, tol=1e-3, max_iter=300),
                                 features, targets, method="predict_proba",
                                 cv=StratifiedKFold(5, shuffle=True, random_state=0))
    found = proxies.oof_tfidf(texts, targets, folds=5, seed=0)
    np.testing.assert_allclose(found, expected, atol=1e-9)
    assert found.shape == (len(texts), 3)


def test_the_doctor_estimates_noise_with_the_audit_proxy(
        rows_maker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    texts, targets = table(rows_maker)
    calls: list[int] = []
    original = proxies.oof_tfidf

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(proxies, "oof_tfidf", spy)
    names = ["food", "sports", "tech"]
    summary = label_noise.estimate_noise(texts, [names[t] for t in targets], names)
    assert calls == [len(texts)]
    assert summary is not None and summary["rows"] == len(texts) and summary["folds"] == 5
