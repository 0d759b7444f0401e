"""`RunDir.create(..., within=LAYOUT)`: a run written into a folder of another kind keeps
that folder's own entries, and the overwrite rule still refuses what fitclass did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fitclass.errors import RunError
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import MARKER, RUN, Layout, claim_folder

HOST = Layout("host", RUN.names | frozenset({"trials", "host.json"}), patterns=RUN.patterns)


def hosted_run(path: Path) -> None:
    run = RunDir.create(path, overwrite=True, within=HOST)
    try:
        run.write_json("metrics.json", {"accuracy": 1.0})
        run.set_status("finished")
    finally:
        run.release()


def test_a_run_inside_a_host_folder_is_replaced_without_touching_the_hosts_entries(
        tmp_path: Path) -> None:
    out = claim_folder(tmp_path / "out", HOST)
    (out / "trials").mkdir()
    (out / "trials" / "kept.txt").write_text("a trial")
    (out / "host.json").write_text("{}")
    hosted_run(out)
    (out / "history.csv").write_text("old run entry")
    hosted_run(out)  # the second run replaces the first one's entries only
    assert (out / "trials" / "kept.txt").read_text() == "a trial"
    assert (out / "host.json").is_file()
    assert json.loads((out / MARKER).read_text())["kind"] == "host"
    assert not (out / "history.csv").exists()
    assert RunDir(out).status() == "finished"


def test_a_foreign_entry_in_the_host_folder_is_refused_and_kept(tmp_path: Path) -> None:
    out = claim_folder(tmp_path / "out", HOST)
    hosted_run(out)
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(RunError, match=r"mine\.txt, which fitclass does not write into host"):
        hosted_run(out)
    assert (out / "mine.txt").read_text() == "keep me"
    # as a plain run folder (no within) the host's entries are foreign: refused too
    (out / "mine.txt").unlink()
    (out / "trials").mkdir()
    with pytest.raises(RunError, match="will not write into this folder"):
        RunDir.create(out, overwrite=True)
    assert (out / "trials").is_dir()
