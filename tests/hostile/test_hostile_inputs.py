"""Hostile inputs: files with the usual real-world defects are read right or refused with a
message that names the file, the line and the fix; never trained on wrong data with exit 0.

Every case goes through the public API (`fitclass.train`) with the TF-IDF backbone, and the
main ones through the CLI (typer's runner), which must exit 2 with the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import fitclass
from fitclass.cli import app
from fitclass.errors import DataError

#: A backbone that cannot load: the data error must come before any model is touched.
NO_MODEL = "/nonexistent/model-folder"


def texts(n: int, seed: str = "") -> list[str]:
    words = ["good", "film", "plot", "actor", "scene", "music", "story", "ending"]
    return [f"{seed}{words[i % 8]} {words[(i * 3) % 8]} number {i}" for i in range(n)]


def labelled_lines(n: int = 40, sep: str = ",") -> str:
    return "".join(f"{text}{sep}{'pos' if i % 2 else 'neg'}\n"
                   for i, text in enumerate(texts(n)))


def recipe(train: Path, backbone: str = "tfidf", **data: Any) -> dict[str, Any]:
    return {"data": {"train": str(train), "split": {"valid_size": 0.25, "seed": 0}, **data},
            "model": {"backbone": backbone}}


def train_error(tmp_path: Path, raw: dict[str, Any], out: str = "run") -> str:
    with pytest.raises(DataError) as info:
        fitclass.train(raw, out=tmp_path / out)
    return str(info.value)


def cli(tmp_path: Path, raw: dict[str, Any], *args: str) -> tuple[int, str]:
    """`fitclass train recipe.yaml --out run ...args`: (exit code, everything printed)."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "cli-run"),
                                      *args])
    return result.exit_code, result.output


# --- field counts ------------------------------------------------------------------------


def comma_file(tmp_path: Path) -> Path:
    """Every row has one unquoted comma: pandas took the first field as the index."""
    path = tmp_path / "reviews.csv"
    rows = "".join(f"I liked {t}, would watch again,{'pos' if i % 2 else 'neg'}\n"
                   for i, t in enumerate(texts(40)))
    path.write_text("text,label\n" + rows, encoding="utf-8")
    return path


def test_unquoted_comma_in_every_row_is_refused(tmp_path: Path) -> None:
    path = comma_file(tmp_path)
    message = train_error(tmp_path, recipe(path, NO_MODEL))
    assert f"{path}: line 2 has 3 fields where the header has 2 (text, label)" in message
    assert "(39 more lines have a wrong count too)" in message
    assert "'I liked good good number 0, would watch again,neg'" in message
    assert "put double quotes around each text that contains a comma" in message
    assert "quoting: none" not in message


def test_unquoted_comma_through_the_cli_exits_2(tmp_path: Path) -> None:
    code, output = cli(tmp_path, recipe(comma_file(tmp_path)))
    assert code == 2
    assert "line 2 has 3 fields where the header has 2" in output
    assert "Traceback" not in output
    assert not (tmp_path / "cli-run" / "model").exists()


def test_short_row_is_refused_without_a_quoting_hint(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + labelled_lines(20) + "no label here\n"
                    + labelled_lines(20), encoding="utf-8")
    message = train_error(tmp_path, recipe(path))
    assert f"{path}: line 22 has 1 field where the header has 2" in message
    assert "'no label here'" in message and "quoting" not in message


def test_quote_opening_a_field_over_many_lines_gets_the_quoting_hint(tmp_path: Path) -> None:
    path = tmp_path / "raw.tsv"
    path.write_text("text\tlabel\n" + labelled_lines(10, "\t") + '"so good\tpos\n'
                    + labelled_lines(10, "\t"), encoding="utf-8")
    message = train_error(tmp_path, recipe(path))
    assert f"{path}: line 12" in message and "a quote character on line 12" in message
    assert "set data.quoting: none" in message
    run = fitclass.train(recipe(path, quoting="none"), out=tmp_path / "raw-run")
    assert run.metrics["macro_f1"] >= 0


# --- separators and encodings ------------------------------------------------------------


def test_semicolon_csv_is_named_and_data_sep_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text;label\n" + labelled_lines(40, ";"), encoding="utf-8")
    message = train_error(tmp_path, recipe(path, NO_MODEL))
    assert message.startswith(f"{path} looks semicolon-separated: set data.sep: ';'")
    run = fitclass.train(recipe(path, sep=";"), out=tmp_path / "semi-run")
    assert run.class_names == ["neg", "pos"]


def cp949_file(tmp_path: Path) -> Path:
    path = tmp_path / "korean.csv"
    rows = "".join(f"{t} 정말 재미있다,{'pos' if i % 2 else 'neg'}\n"
                   for i, t in enumerate(texts(40)))
    path.write_bytes(("text,label\n" + rows).encode("cp949"))
    return path


def test_cp949_file_names_the_encoding_not_quoting(tmp_path: Path) -> None:
    path = cp949_file(tmp_path)
    message = train_error(tmp_path, recipe(path, NO_MODEL))
    assert message == (f"{path}: not UTF-8 (byte 0xc1 at line 2); save it as UTF-8 or set "
                       f"data.encoding: cp949")


def test_cp949_through_the_cli_exits_2(tmp_path: Path) -> None:
    code, output = cli(tmp_path, recipe(cp949_file(tmp_path)))
    assert code == 2
    assert "not UTF-8 (byte 0xc1 at line 2); save it as UTF-8 or set data.encoding: cp949" \
        in output
    assert "quoting" not in output


def test_data_encoding_trains_and_predicts_with_the_same_encoding(tmp_path: Path) -> None:
    path = cp949_file(tmp_path)
    run = fitclass.train(recipe(path, encoding="cp949"), out=tmp_path / "cp949-run")
    predictions = run.predict(path)  # predict reads with the run's data.encoding
    assert len(predictions) == 40


def test_utf8_with_byte_order_mark_trains(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("text,label\n" + labelled_lines(40)).encode("utf-8-sig"))
    run = fitclass.train(recipe(path), out=tmp_path / "bom-run")
    assert run.class_names == ["neg", "pos"]


# --- data that cannot train a classifier -------------------------------------------------


def test_single_class_stops_before_any_model_loads(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"{t},pos\n" for t in texts(40)))
    message = train_error(tmp_path, recipe(path, NO_MODEL))
    assert f"{path}: every training row has the label 'pos' (40 rows)" in message
    assert "at least two classes" in message
    tfidf = train_error(tmp_path, recipe(path), out="tfidf-run")  # was a sklearn traceback
    assert "every training row has the label 'pos'" in tfidf


def test_single_class_through_the_cli_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"{t},pos\n" for t in texts(40)))
    code, output = cli(tmp_path, recipe(path))
    assert code == 2 and "every training row has the label 'pos'" in output


def test_validation_labels_unseen_in_training_are_refused(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + labelled_lines(40))
    valid = tmp_path / "valid.csv"
    valid.write_text("text,label\nnew text one,neutral\nnew text two,pos\n")
    message = train_error(tmp_path, recipe(train, NO_MODEL, valid=str(valid)))
    assert f"{valid}: row 0 (file line 2): labels ['neutral'] never occur in the training " \
           f"data, so the model can never predict them" in message


def multilabel_recipe(path: Path, backbone: str = NO_MODEL) -> dict[str, Any]:
    return {"task": "multilabel", **recipe(path, backbone, label=["toxic", "insult"])}


def test_multilabel_column_without_positives_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,toxic,insult\n" + "".join(f"{t},{i % 2},0\n"
                                                    for i, t in enumerate(texts(40))))
    message = train_error(tmp_path, multilabel_recipe(path))
    assert f"{path}: label columns ['insult'] are 0 in every training row" in message


def test_multilabel_rows_without_any_label_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,toxic,insult\n" + "".join(f"{t},0,0\n" for t in texts(40)))
    message = train_error(tmp_path, multilabel_recipe(path, "tfidf"))
    assert f"{path}: no training row has any label" in message


# --- paths typed on the command line -----------------------------------------------------


def test_set_data_train_resolves_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes, work = tmp_path / "recipes", tmp_path / "work"
    recipes.mkdir(), work.mkdir()
    (recipes / "train.csv").write_text("text,label\n" + "".join(f"{t},pos\n"
                                                                for t in texts(40)))
    (work / "train.csv").write_text("text,label\n" + labelled_lines(40))
    path = recipes / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(Path("train.csv"))))
    monkeypatch.chdir(work)
    run = fitclass.train(path, overrides=["data.train=train.csv"], out=tmp_path / "api-run")
    assert run.recipe.data.train == work / "train.csv"
    result = CliRunner().invoke(app, ["train", str(path), "--set", "data.train=train.csv",
                                      "--out", str(tmp_path / "cli-run")])
    assert result.exit_code == 0, result.output
    # without --set, the recipe's own relative path still means the recipe's folder
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "run-2")])
    assert result.exit_code == 2
    assert f"{recipes / 'train.csv'}: every training row has the label 'pos'" in result.output
