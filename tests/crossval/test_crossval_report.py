"""The HTML report of a cross-validation run (scores over folds) and of a refit (no
validation split of its own; the expected score it carries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fitclass
from fitclass.report.build import write_report

pytestmark = pytest.mark.usefixtures("no_reports")


def test_reports_show_cv_scores_and_the_refit_origin(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    out = tmp_path / "cv"
    refit = fitclass.train(recipe_for("tfidf", train_csv), out=out, folds=3, refit=True)
    cv_html = write_report(out).read_text(encoding="utf-8")
    assert "Cross-validation: 3 folds (stratified, 1 seed(s) per fold, 120 rows)" in cv_html
    interval = fitclass.load_run(out).metrics["cv"]["macro_f1"]
    assert f"[{interval['low']:.4f}, {interval['high']:.4f}]" in cv_html
    assert "fold-2 (1.0)" in cv_html  # each fold run with its best epoch
    refit_html = write_report(refit.path).read_text(encoding="utf-8")
    assert "No validation split of its own." in refit_html
    assert "trained on all 120 labelled rows" in refit_html
    assert "Cross-validation: 3 folds" in refit_html  # the expected score it carries
