"""`fitclass audit`: out-of-fold probabilities for every training row, then suspect labels.

The workflow and its output checks. The proxies that give out-of-fold probabilities are in
`noise/proxies.py`, the outlier check in `noise/outliers.py`, and the rule that combines
confident learning, training dynamics, duplicates and outliers into one ranking in
`noise/ranking.py`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.data.dedupe_groups import dedupe_groups
from fitclass.data.prepare import class_names_of, read_labelled
from fitclass.errors import FitclassError
from fitclass.noise import findings, near_copies, scoring
from fitclass.noise.outliers import THRESHOLD, Outliers, outliers_of
from fitclass.noise.proxies import fold_splits, parse_proxies, run_proxies
from fitclass.noise.ranking import RULE, SUSPECT_COLUMNS, is_suspects_header, rank_suspects
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs.layout import claim_file
from fitclass.target_kinds import KINDS


@dataclass
class AuditResult:
    suspects: pd.DataFrame
    summary: dict[str, Any]
    #: The proxies' out-of-fold probabilities mixed as the ranking mixes them.
    oof_probs: np.ndarray
    #: `--against`: rows of those files with an exact or near copy in train.
    near_copies: pd.DataFrame | None = None
    #: Each proxy's own out-of-fold probabilities.
    proxy_probs: dict[str, np.ndarray] = field(default_factory=dict)


def audit(recipe: Any, out: str | Path, *, folds: int = 5,
          proxy: str | Sequence[str] | None = None, overrides: list[str] | None = None,
          work_dir: str | Path | None = None, seed: int = 0, device: str | None = None,
          against: Sequence[str | Path] | None = None) -> AuditResult:
    """Rank the training rows of `recipe` by how likely their label is wrong; write
    `out` (suspects CSV) and `<out stem>_summary.json`. `proxy`: a comma list (or a
    sequence) of tfidf, linear_probe and model (the recipe's own model in fold runs), or
    `auto`/None (`noise/proxies.py`). The proxies and fold runs predict on `device` (auto,
    cpu, cuda, cuda:N, mps; default auto). `against`: files whose rows to look for in train
    as exact or near copies (`<out stem>_near_copies.csv`)."""
    from fitclass.precision import resolve_device
    if folds < 2:
        raise FitclassError("--folds must be at least 2")
    config = load_recipe(recipe, overrides)
    proxies = parse_proxies(proxy, config)
    resolve_device(device)  # a device that is not here fails before any fold trains
    data = config.data
    if data.images is not None:  # an image root holding train/ (and valid/) audits train/
        from fitclass.data.image_tables import resolve_layout

        data = resolve_layout(data)
    table = read_labelled(data.train, data, data.limit)
    class_names = class_names_of(table, config.data)
    targets, kind = table.targets(class_names), KINDS[config.task]
    groups = dedupe_groups(table, data)  # near-duplicate clusters never straddle folds
    splits = fold_splits(targets, kind, groups, folds, seed)
    out = Path(out)
    summary_path = out.with_name(f"{out.stem}_summary.json")
    check_outputs(out, summary_path, config)
    copies = None
    if against:  # before any fold trains: a missing file or a foreign output fails fast
        near_copies.check_output(near_copies.output_path(out))
        copies, copies_summary = near_copies.near_copies(table, against, data)
    work = Path(work_dir) if work_dir else out.with_name(f"{out.stem}_folds")
    found = run_proxies(proxies, config, table, class_names, targets, splits, work,
                        groups=groups, folds=folds, seed=seed, device=device)
    outliers = outliers_of(config, table, targets, found.features)
    ranking = rank_suspects(table, class_names, targets, kind, found.probs, found.margins,
                            outliers)
    suspects, probs = ranking.suspects, ranking.probs
    summary = scoring.noise_summary(targets, kind, probs, class_names) | {
        "rows": len(table), "suspects": len(suspects), "folds": folds,
        "proxy": ",".join(proxies), "methods": sorted({m for ms in suspects["methods"]
                                                       for m in ms.split("+")}),
        "proxy_weights": ranking.weights, "ranking": RULE,
        "outliers": _outlier_summary(outliers),
    }
    if copies is not None:
        summary["near_copies"] = copies_summary
        atomic_write_text(near_copies.output_path(out), copies.to_csv(index=False))
    summary["checks"] = findings.audit_checks(table, data, suspects, summary, out, copies)
    atomic_write_text(out, suspects.to_csv(index=False))
    atomic_write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False))
    return AuditResult(suspects=suspects, summary=summary, oof_probs=probs,
                       near_copies=copies, proxy_probs=found.probs)


def _outlier_summary(outliers: Outliers | None) -> dict[str, Any]:
    if outliers is None:
        return {"note": "no outlier check: an image audit measures outliers on the linear "
                        "probe's features (--proxy linear_probe or a list naming it)"}
    return {"flagged": int(outliers.flagged.sum()), "features": outliers.features,
            "threshold_z": THRESHOLD}


def check_outputs(out: Path, summary: Path, recipe: Recipe) -> None:
    """Replace only files an audit wrote: `out` must be new or a suspects table (its
    columns), the summary new or an audit summary (its keys); never one of the recipe's
    inputs."""
    inputs = [Path(p).resolve() for p in (recipe.data.train, recipe.data.valid,
                                          recipe.noise.suspects) if p]
    for path in (out, summary):
        if path.resolve() in inputs:
            raise FitclassError(f"{path}: is an input of the recipe; write the audit to "
                                f"another --out, e.g. suspects.csv")
    claim_file(out, lambda file: is_suspects_header(_header(file)),
               f"a suspects table written by fitclass audit (columns "
               f"{', '.join(SUSPECT_COLUMNS)}, then score_<method> columns)", "--out",
               "suspects.csv")
    claim_file(summary, _is_audit_summary, "an audit summary written by fitclass", "--out",
               "suspects.csv")


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _is_audit_summary(path: Path) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"rows", "suspects", "folds", "proxy"} <= record.keys()
