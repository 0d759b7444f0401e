"""Hostile inputs for prediction: every input row is served.

Empty texts (NSMC's real files have them), unreadable images under `on_bad_image: skip`,
texts on standard input, files whose text column differs from training, and every output
format, through the Python API and the CLI (`typer.testing.CliRunner`, stdin via `input=`).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import fitclass
import fitclass.api
from fitclass.cli import app
from fitclass.data.scoring import DataWarning
from fitclass.errors import DataError, RecipeError

CLASSES = ["food", "sports", "tech"]
PROBS = [f"prob:{name}" for name in CLASSES]


pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
              recipe_for: Callable[..., dict[str, Any]]) -> fitclass.Run:
    return fitclass.train(recipe_for("tfidf", train_csv),
                          out=tmp_path_factory.mktemp("tfidf") / "run")


@pytest.fixture(scope="module")
def holey_rows(synthetic_rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Ten labelled rows; rows 2 and 7 have empty text, row 5 only spaces."""
    rows: list[dict[str, Any]] = [dict(row) for row in synthetic_rows[:10]]
    rows[2]["text"], rows[5]["text"], rows[7]["text"] = "", "   ", ""
    return rows


def invoke(*args: str | Path, stdin: str | bytes | None = None) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def caught(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in seen if issubclass(w.category, DataWarning)]


# --- empty texts -------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_predict_serves_empty_texts_in_every_format(tfidf_run: fitclass.Run, tmp_path: Path,
                                                    holey_rows: list[dict[str, Any]],
                                                    table_writer, suffix: str) -> None:
    source = table_writer(holey_rows, tmp_path / f"holey{suffix}")
    frame, said = caught(lambda: tfidf_run.predict(source))
    assert len(frame) == 10 and frame["id"].tolist() == [r["id"] for r in holey_rows]
    assert frame["label"].isin(CLASSES).all() and frame[PROBS].notna().all().all()
    assert len(said) == 1 and "3 empty texts" in said[0] and "rows 2, 5, 7" in said[0]


def test_missing_values_count_as_empty_text(tfidf_run: fitclass.Run, tmp_path: Path,
                                            holey_rows: list[dict[str, Any]]) -> None:
    nulls = [dict(row, text=None) if i in (2, 7) else row for i, row in enumerate(holey_rows)]
    jsonl = tmp_path / "nulls.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in nulls), encoding="utf-8")
    frame = pd.DataFrame(holey_rows)
    frame.loc[2, "text"], frame.loc[7, "text"] = np.nan, None
    expected, _ = caught(lambda: tfidf_run.predict(pd.DataFrame(holey_rows)))
    for source in (jsonl, frame):
        predicted, said = caught(lambda source=source: tfidf_run.predict(source))
        assert len(said) == 1 and "rows 2, 5, 7" in said[0]
        assert np.allclose(predicted[PROBS].to_numpy(), expected[PROBS].to_numpy())
    listed, said = caught(lambda: tfidf_run.predict(["pizza", None, "", "goal"]))
    assert len(listed) == 4 and "rows 1, 2" in said[0]
    probs, said = caught(lambda: tfidf_run.predict_proba(["", None]))
    assert probs.shape == (2, 3) and "rows 0, 1" in said[0]


def test_evaluate_scores_rows_with_empty_text(tfidf_run: fitclass.Run, tmp_path: Path,
                                              holey_rows: list[dict[str, Any]],
                                              table_writer) -> None:
    source = table_writer(holey_rows, tmp_path / "holey.csv")
    metrics, said = caught(lambda: tfidf_run.evaluate(source))
    assert metrics["n"] == 10 and metrics["skipped_rows"] == [] and len(said) == 1


def test_training_still_refuses_empty_texts(tmp_path: Path, holey_rows: list[dict[str, Any]],
                                            synthetic_rows, table_writer, recipe_for) -> None:
    source = table_writer(holey_rows + synthetic_rows[10:], tmp_path / "train.csv")
    with pytest.raises(DataError, match="empty or not a string"):
        fitclass.train(recipe_for("tfidf", source), out=tmp_path / "run")


def test_non_text_cells_are_refused_with_their_rows(tfidf_run: fitclass.Run) -> None:
    frame = pd.DataFrame({"text": ["pizza", ["a", "list"], "goal"]})
    with pytest.raises(DataError, match=r"row 1.*holds list values, not text"):
        tfidf_run.predict(frame)
    assert tfidf_run.predict(pd.DataFrame({"text": ["pizza", 10, 2.5]}))["label"].notna().all()


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
             recipe_for: Callable[..., dict[str, Any]]) -> fitclass.Run:
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 1, "batch_size": 16})
    return fitclass.train(recipe, out=tmp_path_factory.mktemp("bert") / "run")


def test_empty_text_on_every_model_kind(tfidf_run: fitclass.Run, bert_run: fitclass.Run,
                                        tmp_path: Path) -> None:
    """Tokenizers give [CLS] [SEP] for '', TF-IDF a zero vector: no model kind crashes."""
    # a frame, as read from a file; batch size 1 makes batches of nothing but empty texts
    texts = pd.DataFrame({"text": ["", "pizza with cheese", "  ", None]})
    ensemble = fitclass.ensemble([tfidf_run.path, bert_run.path], tmp_path / "ensemble",
                                 method="mean")
    for run in (tfidf_run, bert_run, ensemble):
        for batch_size in (1, 64):
            frame, _ = caught(lambda run=run, b=batch_size: run.predict(texts, batch_size=b))
            assert len(frame) == 4 and frame[PROBS].notna().all().all()
    pytest.importorskip("onnxruntime")
    from fitclass.export import export_onnx

    export_onnx(bert_run.path)
    onnx, _ = caught(lambda: bert_run.predict(texts, batch_size=2, engine="onnx"))
    torch_frame, _ = caught(lambda: bert_run.predict(texts))
    assert np.allclose(onnx[PROBS].to_numpy(), torch_frame[PROBS].to_numpy(), atol=1e-4)


# --- the CLI: warnings, stdin, stdout, formats ---------------------------------------------

def test_cli_predict_warns_and_keeps_every_row(tfidf_run: fitclass.Run, tmp_path: Path,
                                               holey_rows: list[dict[str, Any]],
                                               table_writer) -> None:
    source = table_writer(holey_rows, tmp_path / "holey.csv")
    done = invoke("predict", tfidf_run.path, source, "--out", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 10
    assert "warning: " in done.stderr and "rows 2, 5, 7 (file lines 4, 7, 9)" in done.stderr
    done = invoke("evaluate", tfidf_run.path, source)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["n"] == 10 and "warning: " in done.stderr


def test_cli_reads_stdin_and_writes_stdout(tfidf_run: fitclass.Run) -> None:
    done = invoke("predict", tfidf_run.path, "-", stdin="pizza cheese\n\nfootball goal\r\n")
    assert done.exit_code == 0, done.output
    frame = pd.read_csv(io.StringIO(done.stdout))
    assert frame["row"].tolist() == [0, 1, 2] and frame.columns[1] == "label"
    assert frame["label"][0] == "food" and frame["label"][2] == "sports"
    assert "warning" not in done.stdout and "row 1" in done.stderr
    assert "3 predictions written to standard output" in done.stderr
    done = invoke("predict", tfidf_run.path, "-", "--out", "-", "--format", "jsonl",
                  stdin="\ufeffsoftware code\nno newline at the end")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["row"] for row in lines] == ["0", "1"] and lines[0]["label"] == "tech"
    done = invoke("predict", tfidf_run.path, "-", stdin=b"\xff\xfe bad")
    assert done.exit_code == 2 and "not UTF-8" in done.stderr


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_out_extension_picks_the_format(tfidf_run: fitclass.Run, tmp_path: Path,
                                        holey_rows: list[dict[str, Any]], table_writer,
                                        suffix: str) -> None:
    source = table_writer(holey_rows, tmp_path / "in.csv")
    target = tmp_path / "deep" / f"preds{suffix}"
    done = invoke("predict", tfidf_run.path, source, "--out", target)
    assert done.exit_code == 0, done.output
    read = table_reader(target)
    assert len(read) == 10 and list(read.columns) == ["id", "true_label", "label", *PROBS]
    assert sorted(os.listdir(target.parent)) == [target.name]  # no temporary file left


def table_reader(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")


def test_bad_out_paths_are_refused_before_predicting(tfidf_run: fitclass.Run,
                                                     tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["pizza"]}).to_csv(source, index=False)
    done = invoke("predict", tfidf_run.path, source, "--out", tmp_path)
    assert done.exit_code == 2 and "is a folder" in done.stderr
    assert "IsADirectoryError" not in done.output
    done = invoke("predict", tfidf_run.path, source, "--out", tmp_path / "p.xlsx")
    assert done.exit_code == 2
    assert "'.xlsx'" in done.stderr and ".csv, .tsv, .jsonl, .parquet" in done.stderr
    done = invoke("predict", tfidf_run.path, source, "--out", tmp_path / "p.csv",
                  "--format", "tsv")
    assert done.exit_code == 2 and "--format" in done.stderr
    done = invoke("evaluate", tfidf_run.path, source, "--out", tmp_path)
    assert done.exit_code == 2 and "is a folder" in done.stderr
    (tmp_path / "file").write_text("x")
    done = invoke("predict", tfidf_run.path, source, "--out", tmp_path / "file" / "p.csv")
    assert done.exit_code == 2 and "cannot be written" in done.stderr


# --- files laid out apart from training ----------------------------------------------------

def test_text_column_and_layout_overrides(tfidf_run: fitclass.Run, tmp_path: Path,
                                          holey_rows: list[dict[str, Any]]) -> None:
    renamed = pd.DataFrame(holey_rows).rename(columns={"text": "review", "label": "gold",
                                                       "id": "key"})
    source = tmp_path / "renamed.tsv"
    renamed.to_csv(source, sep="\t", index=False)
    with pytest.raises(DataError, match="column 'text' not found"):
        tfidf_run.predict(source)
    expected, _ = caught(lambda: tfidf_run.predict(pd.DataFrame(holey_rows)))
    by_api, _ = caught(lambda: tfidf_run.predict(source, text_column="review"))
    assert by_api["row"].tolist() == [str(i) for i in range(10)]
    assert np.allclose(by_api[PROBS].to_numpy(), expected[PROBS].to_numpy())
    done = invoke("predict", tfidf_run.path, source, "--text-column", "review", "--set",
                  "data.id=key", "--set", "data.quoting=none", "--out", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    assert pd.read_csv(tmp_path / "p.csv")["key"].tolist() == [r["id"] for r in holey_rows]
    done = invoke("evaluate", tfidf_run.path, source, "--set", "data.text=review", "--set",
                  "data.label=gold")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["n"] == 10


def test_layout_overrides_refuse_what_scoring_cannot_change(tfidf_run: fitclass.Run) -> None:
    for overrides, message in ((["train.lr=1"], "change only the scored file's layout"),
                               (["data.label_sep=;"], "cannot change when scoring"),
                               (["data.text=[a, b]"], "reads 1 text column"),
                               (["data.images.column=p"], "only for an image run"),
                               (["data.quoting=sometimes"], "data.quoting")):
        with pytest.raises(RecipeError, match=message):
            tfidf_run.predict(["pizza"], overrides=overrides)
    with pytest.raises(RecipeError, match="given twice"):
        tfidf_run.predict(["pizza"], text_column="a", overrides=["data.text=b"])


# --- images under on_bad_image: skip --------------------------------------------------------

@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory,
              image_folder_writer: Callable[..., Path]) -> fitclass.Run:
    root = tmp_path_factory.mktemp("images")
    image_folder_writer(root / "train", per_class=4)
    image_folder_writer(root / "valid", per_class=2, seed=1)
    recipe = {"data": {"train": str(root), "images": True, "on_bad_image": "skip"},
              "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": 16},
              "train": {"epochs": 1, "batch_size": 8, "seed": 0, "precision": "fp32"}}
    return fitclass.train(recipe, out=root / "run")


@pytest.fixture()
def messy_images(tmp_path: Path, image_folder_writer: Callable[..., Path]) -> Path:
    """A labelled folder of 6 images: 4 readable, one truncated, one not an image."""
    root = image_folder_writer(tmp_path / "messy", per_class=1, seed=2)
    data = (root / "down" / "000.png").read_bytes()
    (root / "down" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "checks" / "text.png").write_text("hello", encoding="utf-8")
    image_folder_writer(tmp_path / "more", per_class=1, seed=3)
    (tmp_path / "more" / "across" / "000.png").rename(root / "across" / "extra.png")
    return root


def test_skipped_images_keep_their_rows(image_run: fitclass.Run, messy_images: Path) -> None:
    frame, said = caught(lambda: image_run.predict(messy_images))
    assert len(frame) == 6 and frame.columns[-1] == "error"
    bad = frame[frame["error"] != ""]
    assert sorted(bad["path"]) == ["checks/text.png", "down/truncated.png"]
    assert (bad["label"] == "").all() and bad[[f"prob:{c}" for c in image_run.class_names]] \
        .isna().all().all()
    assert (frame.loc[frame["error"] == "", "label"] != "").all()
    assert bad["true_label"].tolist() == ["checks", "down"]
    assert any("have no prediction" in message for message in said)
    metrics, _ = caught(lambda: image_run.evaluate(messy_images))
    assert metrics["n"] == 4 and metrics["skipped_rows"] == ["checks/text.png",
                                                             "down/truncated.png"]


def test_skipped_rows_of_a_path_table_and_a_list(image_run: fitclass.Run,
                                                 messy_images: Path) -> None:
    table = messy_images / "paths.csv"
    rows = [("down/000.png", "down"), ("", "down"), ("missing.png", "across"),
            ("checks/text.png", "checks"), ("across/000.png", "across")]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(table, index=False)
    frame, _ = caught(lambda: image_run.predict(table))
    assert frame["path"].tolist() == [path for path, _ in rows]
    errors = frame["error"].tolist()
    assert errors[0] == errors[4] == "" and errors[2] == "file not found"
    assert "no image path" in errors[1] and "cannot decode" in errors[3]
    metrics, _ = caught(lambda: image_run.evaluate(table))
    assert metrics["n"] == 2 and metrics["skipped_rows"] == ["", "missing.png", "checks/text.png"]
    files = [str(messy_images / p) if p else p for p, _ in rows]
    listed, _ = caught(lambda: image_run.predict(files))
    assert listed["row"].tolist() == ["0", "1", "2", "3", "4"]
    assert listed["error"].tolist()[2] == "file not found"
    probs, _ = caught(lambda: image_run.predict_proba(files))
    assert np.isnan(probs[[1, 2, 3]]).all() and not np.isnan(probs[[0, 4]]).any()
    done = invoke("predict", image_run.path, table, "--out", messy_images / "p.jsonl")
    assert done.exit_code == 0, done.output
    written = pd.read_json(messy_images / "p.jsonl", lines=True)
    assert len(written) == 5 and "3 unreadable images have no prediction" in done.stderr


def test_fail_mode_at_scoring_still_stops(image_run: fitclass.Run, messy_images: Path) -> None:
    with pytest.raises(DataError, match="2 images cannot be used"):
        image_run.predict(messy_images, overrides=["data.on_bad_image=fail"])
