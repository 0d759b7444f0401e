"""The checks list: every data check as one row {check, status, count, examples, fix}.

A run records its data checks in `data_checks.json` (`CheckReport.to_dict`): the findings,
the class counts, and which checks ran. This turns that record into the rows the report's
data section, `fitclass audit`'s summary and its printout show: every check that ran (ok
when it found nothing), worst first, each with its count, the worst few examples and the fix,
a recipe key or a `fitclass` command. The audit adds rows of its own (`noise/findings.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["fail", "warn", "ok"]
STATUS_ORDER: dict[str, int] = {"fail": 0, "warn": 1, "ok": 2}
#: Examples shown per check, and characters of each.
SHOWN, EXAMPLE_CHARS = 3, 200
#: A class with fewer rows than the largest class / this is a minority worth a remedy.
IMBALANCE_RATIO = 10

#: Where a validation split made by fitclass leaks, this keeps copies on one side.
DEDUPE_FIX = "data.split.dedupe: group"
#: Where a separate validation file leaks, only editing the files helps.
AGAINST_FIX = ("remove the copies from data.valid (or from data.train); `fitclass audit RECIPE "
               "--out suspects.csv --against VALID_FILE` lists them")
#: After `fitclass audit` wrote SUSPECTS: acting on its rows.
ACT_ON_SUSPECTS = ("review {suspects}, then train with noise.suspects: {suspects} and "
                   "noise.action: relabel (or drop; noise.min_score is the cut)")
SUSPECTS_FIX = (f"fitclass audit RECIPE --out suspects.csv, then "
                f"{ACT_ON_SUSPECTS.format(suspects='suspects.csv')}")

#: The fix of every check, in the order the list shows checks of one status.
FIXES: dict[str, str] = {
    "empty_text": "fill or delete these rows of the file (data.text names the column)",
    "empty_path": "fill or delete these rows (data.images.column names the column)",
    "missing_label": "label or delete these rows (data.label names the column)",
    "bad_binary_label": "write 0 or 1 in every data.label column cell",
    "no_labels": "check data.label / data.label_sep",
    "label_without_positives": "add rows with the label, or remove it from data.label",
    "single_class": "add rows of the other classes, or check data.label",
    "rare_class": "add rows, merge or drop the class, or give data.valid",
    "unseen_label": "add training rows of these labels, or drop the validation rows",
    "bad_image": "replace or remove the files, or data.on_bad_image: skip",
    "leakage": DEDUPE_FIX,
    "near_duplicate_leakage": DEDUPE_FIX,
    "image_leakage": DEDUPE_FIX,
    "conflicting_duplicates": SUSPECTS_FIX,
    "conflicting_duplicate_images": "keep one copy of each image, under its right label",
    "duplicates": f"remove the repeats from data.train ({DEDUPE_FIX} keeps copies on one "
                  f"side of the split)",
    "duplicate_images": f"remove the repeated files ({DEDUPE_FIX} keeps copies on one side "
                        f"of the split)",
    "near_duplicates": f"{DEDUPE_FIX} (similarity: data.near_duplicate_threshold)",
    "near_duplicate_images": f"{DEDUPE_FIX} (distance: data.images.near_duplicate_bits)",
    "class_balance": "imbalance.class_weights: inverse (or imbalance.sampler, "
                     "imbalance.loss: focal, imbalance.minority_augment)",
    "truncation": "model.max_length",
    "extreme_size": "check the files, or data.images.min_side / max_side / max_aspect",
    "dedupe": f"none: {DEDUPE_FIX} is on",
    "mode_converted": "none needed",
    "exif_orientation": "none needed",
}
#: Checks whose fix differs when the validation rows come from their own file.
LEAKAGE_CHECKS = frozenset({"leakage", "near_duplicate_leakage", "image_leakage"})
LEVEL_STATUS: dict[str, Status] = {"error": "fail", "warning": "warn", "info": "ok"}


@dataclass
class CheckRow:
    """One check's line in the checks list."""

    check: str
    status: Status
    count: int
    examples: list[str] = field(default_factory=list)
    fix: str = ""
    #: The full finding (file, rows, what to do), or what was checked when it found nothing.
    message: str = ""
    #: `data` (the data checks) or `audit` (the audit's own evidence).
    source: str = "data"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fix_for(check: str, *, separate_valid: bool = False) -> str:
    """The recipe key or command that fixes `check`; leakage from a separate validation file
    is fixed in the files, a split fitclass makes by `data.split.dedupe: group`."""
    if check in LEAKAGE_CHECKS and separate_valid:
        return AGAINST_FIX
    return FIXES.get(check, "see the message")


def shown(examples: list[Any], rows: list[Any] | None = None) -> list[str]:
    """The first few examples, each cut short; rows named when there are no examples."""
    if not examples and rows:
        listed = ", ".join(str(row) for row in rows[:8])
        return [f"rows {listed}{' ...' if len(rows) > 8 else ''}"]
    return [_cut(str(example)) for example in examples[:SHOWN]]


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3] + "..."


def class_balance(counts: dict[str, int]) -> CheckRow | None:
    """Classes (labels) with fewer than 1 / IMBALANCE_RATIO of the largest class's rows."""
    if not counts:
        return None
    largest = max(counts.values())
    rare = sorted((n, name) for name, n in counts.items() if n * IMBALANCE_RATIO < largest)
    smallest = min(counts.values())
    ratio = largest / smallest if smallest else float("inf")
    return CheckRow(
        "class_balance", "warn" if rare else "ok", len(rare),
        [f"{name!r}: {n} rows" for n, name in rare[:SHOWN]],
        FIXES["class_balance"],
        f"{len(counts)} classes in train, largest {largest} rows, smallest {smallest} "
        f"(ratio {ratio:.1f}); {len(rare)} have under 1/{IMBALANCE_RATIO} of the largest "
        f"class's rows")


def rows_from_record(record: dict[str, Any], *, separate_valid: bool = False
                     ) -> list[CheckRow]:
    """The checks list of a run's `data_checks.json` (or `CheckReport.to_dict()`): one row
    per finding, an ok row for each check that ran and found nothing, and the class balance
    of the training rows; worst first. `separate_valid`: the validation rows come from
    `data.valid` (leakage is then fixed in the files)."""
    rows: list[CheckRow] = []
    for level in ("errors", "warnings", "info"):
        for finding in record.get(level) or []:
            if not isinstance(finding, dict) or "check" not in finding:
                continue
            check = str(finding["check"])
            rows.append(CheckRow(
                check, LEVEL_STATUS.get(str(finding.get("level")), "warn"),
                int(finding.get("count") or 0),
                shown(list(finding.get("examples") or []), list(finding.get("rows") or [])),
                fix_for(check, separate_valid=separate_valid), str(finding.get("message", ""))))
    found = {row.check for row in rows}
    for check in record.get("checked") or []:
        if check not in found:
            rows.append(CheckRow(str(check), "ok", 0, [],
                                 fix_for(str(check), separate_valid=separate_valid),
                                 "checked: nothing found"))
    balance = class_balance((record.get("class_counts") or {}).get("train") or {})
    if balance is not None:
        rows.append(balance)
    return ordered(rows)


def ordered(rows: list[CheckRow]) -> list[CheckRow]:
    """Worst status first; within one status, in `FIXES` order (unknown checks last)."""
    position = {check: i for i, check in enumerate(FIXES)}
    return sorted(rows, key=lambda row: (STATUS_ORDER[row.status],
                                         position.get(row.check, len(position))))
