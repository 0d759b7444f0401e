"""Every shipped example recipe stays valid as the recipe schema evolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitclass import load_recipe

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_recipe_is_valid(path: Path) -> None:
    recipe = load_recipe(path)
    # data paths resolve against the recipe's folder, to the shared data beside the repo
    assert recipe.data.train.is_absolute()
    assert recipe.data.train.parts[-3:-1][0] == "data"
