"""`fitclass doctor` on the command line (in process): the page, --json, --write-recipe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fitclass.cli import app
from fitclass.recipe import load_recipe


def test_doctor_prints_findings_and_writes_recipe_and_json(
        tmp_path: Path, rows_maker: Callable[..., list[dict[str, str]]],
        table_writer: Callable[[Any, Path], Path]) -> None:
    data = table_writer(rows_maker({"sports": 200, "tech": 30, "food": 15}), tmp_path / "t.tsv")
    recipe, findings = tmp_path / "recipe.yaml", tmp_path / "doctor.json"
    result = CliRunner().invoke(app, ["doctor", str(data), "--backbone", "tfidf",
                                      "--write-recipe", str(recipe), "--json", str(findings)])
    assert result.exit_code == 0, result.output
    assert "imbalance" in result.output and "remedy:" in result.output
    assert "imbalance.class_weights=inverse" in result.output
    assert load_recipe(recipe).imbalance.class_weights == "inverse"
    saved = json.loads(findings.read_text(encoding="utf-8"))
    assert saved["tool"] == "fitclass doctor" and "long_tail" in saved["regimes"]


def test_doctor_missing_column_exits_2_naming_the_columns(
        tmp_path: Path, rows_maker: Callable[..., list[dict[str, str]]],
        table_writer: Callable[[Any, Path], Path]) -> None:
    data = table_writer(rows_maker({"sports": 5, "tech": 5}), tmp_path / "t.csv")
    result = CliRunner().invoke(app, ["doctor", str(data), "--label", "category"])
    assert result.exit_code == 2
    assert "column 'category' not found" in result.output and "--label" in result.output
