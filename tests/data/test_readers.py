"""Readers: every format reads the same rows; limit; raw TSV without quoting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fitclass.data import delimited
from fitclass.data.prepare import prepare_data, read_labelled
from fitclass.data.readers import read_table
from fitclass.errors import DataError, RecipeError
from fitclass.recipe import DataConfig, load_recipe

ROWS = [
    {"id": "a1", "text": "plain text", "label": "pos"},
    {"id": "a2", "text": "with, a comma and \"quotes\"", "label": "neg"},
    {"id": "a3", "text": "ünïcödé ✓ 日本語", "label": "pos"},
    {"id": "a4", "text": "NA", "label": "neg"},  # must stay text, never become missing
    {"id": "a5", "text": "null", "label": "pos"},
    {"id": "a6", "text": "  spaced  ", "label": "neg"},
]
SUFFIXES = [".csv", ".tsv", ".tab", ".txt", ".jsonl", ".ndjson", ".json", ".parquet", ".pq"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_format_reads_the_same_rows(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    frame = read_table(path)
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame.to_dict("records") == ROWS


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_format_gives_the_same_table(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    table = read_labelled(path, DataConfig(train=path, id="id"))
    assert table.texts == [row["text"] for row in ROWS]
    assert table.labels == [row["label"] for row in ROWS]
    assert table.ids == [row["id"] for row in ROWS]
    assert table.id_column == "id"


def test_suffix_is_case_insensitive(tmp_path: Path, table_writer) -> None:
    path = table_writer(ROWS, tmp_path / "train.csv").rename(tmp_path / "TRAIN.CSV")
    assert len(read_table(path)) == len(ROWS)


def test_numeric_labels_agree_across_formats(tmp_path: Path, table_writer) -> None:
    rows = [{"text": "x", "label": 1}, {"text": "y", "label": 10}, {"text": "z", "label": 2}]
    csv_table = read_labelled(table_writer(rows, tmp_path / "t.csv"),
                              DataConfig(train=tmp_path / "t.csv"))
    floats = [{"text": r["text"], "label": float(r["label"])} for r in rows]
    json_table = read_labelled(table_writer(floats, tmp_path / "t.jsonl"),
                               DataConfig(train=tmp_path / "t.jsonl"))
    assert csv_table.labels == json_table.labels == ["1", "10", "2"]
    # numeric class names sort numerically: 2 before 10
    assert csv_table.targets(["1", "2", "10"]).tolist() == [0, 2, 1]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_limit_reads_the_first_rows(tmp_path: Path, table_writer, suffix: str) -> None:
    path = table_writer(ROWS, tmp_path / f"train{suffix}")
    frame = read_table(path, limit=3)
    assert frame["id"].tolist() == ["a1", "a2", "a3"]


def test_data_limit_caps_the_training_rows(tmp_path: Path, table_writer, rows_maker) -> None:
    path = table_writer(rows_maker(), tmp_path / "train.csv")
    prepared = prepare_data(DataConfig(train=path, limit=40,
                                       split={"valid_size": 0.25, "seed": 0}))
    assert len(prepared.train) + len(prepared.valid) == 40
    kept = set(pd.read_csv(path)["text"][:40])
    assert set(prepared.train.texts) | set(prepared.valid.texts) == kept


RAW_TSV = 'text\tlabel\n"quoted start\tpos\nplain\tneg\nsaid "hi" there\tpos\n'


def test_quoting_none_reads_raw_quote_characters(tmp_path: Path) -> None:
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    frame = read_table(path, quoting="none")
    assert frame.to_dict("records") == [
        {"text": '"quoted start', "label": "pos"},
        {"text": "plain", "label": "neg"},
        {"text": 'said "hi" there', "label": "pos"},
    ]


def test_csv_quoting_refuses_rows_swallowed_by_a_raw_quote(tmp_path: Path) -> None:
    """The reason `quoting: none` exists: standard quoting merges rows of raw TSV. The field
    counts still match, so the swallowed lines themselves are named."""
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path, quoting="csv")
    message = str(info.value)
    assert f"{path}: a quote character on line 2" in message
    assert "lines 3-4 as part of one text" in message and "data.quoting: none" in message


def test_quoting_none_through_the_recipe(tmp_path: Path) -> None:
    path = tmp_path / "raw.tsv"
    path.write_text(RAW_TSV, encoding="utf-8")
    table = read_labelled(path, DataConfig(train=path, quoting="none"))
    assert table.texts == ['"quoted start', "plain", 'said "hi" there']


def test_unclosed_quote_names_its_line_and_suggests_quoting_none(tmp_path: Path) -> None:
    path = tmp_path / "broken.tsv"
    path.write_text('text\tlabel\nfine\tneg\n"never closed\tpos\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert f"{path}: line 3" in message and "never closes" in message
    assert "data.quoting: none" in message


def test_broken_jsonl_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"could not be read as jsonl"):
        read_table(path)


# --- field counts, separators and encodings ------------------------------------------------


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read_error(path: Path, **options: Any) -> str:
    with pytest.raises(DataError) as info:
        read_table(path, **options)
    return str(info.value)


def test_an_unquoted_comma_in_every_row_is_not_an_index(tmp_path: Path) -> None:
    """pandas took the first of three fields as the index and trained on the rest."""
    path = write(tmp_path / "t.csv", "text,label\nI liked it, would watch again,pos\n"
                                     "Dull, too long,neg\nfine,pos\n")
    message = read_error(path)
    assert f"{path}: line 2 has 3 fields where the header has 2 (text, label)" in message
    assert "(1 more line has a wrong count too)" in message
    assert "'I liked it, would watch again,pos'" in message
    assert "put double quotes around each text that contains a comma" in message
    assert "data.sep" in message
    assert "quoting: none" not in message  # no quote character is involved


def test_a_row_with_too_few_fields_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "id,text,label\n1,good,pos\n\n2,bad\n3,ok,neg\n")
    message = read_error(path)
    assert f"{path}: line 4 has 2 fields where the header has 3" in message  # blank line 3
    assert "'2,bad'" in message and "every line needs 2 commas" in message


def test_quote_characters_in_a_bad_line_add_the_quoting_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", 'text,label\nfine,pos\nshe said "no", then,neg\n')
    message = read_error(path)
    assert "line 3 has 3 fields" in message and "data.quoting: none" in message


def test_extra_field_with_quoting_none_cannot_be_quoted(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "text\tlabel\na\tb\tpos\n")
    message = read_error(path, quoting="none")
    assert "line 2 has 3 fields" in message and "cannot contain a tab" in message


def test_limit_reads_only_the_first_rows_also_for_field_counts(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "text,label\na,pos\nb,neg\nc, d,pos\n")
    assert len(read_table(path, limit=2)) == 2
    assert "line 4 has 3 fields" in read_error(path)


def test_quoted_commas_and_line_breaks_still_read(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", 'text,label\n"a, b",pos\n"two\nlines, here",neg\n\nc,pos\n')
    assert read_table(path)["text"].tolist() == ["a, b", "two\nlines, here", "c"]


@pytest.mark.parametrize(("content", "sep", "line"), [
    ("a,b\nx,y,z\nq\n", ",", 2),  # one long and one short row: the counts cancel out
    ("a,b\nq\nx,y,z\n", ",", 2),
    ('"a,1",b\n"x,y",z\nq\n', ",", 3),  # separators inside quoted values and names
    ('a|b\n"x|1"|y\nq\n', "|", 3),
])
def test_wrong_counts_are_found_around_quoted_separators(tmp_path: Path, content: str,
                                                         sep: str, line: int) -> None:
    path = write(tmp_path / "t.csv", content)
    assert f"line {line} has " in read_error(path, sep=sep)
    if content.startswith('"'):  # without the short row, the quoted separators read fine
        fixed = write(tmp_path / "ok.csv", content.removesuffix("q\n"))
        assert read_table(fixed, sep=sep).columns.tolist()[0] in ("a,1", "a")
        assert len(read_table(fixed, sep=sep)) == 1


def test_wrong_counts_in_a_non_utf8_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b\ncafé,x\nq\n", "utf-16")
    assert "line 3 has 1 field where the header has 2" in read_error(path, encoding="utf-16")
    path = write(tmp_path / "ok.csv", "a,b\ncafé,x\n", "utf-16")
    assert read_table(path, encoding="utf-16").to_dict("records") == [{"a": "café", "b": "x"}]


@pytest.mark.parametrize(("suffix", "header", "named", "setting"), [
    (".csv", "text;label", "semicolon", "';'"),
    (".csv", "text\tlabel", "tab", "'\\t'"),
    (".csv", "text|label", "pipe", "'|'"),
    (".tsv", "text,label", "comma", "','"),
])
def test_another_separator_is_spotted_and_named(tmp_path: Path, suffix: str, header: str,
                                                named: str, setting: str) -> None:
    sep = header[4]
    path = write(tmp_path / f"t{suffix}", f"{header}\ngood{sep}pos\nbad{sep}neg\n")
    assert read_error(path).startswith(f"{path} looks {named}-separated: set data.sep: "
                                       f"{setting}")
    assert read_table(path, sep=sep).to_dict("records") == [
        {"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]


def test_sep_through_the_recipe(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "text;label\ngood, really;pos\nbad;neg\n")
    table = read_labelled(path, DataConfig(train=path, sep=";"))
    assert table.texts == ["good, really", "bad"]
    assert DataConfig(train=path, sep="\\t").sep == "\t"  # '\t' in YAML single quotes
    assert DataConfig(train=path, sep="tab").sep == "\t"


@pytest.mark.parametrize("sep", ["", ";;", '"', "\n"])
def test_bad_sep_is_a_recipe_error(sep: str) -> None:
    with pytest.raises(RecipeError, match=r"data.sep: .*one character"):
        load_recipe({"data": {"train": "t.csv", "sep": sep}})


def test_unknown_encoding_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"data.encoding: .*unknown encoding"):
        load_recipe({"data": {"train": "t.csv", "encoding": "klingon"}})


@pytest.mark.parametrize(("encoding", "byte", "guess"), [
    ("cp949", "0xc1", "cp949"),
    ("latin-1", "0xe9", "cp1252"),
    ("utf-16", "0xff", "utf-16"),
])
def test_a_file_in_another_encoding_names_byte_line_and_encoding(
        tmp_path: Path, encoding: str, byte: str, guess: str) -> None:
    text = "text,label\nplain,neg\n좋은 영화,pos\n" if encoding == "cp949" else \
        "text,label\nplain,neg\ncafé,pos\n"
    path = write(tmp_path / "t.csv", text, encoding)
    line = 1 if encoding == "utf-16" else 3
    message = read_error(path)
    assert message == (f"{path}: not UTF-8 (byte {byte} at line {line}); save it as UTF-8 or "
                       f"set data.encoding: {guess}")
    assert "quoting" not in message
    assert read_table(path, encoding=guess)["text"].tolist()[1] in ("좋은 영화", "café")


def test_jsonl_in_another_encoding_names_it(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", '{"text": "좋은 영화", "label": "pos"}\n', "cp949")
    assert "set data.encoding: cp949" in read_error(path)
    assert read_table(path, encoding="cp949")["text"].tolist() == ["좋은 영화"]


def test_utf8_byte_order_mark_just_works(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "text,label\ncafé,pos\n", "utf-8-sig")
    assert read_table(path).to_dict("records") == [{"text": "café", "label": "pos"}]


def test_encoding_through_the_recipe(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "text\tlabel\n좋은 영화\tpos\n별로\tneg\n", "cp949")
    table = read_labelled(path, DataConfig(train=path, encoding="cp949"))
    assert table.texts == ["좋은 영화", "별로"]


def test_a_one_column_file_whose_name_holds_a_separator_still_reads(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "review (1-5; stars)\ngreat movie\nbad one\n")
    assert read_table(path)["review (1-5; stars)"].tolist() == ["great movie", "bad one"]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 24])
@pytest.mark.parametrize(("sep", "encoding"), [(",", "utf-8"), ("\t", "utf-8"),
                                               ("¦", "utf-8"), ("€", "utf-8"),
                                               (";", "cp1252"), ("|", "utf-16")])
def test_field_count_proof_counts_block_by_block(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, block: int,
                                                 sep: str, encoding: str) -> None:
    """The whole-file counts are read a block at a time (a multi-byte separator may straddle
    two blocks) and equal the counts over the file read at once."""
    monkeypatch.setattr(delimited, "BLOCK", block)
    text = f'a{sep}b\n"x{sep}\ny"{sep}€¦\n{sep}{sep}é\r\nz{sep}"q"\n'
    path = write(tmp_path / "t.csv", text, encoding)
    assert delimited._file_counts(path, sep, encoding) == (text.count(sep), text.count("\n"),
                                                           True)
    plain = write(tmp_path / "plain.csv", f"a{sep}b\n", encoding)
    assert delimited._file_counts(plain, sep, encoding) == (1, 1, False)
