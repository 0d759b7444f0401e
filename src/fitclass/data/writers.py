"""Write a prediction table as CSV, TSV, JSON lines or Parquet, atomically.

The format follows the file's extension. A file is written whole or not at all: the bytes go
to a hidden temporary file beside the target, which is then renamed over it, so an
interrupted `predict` never leaves half a table under the name a pipeline reads.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from fitclass import atomic
from fitclass.errors import DataError

#: Output formats by file extension.
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def output_format(path: Path | None, named: str | None = None) -> str:
    """The format for `path` (its extension) or for standard output (`named`, default csv);
    a `named` format must agree with the extension."""
    formats = sorted(set(OUTPUT_FORMATS.values()))
    if named is not None and named.lower() not in formats:
        raise DataError(f"--format {named!r}: choose one of {', '.join(formats)}")
    if path is None:
        return (named or "csv").lower()
    found = OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(f"{path}: unknown output format {path.suffix or '(no extension)'!r}; "
                        f"end the file name with one of {', '.join(OUTPUT_FORMATS)}")
    if named is not None and named.lower() != found:
        raise DataError(f"{path}: the extension says {found} but --format says {named}; the "
                        f"extension picks the format of a file: drop --format or rename it")
    return found


def table_bytes(frame: pd.DataFrame, kind: str) -> bytes:
    """The table encoded as `kind` (UTF-8 text, or Parquet); missing values stay empty (CSV,
    TSV), null (JSON lines) or null (Parquet)."""
    if kind in ("csv", "tsv"):
        return frame.to_csv(index=False, sep="," if kind == "csv" else "\t").encode("utf-8")
    if kind == "jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
        return text.encode("utf-8") if text.endswith("\n") else (text + "\n").encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def check_output(path: Path) -> None:
    """Refuse an output path that names a folder before any work is done."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; --out names the file to write, e.g. "
                        f"{path / 'predictions.csv'}")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` in the format of its extension, atomically."""
    atomic_write_bytes(path, table_bytes(frame, output_format(path)))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`fitclass.atomic.atomic_write_bytes` for a user's `--out`: a folder is refused and an
    OS error is a `DataError` naming the path."""
    check_output(path)
    try:
        atomic.atomic_write_bytes(path, data)
    except OSError as error:
        raise DataError(f"{path}: cannot be written ({error.strerror or error}); choose "
                        f"another --out") from None
