"""`fitclass audit`'s checks list (`checks` in `<out stem>_summary.json`): the data checks of
the audited rows (`data.table_checks`, as `data.check_list` rows) and the audit's own
evidence, each with its count, worst examples and fix:

- suspects, one row per method that flagged rows (`methods` column of the suspects table),
  the most suspect first;
- the estimated noise rate per given class (cleanlab's joint of given and true labels);
- `--against` files: rows with an exact or near copy in train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.data.check_list import (
    ACT_ON_SUSPECTS,
    SHOWN,
    CheckRow,
    ordered,
    rows_from_record,
    shown,
)
from fitclass.data.prepare import read_inputs
from fitclass.data.table import TextTable
from fitclass.data.table_checks import labelled_table_checks
from fitclass.noise import near_copies
from fitclass.recipe import DataConfig

#: An estimated share of wrong labels from which the noise-rate check warns.
NOISY_SHARE = 0.05
NOISE_FIX = (f"{ACT_ON_SUSPECTS}; or train with noise.label_smoothing, noise.bootstrap or "
             f"noise.coteaching")


def suspect_rows(suspects: pd.DataFrame, out: Path) -> list[CheckRow]:
    """One row per method that flagged rows: how many, and the most suspect of them."""
    needed = {"id", "text", "given_label", "suggested_label", "score", "methods"}
    if not needed <= set(suspects.columns):
        return []
    fix = ACT_ON_SUSPECTS.format(suspects=out)
    if suspects.empty:
        return [CheckRow("suspects", "ok", 0, [], fix, "no row was flagged", "audit")]
    methods = suspects["methods"].astype(str).str.split("+")
    rows = []
    for method in sorted({m for listed in methods for m in listed if m}):
        flagged = suspects[methods.map(lambda listed, m=method: m in listed)]
        examples = [f"{row['id']}: {str(row['text'])[:80]!r} given {row['given_label']}, "
                    f"suggested {row['suggested_label']} (score {float(row['score']):.3f})"
                    for _, row in flagged.head(SHOWN).iterrows()]
        rows.append(CheckRow(
            f"suspects:{method}", "warn", len(flagged), shown(examples), fix,
            f"{len(flagged)} training rows flagged by {method} (listed in {out}, most "
            f"suspect first)", "audit"))
    return rows


def noise_rate_row(summary: dict[str, Any], out: Path) -> CheckRow | None:
    """The estimated share of wrong labels, the noisiest classes and most confused pairs."""
    rates = summary.get("estimated_noise_rate")
    share = summary.get("estimated_noisy_share")
    if not isinstance(rates, dict) or not isinstance(share, float | int):
        return None
    noisiest = sorted(((rate, name) for name, rate in rates.items() if rate is not None),
                      reverse=True)
    examples = [f"given {name!r}: {rate:.1%} estimated wrong" for rate, name in noisiest
                if rate > 0][:SHOWN]
    examples += [f"given {pair['given']!r}, likely {pair['likely_true']!r}: "
                 f"{pair['share_of_rows']:.1%} of rows"
                 for pair in (summary.get("most_confused") or [])[:1]]
    rows = int(summary.get("rows") or 0)
    return CheckRow(
        "estimated_noise_rate", "warn" if share >= NOISY_SHARE else "ok",
        round(share * rows), examples, NOISE_FIX.format(suspects=out),
        f"about {share:.1%} of the {rows} training labels are estimated wrong (cleanlab's "
        f"joint of given and true labels on out-of-fold probabilities)", "audit")


def near_copy_rows(summary: dict[str, Any], copies: pd.DataFrame | None) -> list[CheckRow]:
    """Per `--against` file: its rows with an exact or near copy in train."""
    against = (summary.get("near_copies") or {}).get("against") or {}
    rows = []
    for name, found in against.items():
        hits = (copies[copies["file"] == name].sort_values("similarity", ascending=False)
                if copies is not None and len(copies) else pd.DataFrame())
        examples = [f"row {row['row']} ~ train row {row['train_row']} "
                    f"({float(row['similarity']):.2f}): {str(row['text'])[:80]!r}"
                    for _, row in hits.head(SHOWN).iterrows()]
        count = int(found.get("with_copy_in_train", 0))
        rows.append(CheckRow(
            "near_copies_against", "warn" if count else "ok", count, examples,
            near_copies.FIX,
            f"{name}: {count} of {found.get('rows')} rows have an exact or near copy in "
            f"train ({found.get('exact')} exact); its scores would be optimistic", "audit"))
    return rows


def audit_checks(table: TextTable, config: DataConfig, suspects: pd.DataFrame,
                 summary: dict[str, Any], out: str | Path,
                 copies: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """The audit summary's `checks`: the data checks of the audited rows (and leakage into
    `data.valid` when the recipe names one), then the audit's own rows, worst first."""
    valid = (read_inputs(config.valid, config, optional_id=True)
             if config.valid is not None else None)
    record = labelled_table_checks(table, config, valid).to_dict()
    rows = rows_from_record(record, separate_valid=True)
    rows += suspect_rows(suspects, Path(out))
    noise = noise_rate_row(summary, Path(out))
    rows += [noise] if noise is not None else []
    rows += near_copy_rows(summary, copies)
    return [row.to_dict() for row in ordered(rows)]
