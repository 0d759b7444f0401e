"""Read a table (CSV, TSV, JSONL, Parquet) into a DataFrame, chosen by the file's extension."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import pandas as pd

from fitclass.errors import DataError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_table(
    path: str | Path, *, limit: int | None = None, quoting: Literal["csv", "none"] = "csv"
) -> pd.DataFrame:
    """Read `path` with every column kept as written (strings stay strings, '' is not NaN).

    `quoting="none"` reads raw TSV files whose texts contain unbalanced quote characters.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a table; for a folder of images set "
                        f"data.images: true (see docs/recipe.md)")
    if not path.is_file():
        raise DataError(f"{path}: file not found; check data.train / data.valid in the recipe")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown table format {path.suffix!r}; use one of {sorted(FORMATS)}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    try:
        frame = _read(path, kind, limit, quoting)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, OSError) as error:
        hint = " (for raw TSV with quote characters in texts, set data.quoting: none)"
        raise DataError(f"{path}: could not be read as {kind}: {error}{hint}") from None
    if frame.empty:
        raise DataError(f"{path}: the table has a header but no data rows")
    frame.columns = [str(column) for column in frame.columns]
    return frame.reset_index(drop=True)


def _read(path: Path, kind: str, limit: int | None, quoting: str) -> pd.DataFrame:
    if kind in ("csv", "tsv"):
        return pd.read_csv(
            path,
            sep="," if kind == "csv" else "\t",
            dtype=str,
            keep_default_na=False,
            nrows=limit,
            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL,
            encoding="utf-8",
        )
    if kind == "jsonl":
        frame = pd.read_json(path, lines=True, dtype=False, nrows=limit)
    else:
        frame = pd.read_parquet(path)
        frame = frame.head(limit) if limit else frame
    return frame
