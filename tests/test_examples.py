"""The shipped example recipes. Every one in examples/ runs on a fresh clone, on the data
`fitclass demo --data-only runs/demo-data` writes; examples/real/ holds the real-data
variants, each naming where its data comes from. All stay valid as the schema evolves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fitclass
from fitclass import load_recipe
from fitclass.cli import app
from fitclass.data.prepare import prepare_data

FOLDER = Path(__file__).parents[1] / "examples"
EXAMPLES = sorted(FOLDER.glob("*.yaml"))
REAL = sorted((FOLDER / "real").glob("*.yaml"))
#: Examples that train in seconds (TF-IDF): run end to end here.
FAST = ["tfidf", "grouped", "multilabel"]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6 and len(REAL) >= 5


@pytest.mark.parametrize("path", EXAMPLES + REAL, ids=[p.stem for p in EXAMPLES + REAL])
def test_example_recipe_is_valid(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.data.train.is_absolute()  # resolved against the recipe's folder


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_examples_say_where_their_data_comes_from(path: Path) -> None:
    header = "".join(line for line in path.read_text(encoding="utf-8").splitlines(True)
                     if line.startswith("#"))
    assert "Data:" in header and "https://" in header
    assert "--set data.train=" in header  # how to point it at the user's copy
    assert "examples/" in header.split("Without this data:")[1]  # the demo-data twin


def demo_data(folder: Path, *options: str) -> list[Path]:
    result = CliRunner().invoke(app, ["demo", "--data-only", str(folder), *options])
    assert result.exit_code == 0, result.output
    return [Path(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone's view: the examples, and the demo data written where they read it
    (`fitclass demo --data-only runs/demo-data`, text and images, from the clone's root)."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(FOLDER, root / "examples")
    written = demo_data(root / "runs" / "demo-data")
    assert {p.name for p in written} == {"train.csv", "valid.csv", "test.csv",
                                         "multilabel.csv", "demo_noise.csv"}
    assert all(p.is_file() for p in written)
    images = demo_data(root / "runs" / "demo-data", "--images")
    assert images[0].name == "digits" and (images[0] / "train").is_dir()
    return root


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_every_example_reads_the_demo_data(clone: Path, name: str) -> None:
    recipe = load_recipe(clone / "examples" / f"{name}.yaml")
    data = clone / "runs" / "demo-data"
    for path in (recipe.data.train, recipe.data.valid):
        assert path is None or path.is_relative_to(data)
    prepared = prepare_data(recipe.data)  # the columns it names exist; the checks pass
    assert len(prepared.train) > 100 and len(prepared.valid) > 20


@pytest.mark.parametrize("name", FAST)
def test_tfidf_examples_run_end_to_end(clone: Path, tmp_path: Path, name: str) -> None:
    run = fitclass.train(clone / "examples" / f"{name}.yaml", out=tmp_path / name)
    assert run.metrics["macro_f1"] > 0.7


def test_the_sweep_example_runs(clone: Path, tmp_path: Path) -> None:
    from fitclass.sweep import sweep

    summary = sweep(clone / "examples" / "sweep.yaml", tmp_path / "sweep", trials=2)
    assert summary["complete"] == 2


def test_the_digits_example_is_the_image_demo_recipe(clone: Path) -> None:
    from fitclass.data.demo_images import digits_recipe

    example = load_recipe(clone / "examples" / "digits.yaml").to_dict()
    demo = load_recipe(digits_recipe(clone / "runs" / "demo-data" / "digits", 20)).to_dict()
    assert example == demo


def test_demo_data_never_replaces_a_users_file(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\nmine,a\n")
    result = CliRunner().invoke(app, ["demo", "--data-only", str(tmp_path)])
    assert result.exit_code == 2
    assert "train.csv exists and is not this demo data" in result.output
    assert (tmp_path / "train.csv").read_text() == "text,label\nmine,a\n"
    assert not (tmp_path / "valid.csv").exists()  # nothing written
    (tmp_path / "digits").mkdir()
    result = CliRunner().invoke(app, ["demo", "--data-only", str(tmp_path), "--images"])
    assert result.exit_code == 2 and "is not the digits demo" in result.output
    # rewriting its own demo data is fine
    again = tmp_path / "again"
    assert demo_data(again) == demo_data(again)
