"""`fitclass train RECIPE --folds K [--refit]` end to end through the CLI, and its errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture
def recipe_file(tmp_path: Path, train_csv: Path,
                recipe_for: Callable[..., dict[str, Any]]) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_for("tfidf", train_csv)), encoding="utf-8")
    return path


def test_cli_folds_and_refit(tmp_path: Path, recipe_file: Path,
                             cli_main: Callable[..., tuple[int, str, str]]) -> None:
    out = tmp_path / "cv"
    code, stdout, stderr = cli_main("train", recipe_file, "--folds", "3", "--out", out)
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == str(out)
    assert "3-fold cross-validation (stratified, 1 seed(s) per fold)" in stderr
    assert "out-of-fold (120 rows)" in stderr and "best epoch per fold run: 1, 1, 1" in stderr
    code, stdout, stderr = cli_main("train", recipe_file, "--folds", "3", "--refit", "--out",
                                    out)
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == str(out / "refit")
    assert "No validation split of its own" in stderr
    data = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))["data"]["train"]
    for run in (out, out / "refit"):  # both are runs: predict and evaluate use them
        code, stdout, stderr = cli_main("predict", run, data)
        assert code == 0, stderr
        assert "prob:food" in stdout.splitlines()[0]
        code, stdout, stderr = cli_main("evaluate", run, data)
        assert code == 0 and '"macro_f1"' in stdout, stderr


def test_cli_errors(tmp_path: Path, recipe_file: Path,
                    cli_main: Callable[..., tuple[int, str, str]]) -> None:
    code, _, stderr = cli_main("train", recipe_file, "--folds", "1", "--out", tmp_path / "a")
    assert code == 2 and "--folds 1: cross-validation needs at least 2 folds" in stderr
    code, _, stderr = cli_main("train", recipe_file, "--folds", "21", "--out", tmp_path / "b")
    assert code == 2 and "class 'food' has only 20 labelled rows" in stderr
    assert "--folds 20 or fewer" in stderr
    code, _, stderr = cli_main("train", recipe_file, "--folds", "3")
    assert code == 2 and "--folds and --refit need --out DIR" in stderr
