"""`runs.layout.claim_file`: the one refusal to write over an output file fitclass did not
write, used by doctor's --json and --write-recipe and the audit's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitclass.diagnosis.recipe_file import MARKER, check_replaceable
from fitclass.diagnosis.reports import check_json_output
from fitclass.errors import RunError
from fitclass.runs.layout import claim_file, first_line, json_tool


def ours(path: Path) -> bool:
    return first_line(path).startswith("# ours")


def test_a_new_file_or_one_fitclass_wrote_is_claimed(tmp_path: Path) -> None:
    assert claim_file(tmp_path / "new.txt", ours, "ours", "--out", "x.txt") == tmp_path / "new.txt"
    (tmp_path / "old.txt").write_text("# ours\nbody\n")
    claim_file(tmp_path / "old.txt", ours, "ours", "--out", "x.txt")  # replaced later


def test_a_foreign_file_or_a_folder_is_refused_naming_file_why_and_fix(tmp_path: Path) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("my notes\n")
    with pytest.raises(RunError, match=rf"{mine}: exists and is not a notes file fitclass "
                                       rf"wrote; fitclass will not replace it \(it replaces "
                                       rf"only files it wrote\): choose another --out file, "
                                       rf"or move this one away"):
        claim_file(mine, ours, "a notes file fitclass wrote", "--out", "notes.txt")
    assert mine.read_text() == "my notes\n"
    with pytest.raises(RunError, match=rf"{tmp_path}: is a folder; --out names the file to "
                                       rf"write, e.g. {tmp_path / 'notes.txt'}"):
        claim_file(tmp_path, ours, "a notes file", "--out", "notes.txt")


def test_doctor_outputs_use_the_one_refusal(tmp_path: Path) -> None:
    recipe, found = tmp_path / "recipe.yaml", tmp_path / "doctor.json"
    recipe.write_text("data: {}\n")
    found.write_text('{"tool": "someone else"}')
    with pytest.raises(RunError, match=r"recipe.yaml: exists and is not a recipe fitclass "
                                       r"doctor wrote.*choose another --write-recipe file"):
        check_replaceable(recipe)
    with pytest.raises(RunError, match=r"doctor.json: exists and is not a diagnosis fitclass "
                                       r"doctor wrote.*choose another --json file"):
        check_json_output(found)
    recipe.write_text(f"{MARKER}\ndata: {{}}\n")
    found.write_text('{"tool": "fitclass doctor"}')
    check_replaceable(recipe)
    check_json_output(found)


def test_file_proofs_read_damaged_files_as_not_ours(tmp_path: Path) -> None:
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    assert first_line(binary) == "" and json_tool(binary) is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert json_tool(tmp_path / "list.json") is None
    assert first_line(tmp_path / "missing") == ""
