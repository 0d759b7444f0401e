"""The report's data section: the checks list as a table (every check that ran, its status,
count, worst examples and fix), with an audit's rows when its summary is in the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import fitclass
from fitclass.report.build import write_report

pytestmark = pytest.mark.usefixtures("no_reports")


def test_report_shows_the_check_table(tmp_path: Path, rows_maker, table_writer,
                                      recipe_for) -> None:
    rows = rows_maker({"sports": 30, "tech": 30}, seed=7, words=3)
    rows += [dict(rows[0], id="again"),
             dict(rows[1], id="odd", label="tech" if rows[1]["label"] == "sports" else
                  "sports")]
    train = table_writer(rows, tmp_path / "train.csv")
    run = fitclass.train(recipe_for("tfidf", train), out=tmp_path / "run")
    audit_row = {"check": "suspects:confident_learning", "status": "warn", "count": 4,
                 "examples": ["r007: 'planted' given tech, suggested sports"],
                 "fix": "review suspects.csv, then noise.action: relabel", "message": "m",
                 "source": "audit"}
    (run.path / "suspects_summary.json").write_text(json.dumps({"checks": [audit_row]}))
    html = write_report(run.path).read_text(encoding="utf-8")
    table = html[html.index('<table id="check-list">'):]
    table = table[:table.index("</table>")]
    cells = re.findall(r"<tr[^>]*><td[^>]*>([a-z_:]+)", table)
    assert cells[:2] == ["conflicting_duplicates", "duplicates"]  # warnings first
    assert {"near_duplicates", "leakage", "class_balance",
            "suspects:confident_learning"} <= set(cells)
    assert "fitclass audit RECIPE --out suspects.csv" in table  # the conflict's fix
    assert "data.split.dedupe: group" in table and "imbalance.class_weights" in table
    assert "r007: &#39;planted&#39; given tech" in table and "(audit)" in table
