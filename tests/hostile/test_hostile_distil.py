"""Hostile distillations: each refusal of `fitclass distil` names the key or file at fault
and the fix, and refuses before it writes anything."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fitclass
from fitclass.distilling.workflow import student_recipe
from fitclass.errors import DataError, RecipeError, RunError
from fitclass.recipe import load_recipe


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
            recipe_for: Callable[..., dict[str, Any]]) -> Path:
    """A finished TF-IDF run (three classes) to distil from."""
    out = tmp_path_factory.mktemp("hostile-teacher") / "run"
    return fitclass.train(recipe_for("tfidf", train_csv), out=out).path


def refused(error: type[Exception], *parts: str, call: Callable[[], Any]) -> str:
    """The message of `call`'s refusal, which must contain every one of `parts`."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for part in parts:
        assert part in message, (part, message)
    return message


@pytest.mark.parametrize("backbone", ["tfidf", "ensemble"])
def test_a_student_that_learns_no_network(tmp_path: Path, teacher: Path,
                                          backbone: str) -> None:
    out = tmp_path / "out"
    refused(RecipeError, f"model.backbone {backbone!r}", "cannot be a student",
            "--student minilm",
            call=lambda: fitclass.distil(teacher, student=backbone, out=out))
    assert not out.exists()


def test_a_run_folder_as_the_student(tmp_path: Path, teacher: Path) -> None:
    """An ensemble's (or any run's) folder is a trained model: it teaches, never learns."""
    out = tmp_path / "out"
    refused(RecipeError, f"--student {teacher}", "is a fitclass run folder",
            "not a backbone", "give it as the teacher",
            call=lambda: fitclass.distil(teacher, student=str(teacher), out=out))
    assert not out.exists()


def test_images(tmp_path: Path, teacher: Path) -> None:
    recipe = {"data": {"train": str(tmp_path), "images": {}}, "model": {"backbone":
                                                                          "resnet-tiny"},
              "distil": {"teacher": str(teacher)}}
    refused(RecipeError, "data.images", "text-only", "remove the distil section",
            call=lambda: load_recipe(recipe))


@pytest.mark.parametrize(("override", "key"), [
    ("noise.coteaching.forget_rate=0.2", "noise.coteaching"),
    ("self_training.unlabelled=more.csv", "self_training"),
])
def test_coteaching_and_self_training(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                                      override: str, key: str) -> None:
    out = tmp_path / "out"
    message = refused(RecipeError, f"does not combine with {key}", f"remove {key}",
                      "or the distil section",
                      call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir),
                                                   out=out, overrides=[override]))
    assert "coteaching" not in message or key == "noise.coteaching"  # names the one set
    assert not out.exists()


@pytest.mark.parametrize("overrides", [["data.split.folds=3", "data.split.fold=0"],
                                       ["data.split.refit=true"]], ids=["fold", "refit"])
def test_folds_or_refit_in_the_student(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                                       overrides: list[str]) -> None:
    out = tmp_path / "out"
    refused(RecipeError, "keeps validation rows", "remove data.split.folds/fold/refit",
            call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir), out=out,
                                         overrides=overrides))
    assert not out.exists()


def test_cross_validating_a_student_recipe(tmp_path: Path, teacher: Path,
                                           tiny_bert_dir: Path) -> None:
    """`fitclass train --folds` on a recipe with a distil section: its fold runs would
    validate on rows the student trained on."""
    recipe = student_recipe(fitclass.load_run(teacher), str(tiny_bert_dir))
    for flags, named in (({"folds": 3}, "--folds"), ({"refit": True}, "--refit")):
        out = tmp_path / named.strip("-")
        refused(RecipeError, f"{named} with a distil section", "data.split.folds/refit",
                "train the student without --folds and --refit",
                call=lambda: fitclass.train(recipe, out=out, **flags))  # noqa: B023
        assert not out.exists()


def test_a_teacher_that_is_not_a_run(tmp_path: Path, tiny_bert_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"not a run")
    refused(RunError, "distil.teacher", str(folder), "not a fitclass run folder",
            "give the folder `fitclass train`",
            call=lambda: fitclass.distil(folder, student=str(tiny_bert_dir),
                                         out=tmp_path / "out"))
    refused(RunError, "distil.teacher", str(tmp_path / "missing"), "does not exist",
            call=lambda: fitclass.distil(tmp_path / "missing", student=str(tiny_bert_dir),
                                         out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_unlabelled_file_without_the_text_column(tmp_path: Path, teacher: Path,
                                                    tiny_bert_dir: Path) -> None:
    bad = tmp_path / "sentences.csv"
    pd.DataFrame({"sentence": ["a b c", "d e f"]}).to_csv(bad, index=False)
    refused(DataError, "distil.unlabelled", bad.name, "no column 'text'", "['sentence']",
            "rename the file's text column to 'text'",
            call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir),
                                         out=tmp_path / "out", unlabelled=bad))
    refused(DataError, "distil.unlabelled", "absent.csv", "does not exist",
            call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir),
                                         out=tmp_path / "out2",
                                         unlabelled=tmp_path / "absent.csv"))


def test_a_class_set_mismatch(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                              rows_maker: Callable[..., list[dict[str, str]]]) -> None:
    two = tmp_path / "two.csv"
    pd.DataFrame(rows_maker({"sports": 30, "tech": 30})).to_csv(two, index=False)
    message = refused(DataError, "distil.teacher", teacher.parent.name, two.name,
                      "drop --set data.* overrides", "train a teacher on this data first",
                      call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir),
                                                   out=tmp_path / "out",
                                                   overrides=[f"data.train={two}"]))
    assert re.search(r"predicts the classes \['food', 'sports', 'tech'\].*has "
                     r"\['sports', 'tech'\]", message)


def test_a_foreign_out(tmp_path: Path, teacher: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused(RunError, out.name, "fitclass will not write into this folder", "--out",
            call=lambda: fitclass.distil(teacher, student=str(tiny_bert_dir), out=out,
                                         overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
