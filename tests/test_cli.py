"""The `fitclass` command through its installed console script, in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

CLASSES = ["food", "sports", "tech"]


def fitclass_script() -> str:
    beside = Path(sys.executable).parent / "fitclass"
    found = str(beside) if beside.is_file() else shutil.which("fitclass")
    assert found, "the fitclass console script is not installed"
    return found


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    return subprocess.run([fitclass_script(), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)



def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, synthetic_rows, table_writer) -> Path:
    """A folder with data/train.csv and recipes/tfidf.yaml (data path relative to it)."""
    root = tmp_path_factory.mktemp("cli-project")
    table_writer(synthetic_rows, root / "data" / "train.csv")
    write_recipe(root / "recipes" / "tfidf.yaml", {
        "name": "cli-tfidf",
        "data": {"train": "../data/train.csv", "id": "id",
                 "split": {"valid_size": 0.25, "seed": 0}},
        "model": {"backbone": "tfidf"},
        "train": {"epochs": 3},
    })
    return root


@pytest.fixture(scope="module")
def tfidf_run(project: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = project / "runs" / "tfidf"
    # run from elsewhere: the recipe's relative data path must not depend on the cwd
    done = cli("train", project / "recipes" / "tfidf.yaml", "--set", "train.epochs=1",
               "--set", "train.seed=7", "--out", out, cwd=tmp_path_factory.mktemp("cwd"))
    return out, done


def test_train_prints_the_run_directory_last(tfidf_run) -> None:
    out, done = tfidf_run
    assert done.returncode == 0, done.stderr
    assert last_line(done.stdout) == str(out)
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["train"]["seed"] == 7  # --set applied
    assert saved["name"] == "cli-tfidf"
    assert "validation (30 rows)" in done.stderr  # the summary table goes to stderr


def test_predict_writes_ids_labels_and_probabilities(tfidf_run, tmp_path: Path,
                                                     synthetic_rows, table_writer) -> None:
    out, _ = tfidf_run
    rows = [{"id": f"new{i}", "text": row["text"]} for i, row in enumerate(synthetic_rows[:7])]
    inputs = table_writer(rows, tmp_path / "inputs.jsonl")
    preds = tmp_path / "preds.csv"
    done = cli("predict", out, inputs, "--out", preds)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(preds, dtype={"id": str})
    assert list(frame.columns) == ["id", "label", *(f"prob:{c}" for c in CLASSES)]
    assert frame["id"].tolist() == [row["id"] for row in rows]
    assert set(frame["label"]) <= set(CLASSES)
    probs = frame[[f"prob:{c}" for c in CLASSES]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-6
    assert "7 predictions written" in done.stderr


def test_evaluate_writes_metrics_json(tfidf_run, tmp_path: Path, project: Path) -> None:
    out, _ = tfidf_run
    valid_ids = set(pd.read_csv(out / "valid_predictions.csv", dtype=str)["id"])
    source = pd.read_csv(project / "data" / "train.csv", dtype=str)
    valid = tmp_path / "valid.csv"
    source[source["id"].isin(valid_ids)].to_csv(valid, index=False)
    target = tmp_path / "m.json"
    done = cli("evaluate", out, valid, "--out", target)
    assert done.returncode == 0, done.stderr
    scored = json.loads(target.read_text())
    assert json.loads(done.stdout) == scored
    saved = json.loads((out / "metrics.json").read_text())
    assert scored["n"] == 30
    assert scored["accuracy"] == pytest.approx(saved["accuracy"])
    assert scored["macro_f1"] == pytest.approx(saved["macro_f1"])
    # a bootstrap interval over the scored rows, also printed on stderr
    interval = scored["intervals"]["macro_f1"]
    assert interval["estimate"] == pytest.approx(saved["intervals"]["macro_f1"]["estimate"])
    assert f"macro_f1={interval['estimate']:.4f} [{interval['low']:.4f}, " in done.stderr


def test_bad_recipe_key_exits_2_without_traceback(project: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "bad.yaml", {
        "data": {"train": str(project / "data" / "train.csv")},
        "model": {"backbone": "tfidf"}, "train": {"epoch": 3}})
    done = cli("train", recipe, "--out", tmp_path / "run")
    assert done.returncode == 2
    assert "train.epoch: unknown key" in done.stderr
    assert str(recipe) in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "run").exists()  # nothing is created for an invalid recipe


def test_bad_set_values_exit_2(cli_main, project: Path, tmp_path: Path) -> None:
    recipe = project / "recipes" / "tfidf.yaml"
    code, out, err = cli_main("train", recipe, "--set", "train.lr=-1",
                                "--out", tmp_path / "run")
    assert code == 2 and out == ""
    assert "train.lr" in err and "(got -1)" in err and "Traceback" not in err
    code, _, err = cli_main("train", recipe, "--set", "data.text=[q, a",
                              "--out", tmp_path / "run")
    assert code == 2
    assert "--set 'data.text=[q, a': the value is not valid YAML" in err


def test_error_messages_are_printed_verbatim(cli_main, project: Path, tmp_path: Path) -> None:
    """Paths and values in messages are not rich markup: '[draft]' must survive, and a
    '[/x]' must not crash the error printer."""
    code, _, err = cli_main("train", project / "recipes" / "tfidf.yaml",
                              "--set", "data.train=/nowhere/[draft]/[/x] train.csv",
                              "--out", tmp_path / "run")
    assert code == 2
    assert "/nowhere/[draft]/[/x] train.csv: file not found" in err


def test_finished_run_is_not_overwritten(cli_main, tfidf_run, project: Path) -> None:
    out, _ = tfidf_run
    before = (out / "metrics.json").read_text()
    code, _, err = cli_main("train", project / "recipes" / "tfidf.yaml",
                              "--out", out)
    assert code == 2
    assert "a finished run is already here" in err and "--overwrite" in err
    assert (out / "metrics.json").read_text() == before


def test_missing_inputs_exit_2(cli_main, tfidf_run, tmp_path: Path) -> None:
    out, _ = tfidf_run
    code, _, err = cli_main("predict", tmp_path / "no-run",
                              tmp_path / "x.csv", "--out", tmp_path / "p.csv")
    assert code == 2 and "no such run directory" in err
    code, _, err = cli_main("evaluate", out, tmp_path / "x.csv")
    assert code == 2 and f"{tmp_path / 'x.csv'}: not found" in err
    code, _, err = cli_main("train")
    assert code == 2 and "--resume RUN_DIR" in err


def test_tiny_bert_train_and_predict(tmp_path: Path, tiny_bert_dir: Path, train_csv: Path,
                                     synthetic_rows, table_writer) -> None:
    recipe = write_recipe(tmp_path / "bert.yaml", {
        "data": {"train": str(train_csv), "split": {"valid_size": 0.25, "seed": 0}},
        "model": {"backbone": str(tiny_bert_dir), "max_length": 32},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3},
    })
    out = tmp_path / "run"
    done = cli("train", recipe, "--set", "train.epochs=1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert last_line(done.stdout) == str(out)
    assert len(pd.read_csv(out / "history.csv")) == 1

    inputs = table_writer([{"text": row["text"]} for row in synthetic_rows[:5]],
                          tmp_path / "inputs.tsv")
    preds = tmp_path / "preds.csv"
    done = cli("predict", out, inputs, "--out", preds, "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(preds)
    # no id column in the recipe: rows are numbered
    assert list(frame.columns) == ["row", "label", *(f"prob:{c}" for c in CLASSES)]
    assert frame["row"].tolist() == [0, 1, 2, 3, 4]


def test_files_without_the_id_column_are_scored_by_row_index(tfidf_run, tmp_path: Path,
                                                             project: Path) -> None:
    """The recipe names an id column; a file (or frame) to score that lacks it still
    predicts and evaluates, its rows identified by 0-based row index."""
    import fitclass

    out, _ = tfidf_run
    run = fitclass.load_run(out)
    source = pd.read_csv(project / "data" / "train.csv", dtype=str).head(9)
    without_id = tmp_path / "no_id.csv"
    source.drop(columns=["id"]).to_csv(without_id, index=False)
    predicted = run.predict(without_id)
    assert predicted.columns[0] == "row" and "label" in predicted.columns
    assert predicted["row"].astype(int).tolist() == list(range(9))
    with_id = run.predict(source)
    columns = [c for c in predicted.columns if c.startswith("prob:")]
    assert (predicted[columns].to_numpy() == with_id[columns].to_numpy()).all()
    assert run.evaluate(without_id)["n"] == 9
    assert run.evaluate(source.drop(columns=["id"]))["n"] == 9
    done = cli("predict", out, without_id, "--out", tmp_path / "p.csv")
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(tmp_path / "p.csv").columns[0] == "row"


def test_scoring_files_need_neither_id_nor_group_columns() -> None:
    """Only a training file must carry the recipe's id and group columns; a file to score
    without them keeps everything else (found on movie4, grouped by movie_id)."""
    from fitclass.data.prepare import scoring_config
    from fitclass.recipe import load_recipe

    data = load_recipe({"data": {"train": "t.csv", "text": "review", "id": "id",
                                 "group": "movie_id", "split": {"method": "group"}}}).data
    assert scoring_config(["review", "label", "id", "movie_id"], data) is data
    trimmed = scoring_config(["review", "label"], data)
    assert (trimmed.id, trimmed.group, trimmed.text) == (None, None, "review")
    assert scoring_config(["review", "id"], data).id == "id"
