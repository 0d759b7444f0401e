"""The checks list: planted duplicates, conflicting labels and leakage each get a row with
their count, examples and the fix; checks that found nothing are listed as ok."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fitclass.data.check_list import (
    AGAINST_FIX,
    DEDUPE_FIX,
    SUSPECTS_FIX,
    class_balance,
    rows_from_record,
)
from fitclass.data.prepare import prepare_data
from fitclass.recipe import DataConfig


def _by_check(rows: list[Any]) -> dict[str, Any]:
    return {row.check: row for row in rows}


def _planted(rows_maker) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Train rows with 2 exact repeats and 1 text under two labels; validation rows of which
    3 copy a training text."""
    rows = rows_maker({"sports": 40, "tech": 40}, seed=5)
    train, valid = rows[:64], rows[64:]
    train += [dict(train[0], id="rep-1"), dict(train[1], id="rep-2", text=train[1]["text"]
                                                   .upper())]
    other = "tech" if train[2]["label"] == "sports" else "sports"
    train.append(dict(train[2], id="conflict", label=other))
    valid += [dict(train[k], id=f"leak-{k}") for k in (10, 11, 12)]
    return train, valid


def test_planted_problems_are_named_with_counts_and_fixes(tmp_path: Path, rows_maker,
                                                          table_writer) -> None:
    train, valid = _planted(rows_maker)
    config = DataConfig(train=table_writer(train, tmp_path / "train.csv"),
                        valid=table_writer(valid, tmp_path / "valid.csv"), id="id")
    record = prepare_data(config).report.to_dict()
    assert {"duplicates", "conflicting_duplicates", "leakage",
            "near_duplicates"} <= set(record["checked"])
    rows = rows_from_record(record, separate_valid=True)
    found = _by_check(rows)
    # train[2] repeated under another label is a duplicate too: 3 repeated rows
    assert found["duplicates"].status == "warn" and found["duplicates"].count == 3
    assert "data.split.dedupe: group" in found["duplicates"].fix
    conflict = found["conflicting_duplicates"]
    assert conflict.status == "warn" and conflict.count == 1
    assert conflict.fix == SUSPECTS_FIX and "fitclass audit" in conflict.fix
    assert train[2]["text"][:40] in conflict.examples[0]
    leak = found["leakage"]
    assert leak.status == "warn" and leak.count == 3 and leak.fix == AGAINST_FIX
    assert "--against" in leak.fix and len(leak.examples) == 3
    assert found["near_duplicates"].status == "ok" and found["near_duplicates"].count == 0
    assert found["class_balance"].status == "ok"
    statuses = [row.status for row in rows]  # worst first
    assert statuses == sorted(statuses, key=["fail", "warn", "ok"].index)
    for row in rows:
        assert row.fix, row.check


def test_split_leakage_is_fixed_by_dedupe(rows_maker) -> None:
    record = {"warnings": [{"level": "warning", "check": "leakage", "message": "m",
                            "count": 2, "rows": [4, 9], "examples": []}], "checked": []}
    leak = _by_check(rows_from_record(record))["leakage"]
    assert leak.fix == DEDUPE_FIX and leak.examples == ["rows 4, 9"]


def test_old_records_without_checked_list_only_findings() -> None:
    rows = rows_from_record({"warnings": [], "info": [], "class_counts": {}})
    assert rows == []


def test_class_balance_warns_on_a_tiny_class() -> None:
    row = class_balance({"big": 500, "mid": 80, "tiny": 7})
    assert row is not None and row.status == "warn" and row.count == 1
    assert row.examples == ["'tiny': 7 rows"] and "imbalance.class_weights" in row.fix
    ok = class_balance({"x": 50, "y": 40})
    assert ok is not None and ok.status == "ok" and ok.count == 0
