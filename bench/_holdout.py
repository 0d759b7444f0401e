"""Shared by the benchmarks: a test hold-out written outside the repository, and tables."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from sklearn.model_selection import GroupShuffleSplit, train_test_split


def holdout(frame: pd.DataFrame, test_size: float, seed: int, *,
            stratify: str | list[str] | None = None,
            group: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): stratified by a column, iteratively by 0/1 columns, or by group."""
    rows = np.arange(len(frame))
    if group is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train, test = next(splitter.split(rows, groups=frame[group]))
    elif isinstance(stratify, list):
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size,
                                                    random_state=seed)
        train, test = next(splitter.split(rows, frame[stratify].to_numpy()))
    else:
        train, test = train_test_split(rows, test_size=test_size, random_state=seed,
                                       stratify=None if stratify is None else frame[stratify])
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def scratch_dir(name: str) -> Path:
    """Derived copies of shared data live in the system temp folder, never in the repo."""
    path = Path(tempfile.gettempdir()) / "fitclass-bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def train_or_reuse(recipe: dict[str, Any], out: Path) -> Any:
    """Train, unless `out` already holds a finished run of this exact recipe (so a
    benchmark interrupted half-way resumes instead of starting again)."""
    import fitclass
    from fitclass.runs.folder import RunDir
    from fitclass.runs.readers import has_recipe
    from fitclass.runs.resume import stored_recipe

    run_dir = RunDir(out)
    if run_dir.status() == "finished" and has_recipe(run_dir):
        wanted = fitclass.load_recipe(recipe).to_yaml()
        if stored_recipe(run_dir).to_yaml() == wanted:
            print(f"reusing finished run {out}", flush=True)
            return fitclass.load_run(out)
    return fitclass.train(recipe, out=out, overwrite=True)
