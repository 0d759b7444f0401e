"""The ensemble kind's saved member list: refused when malformed; each member found relative
to the ensemble first, then at its absolute path, by the run layer's `is_run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitclass.errors import RunError
from fitclass.models.members import checked_members, resolve_member


def test_checked_members_refuses_a_malformed_list(tmp_path: Path) -> None:
    good = [{"relative": "../a", "absolute": "/runs/a"}]
    assert checked_members(good, tmp_path / "info.json") == good
    for bad in ([], None, [{"relative": "../a"}], [{"relative": 1, "absolute": "/a"}], ["a"]):
        with pytest.raises(RunError, match=r"info\.json should list members as \{relative, "
                                           r"absolute\} paths"):
            checked_members(bad, tmp_path / "info.json")


def test_resolve_member_prefers_the_relative_path(tmp_path: Path) -> None:
    model_dir = tmp_path / "ensemble" / "model"
    beside, original = tmp_path / "member", tmp_path / "elsewhere" / "member"
    member = {"relative": "../member", "absolute": str(original)}
    runs = {beside.resolve(), original}
    assert resolve_member(model_dir, member, lambda p: p in runs) == beside.resolve()
    assert resolve_member(model_dir, member, lambda p: p == original) == original.resolve()
    with pytest.raises(RunError, match="ensemble member not found at") as error:
        resolve_member(model_dir, member, lambda p: False)
    assert str(model_dir) in str(error.value) and str(original) in str(error.value)
