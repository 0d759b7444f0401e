"""Read a table (CSV, TSV, JSONL, Parquet) into a DataFrame, chosen by the file's extension."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pandas as pd

from fitclass.data.delimited import Quoting, read_delimited, reading_encoding
from fitclass.errors import DataError
from fitclass.recipe import DataConfig

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
#: Encodings named when a file does not decode, tried in this order (utf-16 only with a BOM).
LIKELY_ENCODINGS = ("utf-8", "utf-16", "cp949", "cp1252", "latin-1")


def read_data_table(path: str | Path, config: DataConfig, *,
                    limit: int | None = None) -> pd.DataFrame:
    """`read_table` with the recipe's `data.quoting`, `data.encoding` and `data.sep`."""
    return read_table(path, limit=limit, quoting=config.quoting, encoding=config.encoding,
                      sep=config.sep)


def read_table(
    path: str | Path, *, limit: int | None = None, quoting: Quoting = "csv",
    encoding: str = "utf-8", sep: str | None = None,
) -> pd.DataFrame:
    """Read `path` with every column kept as written (strings stay strings, '' is not NaN).

    `quoting="none"` reads raw TSV files whose texts contain unbalanced quote characters;
    `sep` (CSV/TSV only) overrides the separator the extension implies.
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
        frame = _read(path, kind, limit, quoting, encoding, sep)
    except UnicodeDecodeError:
        raise DataError(encoding_message(path, encoding)) from None
    except (pd.errors.ParserError, csv.Error, ValueError, OSError) as error:
        raise DataError(f"{path}: could not be read as {kind}: {error}") from None
    if frame.empty:
        raise DataError(f"{path}: the table has a header but no data rows")
    frame.columns = [str(column) for column in frame.columns]
    return frame.reset_index(drop=True)


def _read(path: Path, kind: str, limit: int | None, quoting: Quoting, encoding: str,
          sep: str | None) -> pd.DataFrame:
    if kind in ("csv", "tsv"):
        sep = sep or ("," if kind == "csv" else "\t")
        return read_delimited(path, sep=sep, quoting=quoting, encoding=encoding, limit=limit)
    if kind == "jsonl":
        frame = pd.read_json(path, lines=True, dtype=False, nrows=limit,
                             encoding=reading_encoding(encoding))
    else:
        frame = pd.read_parquet(path)
        frame = frame.head(limit) if limit else frame
    return frame


def encoding_message(path: Path, encoding: str) -> str:
    """Where the bytes stop being `encoding`, and an encoding that does decode them."""
    data = path.read_bytes()
    try:
        data.decode(reading_encoding(encoding))
        return f"{path}: could not be decoded as {encoding}; set data.encoding"
    except UnicodeDecodeError as error:
        offset = error.start
    utf8 = codecs.lookup(encoding).name == "utf-8"
    line = data.count(b"\n", 0, offset) + 1
    found = (f"{path}: not {'UTF-8' if utf8 else encoding} (byte 0x{data[offset]:02x} at "
             f"line {line})")
    guess = next((name for name in LIKELY_ENCODINGS
                  if codecs.lookup(name).name != codecs.lookup(encoding).name
                  and _decodes(data, name)), None)
    if guess is None:
        return f"{found}; save it as UTF-8, or set data.encoding to its encoding"
    if guess == "utf-8":
        return f"{found}; it reads as UTF-8: set data.encoding: utf-8 (the default)"
    return f"{found}; save it as UTF-8 or set data.encoding: {guess}"


def _decodes(data: bytes, encoding: str) -> bool:
    if encoding == "utf-16" and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False  # almost any even-length bytes decode as UTF-16: trust only a BOM
    try:
        data.decode(reading_encoding(encoding))
    except UnicodeDecodeError:
        return False
    return True
