"""Delimited text files (CSV, TSV): read with pandas, then prove every record had as many
fields as the header; diagnoses that turn a misread file into a message naming the line.

pandas alone misreads two common defects without a word: when every row has one field more
than the header (an unquoted comma inside a text), it takes the first field as the index;
a row with fewer fields is padded with empty strings. The proof is cheap: every separator in
the file is a delimiter or sits inside a quoted value, so a file whose records all have the
header's n fields holds exactly (n - 1) x (records + 1) delimiters. Only when that count, or
pandas itself, disagrees are the records walked with the stdlib csv module (same dialect) to
name the first wrong line.
"""

from __future__ import annotations

import codecs
import csv
import sys
import warnings
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, AnyStr, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fitclass.errors import DataError

Quoting = Literal["csv", "none"]

#: Separators a one-column header is searched for, and their names in messages.
SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
#: Characters of a line quoted in a message.
SHOWN = 80
#: Characters (bytes, for UTF-8) read at a time when counting a whole file.
BLOCK = 1 << 24
#: One record: its first and last file line (1-based) and its fields.
Record = tuple[int, int, list[str]]


def reading_encoding(encoding: str) -> str:
    """UTF-8 files may start with a byte order mark (Excel writes one): it is not text."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def separator_name(sep: str) -> str:
    return SEPARATOR_NAMES.get(sep, repr(sep))


def separator_setting(sep: str) -> str:
    """How to write `sep` as `data.sep` in YAML."""
    return "'\\t'" if sep == "\t" else f"'{sep}'"


def read_delimited(path: Path, *, sep: str, quoting: Quoting, encoding: str,
                   limit: int | None) -> pd.DataFrame:
    """Every column as text ('' is not NaN); a record whose field count differs from the
    header's, or a quote that swallows lines, is a `DataError` naming its line."""
    try:
        with warnings.catch_warnings():
            # with index_col=False, rows longer than the header only warn, and lose fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=limit,
                                quoting=_dialect(sep, quoting)["quoting"], encoding=encoding,
                                index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as error:
        message = diagnosis(path, sep=sep, quoting=quoting, encoding=encoding, limit=limit)
        raise DataError(message or f"{path}: could not be read: {error}") from None
    check_header(path, [str(name) for name in frame.columns], sep,
                 sep.join(map(str, frame.iloc[0])) if len(frame) else "")
    if limit is None:
        suspect, multiline = _whole_file_signals(path, frame, sep=sep, quoting=quoting,
                                                 encoding=encoding)
    else:  # only the first rows were read: count the fields of those
        suspect = _counts_differ(path, len(frame.columns), sep=sep, quoting=quoting,
                                 encoding=encoding, limit=limit)
        multiline = quoting == "csv" and _has_line_breaks(frame)
    message = diagnosis(path, sep=sep, quoting=quoting, encoding=encoding, limit=limit) \
        if suspect else None
    if message:
        raise DataError(message)
    if multiline and sep == "\t":
        check_swallowed_lines(path, sep=sep, encoding=encoding, limit=limit)
    return frame


def _whole_file_signals(path: Path, frame: pd.DataFrame, *, sep: str, quoting: Quoting,
                        encoding: str) -> tuple[bool, bool]:
    """(a field count may be wrong, a quoted value may span lines), from counts over the
    whole file: every separator is a delimiter or sits inside a quoted value."""
    seps, lines, quotes = _file_counts(path, sep, encoding)
    quoted = quoting == "csv" and quotes  # only quoted values hold separators, line breaks
    suspect = seps != _delimiters_expected(frame, sep, quoted)
    return suspect, quoted and lines > len(frame) + 1 and _has_line_breaks(frame)


def diagnosis(path: Path, *, sep: str, quoting: Quoting, encoding: str,
              limit: int | None = None) -> str | None:
    """What is wrong with the first bad record (up to `limit` rows), or None if none is."""
    records = _records(path, _dialect(sep, quoting), encoding)
    first = next(records, None)
    if first is None:
        return None
    header = first[2]
    header[0] = header[0].removeprefix("\ufeff")
    rows = list(islice(records, limit))
    check_header(path, header, sep, sep.join(rows[0][2]) if rows else "")
    bad = [record for record in rows if len(record[2]) != len(header)]
    if bad:
        return ragged_message(path, header, bad, sep=sep, quoting=quoting, encoding=encoding)
    if quoting == "csv" and rows and _ends_inside_quote(rows[-1]):
        return (f"{path}: line {rows[-1][0]}: a quote character opens a field that never "
                f"closes (the file ends inside it); {_quote_fix(sep)}")
    return None


def _counts_differ(path: Path, fields: int, *, sep: str, quoting: Quoting, encoding: str,
                   limit: int) -> bool:
    """Whether a record among the first `limit` has other than `fields` fields."""
    _allow_long_fields()
    with path.open(encoding=encoding, newline="") as handle:  # a BOM is in the header
        records = filter(None, csv.reader(handle, **_dialect(sep, quoting)))
        return bool(set(map(len, islice(records, 1, limit + 1))) - {fields})


def _file_counts(path: Path, sep: str, encoding: str) -> tuple[int, int, bool]:
    """How often `sep` and line feeds occur in the file, and whether it holds a quote.
    Read block by block: a file of many gigabytes is not held in memory a second time
    beside its table."""
    if codecs.lookup(encoding).name == "utf-8":  # no ASCII byte occurs inside a character
        with path.open("rb") as binary:
            return _count_blocks(iter(lambda: binary.read(BLOCK), b""), sep.encode(), b"\n",
                                 b'"')
    with path.open(encoding=encoding, newline="") as handle:
        return _count_blocks(iter(lambda: handle.read(BLOCK), ""), sep, "\n", '"')


def _count_blocks(blocks: Iterator[AnyStr], sep: AnyStr, line: AnyStr, quote: AnyStr
                  ) -> tuple[int, int, bool]:
    """`_file_counts` over consecutive blocks. `line` and `quote` are one unit long; `sep`
    is one character, in UTF-8 maybe several bytes: the bytes ending a block that may start
    one are carried into the next (a UTF-8 character never overlaps another)."""
    seps = lines = 0
    quoted = False
    carry = sep[:0]
    for block in blocks:
        window = carry + block
        seps += window.count(sep)
        lines += block.count(line)
        quoted = quoted or quote in block
        carry = window[1 - len(sep):] if len(sep) > 1 else sep[:0]
    return seps, lines, quoted


def _delimiters_expected(frame: pd.DataFrame, sep: str, quoted: bool) -> int:
    """Separators in a file whose records all have the header's fields: the delimiters, plus
    those inside quoted values (header names included)."""
    count = (len(frame.columns) - 1) * (len(frame) + 1)
    if quoted:
        count += sum(str(name).count(sep) for name in frame.columns)
        count += sum(pc.sum(pc.count_substring(pa.array(frame[column]), sep)).as_py() or 0
                     for column in frame.columns)
    return count


def _has_line_breaks(frame: pd.DataFrame) -> bool:
    return any(pc.any(pc.match_substring_regex(pa.array(frame[column]), "[\r\n]")).as_py()
               for column in frame.columns)


def _ends_inside_quote(record: Record) -> bool:
    """A line break ending the last field can only come from a quote left open at EOF."""
    return record[2][-1].endswith(("\n", "\r"))


def check_header(path: Path, header: list[str], sep: str, first_row: str) -> None:
    """A header read as one column that holds another separator, like the first data row,
    names that separator."""
    if len(header) != 1:
        return
    splits = {other: [part for part in header[0].split(other) if part.strip()]
              for other in SEPARATOR_NAMES if other != sep and other in first_row}
    if not splits:
        return
    other, parts = max(splits.items(), key=lambda item: len(item[1]))
    if len(parts) >= 2:
        raise DataError(
            f"{path} looks {separator_name(other)}-separated: set data.sep: "
            f"{separator_setting(other)} (read with {separator_name(sep)}s, its header "
            f"{header[0][:SHOWN]!r} is a single column)"
        )


def check_swallowed_lines(path: Path, *, sep: str, encoding: str,
                          limit: int | None = None) -> None:
    """In a tab-separated file, a quoted field that runs past a tab at the end of its first
    line is a quote character of the text: it swallowed the rest of its row and the rows
    after it, maybe without changing any field count."""
    records = _records(path, _dialect(sep, "csv"), encoding)
    for start, end, row in islice(records, None if limit is None else limit + 1):
        if end > start and any(sep in text.partition("\n")[0] for text in row):
            swallowed = f"line {end}" if end == start + 1 else f"lines {start + 1}-{end}"
            raise DataError(
                f"{path}: a quote character on line {start} opens a field that runs on to "
                f"line {end}, reading {swallowed} as part of one text "
                f"({_line(path, encoding, start)[:SHOWN]!r}); {_quote_fix(sep)}")


def ragged_message(path: Path, header: list[str], bad: list[Record], *, sep: str,
                   quoting: Quoting, encoding: str) -> str:
    """Name the first record whose field count differs from the header's, and the fix."""
    expected = len(header)
    start, end, row = bad[0]
    line = _line(path, encoding, start)
    more = ("" if len(bad) == 1 else " (1 more line has a wrong count too)" if len(bad) == 2
            else f" ({len(bad) - 1} more lines have a wrong count too)")
    found = (f"{path}: line {start} has {len(row)} field{'s' if len(row) != 1 else ''} where "
             f"the header has {expected} ({', '.join(header)[:SHOWN]}){more}")
    if quoting == "csv" and (end > start or _ends_inside_quote(bad[0])):
        runs = f"runs on to line {end}" if end > start else "never closes"
        return (f"{found}: a quote character on line {start} opens a field that {runs} "
                f"({line[:SHOWN]!r}); {_quote_fix(sep)}")
    fix = _field_count_fix(sep, quoting, too_many=len(row) > expected, expected=expected)
    if quoting == "csv" and '"' in line:
        fix += "; if its quote characters are part of the text, set data.quoting: none"
    return f"{found}: {line[:SHOWN]!r}; {fix}"


def _field_count_fix(sep: str, quoting: Quoting, *, too_many: bool, expected: int) -> str:
    name, other = separator_name(sep), "or set data.sep if the file uses another separator"
    if not too_many:
        needs = f"{expected - 1} {name}{'s' if expected > 2 else ''}"
        return (f"every line needs {needs}, an empty field too (write "
                f"nothing between two {name}s), {other}")
    if quoting == "none":
        return (f"with data.quoting: none a text cannot contain a {name}: save the file "
                f"with another separator and set data.sep, or quote the texts that contain "
                f"{name}s and remove data.quoting")
    return f"put double quotes around each text that contains a {name}, {other}"


def _quote_fix(sep: str) -> str:
    raw = " (raw TSV)" if sep == "\t" else ""
    return f"close the quote, or if quote characters are part of the texts{raw}, set " \
           f"data.quoting: none"


def _dialect(sep: str, quoting: Quoting) -> dict[str, Any]:
    return {"delimiter": sep,
            "quoting": csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL}


def _records(path: Path, dialect: dict[str, Any], encoding: str
             ) -> Iterator[Record]:
    """(first line, last line, fields) of every non-blank record, header included."""
    _allow_long_fields()
    with path.open(encoding=reading_encoding(encoding), newline="") as handle:
        reader = csv.reader(handle, **dialect)
        start = 1
        for row in reader:
            if row:
                yield start, reader.line_num, row
            start = reader.line_num + 1


def _line(path: Path, encoding: str, number: int) -> str:
    """Physical line `number` (1-based), as the csv module counts lines."""
    with path.open(encoding=reading_encoding(encoding), newline="") as handle:
        for index, line in enumerate(handle, 1):
            if index == number:
                return line.rstrip("\r\n")
    return ""


def _allow_long_fields() -> None:
    """A runaway quote makes one huge field; the csv module's default cap (128 KiB) would
    stop the diagnosis with its own error instead of naming the line."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
