"""Hostile output paths of the newer refusals: `fitclass doctor` writing over a file it did
not write, an ONNX export into a member folder holding other files, and `export --merge` of a
run that has no adapters. Each refusal names the path, why, and the fix, and leaves every
file as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fitclass

pytestmark = pytest.mark.usefixtures("no_reports")

Cli = Callable[..., tuple[int, str, str]]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
         recipe_for: Callable[..., dict[str, Any]]) -> dict[str, Path]:
    """A tiny-BERT run trained without adapters and a TF-IDF run."""
    root = tmp_path_factory.mktemp("outputs")
    bert = fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}),
                          out=root / "bert")
    tfidf = fitclass.train(recipe_for("tfidf", train_csv), out=root / "tfidf")
    return {"bert": bert.path, "tfidf": tfidf.path}


# --- fitclass doctor --json / --write-recipe ---------------------------------------------------

@pytest.mark.parametrize(("flag", "mine"), [("--json", '{"tool": "jq", "rows": 3}\n'),
                                            ("--write-recipe", "data:\n  train: mine.csv\n")])
def test_doctor_never_writes_over_a_file_it_did_not_write(cli_main: Cli, tmp_path: Path,
                                                          train_csv: Path, flag: str,
                                                          mine: str) -> None:
    target = tmp_path / "mine.out"
    target.write_text(mine, encoding="utf-8")
    code, _, err = cli_main("doctor", train_csv, "--backbone", "tfidf", "--no-noise", flag,
                            target)
    assert code == 2
    text = " ".join(err.split())
    assert f"{target}: exists and is not" in text and "fitclass will not replace it" in text
    assert f"choose another {flag} file" in text
    assert target.read_text(encoding="utf-8") == mine
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, err = cli_main("doctor", train_csv, "--backbone", "tfidf", "--no-noise", flag,
                            folder)
    assert code == 2 and f"{folder}: is a folder; {flag} names the file" in " ".join(err.split())
    assert list(folder.iterdir()) == []


def test_doctor_replaces_its_own_outputs(cli_main: Cli, tmp_path: Path,
                                         train_csv: Path) -> None:
    """The refusal is about ownership: doctor's own files are replaced on a second call."""
    found, recipe = tmp_path / "doctor.json", tmp_path / "recipe.yaml"
    for _ in range(2):
        code, _, err = cli_main("doctor", train_csv, "--backbone", "tfidf", "--no-noise",
                                "--json", found, "--write-recipe", recipe)
        assert code == 0, err
    assert json.loads(found.read_text())["tool"] == "fitclass doctor"


# --- fitclass export --onnx into a member folder with other files ------------------------------

def test_ensemble_export_refuses_a_member_folder_holding_other_files(
        tmp_path: Path, runs: dict[str, Path]) -> None:
    pytest.importorskip("onnxruntime")
    from fitclass.errors import RunError
    from fitclass.export import export_onnx

    out = tmp_path / "ensemble"
    fitclass.ensemble([runs["bert"], runs["tfidf"]], out)
    export_onnx(out)
    member = out / "onnx" / "members" / "bert"
    (member / "notes.txt").write_text("mine")
    before = snapshot(out / "onnx")
    with pytest.raises(RunError, match=r"members/bert: fitclass will not write into this "
                                       r"folder: it holds notes.txt.*move those files out"):
        export_onnx(out)
    assert snapshot(out / "onnx") == before  # refused before anything was deleted
    assert len(fitclass.load_run(out).predict(["a goal"], engine="onnx")) == 1


# --- fitclass export --merge of a run without adapters -----------------------------------------

@pytest.mark.parametrize("name", ["bert", "tfidf"])
def test_merge_refuses_a_run_without_adapters(cli_main: Cli, runs: dict[str, Path],
                                              name: str) -> None:
    run = runs[name]
    before = snapshot(run)
    code, out, err = cli_main("export", run, "--merge")
    text = " ".join(err.split())
    assert code == 2 and out == ""
    assert f"{run}: its model" in text and "has no adapters" in text
    assert "trained without model.peft" in text and "use it as it is" in text
    assert not run.with_name(f"{run.name}-merged").exists()
    assert snapshot(run) == before
