"""`fitclass audit`'s checks list in `<out stem>_summary.json`: the data checks of the audited
rows (duplicates, conflicting labels, leakage into data.valid) and the audit's own rows
(suspects by method, estimated noise rate, --against copies), each with a fix; and the same
list printed as a table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from fitclass.cli.making import checks_table
from fitclass.noise.audit import audit

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, rows_maker, table_writer,
            recipe_for) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("audit_checks")
    rows = rows_maker({"sports": 40, "tech": 40, "food": 40}, seed=4, words=3)
    train, valid = rows[:100], rows[100:]
    for row in train[:6]:  # planted flips
        row["label"] = {"sports": "tech", "tech": "food", "food": "sports"}[row["label"]]
    train += [dict(train[20], id="again"), dict(train[21], id="odd", label=(
        "food" if train[21]["label"] != "food" else "tech"))]
    valid += [dict(train[30], id="leak-1"), dict(train[31], id="leak-2")]
    test = [dict(train[40], id="t1"), dict(rows[0], id="t2", text=rows[0]["text"] + " !")]
    paths = {name: table_writer(part, folder / f"{name}.csv")
             for name, part in (("train", train), ("valid", valid), ("test", test))}
    recipe = recipe_for("tfidf", paths["train"], data={"valid": str(paths["valid"])})
    out = folder / "suspects.csv"
    result = audit(recipe, out, folds=3, proxy="tfidf", against=[paths["test"]])
    return {"result": result, "out": out, "test": str(paths["test"])}


def test_summary_lists_every_check_with_a_fix(audited: dict[str, Any]) -> None:
    saved = json.loads(audited["out"].with_name("suspects_summary.json").read_text())
    listed = saved["checks"]
    assert listed == audited["result"].summary["checks"]
    by_check: dict[str, list[dict[str, Any]]] = {}
    for row in listed:
        assert set(row) >= {"check", "status", "count", "examples", "fix"}
        assert row["fix"], row["check"]
        by_check.setdefault(row["check"], []).append(row)
    assert by_check["duplicates"][0]["count"] == 2 and by_check["duplicates"][0]["status"] \
        == "warn"
    conflict = by_check["conflicting_duplicates"][0]
    assert conflict["count"] == 1 and "fitclass audit" in conflict["fix"]
    leak = by_check["leakage"][0]
    assert leak["count"] == 2 and "--against" in leak["fix"]
    copies = by_check["near_copies_against"][0]
    assert copies["count"] == 2 and copies["source"] == "audit"
    assert audited["test"] in copies["message"] and copies["examples"]
    suspects = by_check["suspects:confident_learning"][0]
    assert suspects["count"] >= 3 and str(audited["out"]) in suspects["fix"]
    assert "noise.action" in suspects["fix"] and suspects["examples"]
    assert "estimated_noise_rate" in by_check
    statuses = [row["status"] for row in listed]
    assert statuses == sorted(statuses, key=["fail", "warn", "ok"].index)


def test_printed_table_shows_checks_and_fixes(audited: dict[str, Any]) -> None:
    console = Console(width=200, record=True)
    console.print(checks_table(audited["result"].summary["checks"]))
    text = console.export_text()
    assert "conflicting_duplicates" in text and "leakage" in text
    assert "data.split.dedupe: group" in text and "suspects:confident_learning" in text
