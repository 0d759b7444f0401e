"""`noise.action`: drop or relabel an audit's suspects before training, recording each
change (`noise_changes.csv` in the run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fitclass.data.table import Label, TextTable
from fitclass.errors import DataError
from fitclass.recipe import NoiseConfig
from fitclass.target_kinds import TargetKind


def read_suspects(path: Path, min_score: float) -> pd.DataFrame:
    """The audit's rows with `score >= min_score`, except rows listed only as outliers."""
    if not path.is_file():
        raise DataError(f"noise.suspects: {path} not found; write it with "
                        f"`fitclass audit RECIPE --out {path}`")
    frame = pd.read_csv(path, dtype={"id": str, "suggested_label": str, "given_label": str},
                        keep_default_na=False)
    missing = {"id", "suggested_label", "score"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: columns {sorted(missing)} missing; is this a suspects.csv "
                        f"written by `fitclass audit`?")
    if "methods" in frame.columns:  # an outlier alone is no evidence that the label is wrong
        frame = frame[frame["methods"].astype(str) != "outlier"]
    return frame[frame["score"] >= min_score]


def apply_noise_action(table: TextTable, config: NoiseConfig,
                       kind: TargetKind) -> tuple[TextTable, pd.DataFrame]:
    """The table with suspects dropped or relabelled, and one row per change."""
    assert config.suspects is not None and table.labels is not None
    suspects = read_suspects(Path(config.suspects), config.min_score)
    by_id = dict(zip(suspects["id"], zip(suspects["suggested_label"], suspects["score"],
                                         strict=True), strict=True))
    changes, keep = [], []
    labels: list[Label] = list(table.labels)
    for row, row_id in enumerate(table.ids):
        if row_id not in by_id:
            keep.append(row)
            continue
        suggestion, score = by_id[row_id]
        given = labels[row]
        if config.action == "relabel" and suggestion:
            new: Label = kind.parse_label(suggestion)
            labels[row] = new
            keep.append(row)
            changes.append({"id": row_id, "given_label": _text(given), "action": "relabel",
                            "new_label": _text(new), "score": score})
        else:
            changes.append({"id": row_id, "given_label": _text(given), "action": "drop",
                            "new_label": "", "score": score})
    table.labels = labels
    return table.subset(np.asarray(keep)), pd.DataFrame(
        changes, columns=["id", "given_label", "action", "new_label", "score"])


def _text(label: Label) -> str:
    return label if isinstance(label, str) else "|".join(label)
