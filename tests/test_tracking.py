"""Experiment tracking (TensorBoard, MLflow)."""

from __future__ import annotations

from pathlib import Path

import pytest

import fitclass
import fitclass.api
from fitclass.errors import DataError
from fitclass.tracking import flatten, scalars

_write_report = fitclass.api.write_report_safely


pytestmark = pytest.mark.usefixtures("no_reports")


def test_flatten_and_scalars() -> None:
    assert flatten({"train": {"lr": 0.1, "select": {"metric": "f1"}}, "tags": [1, 2],
                    "x": None}) == {"train.lr": 0.1, "train.select.metric": "f1",
                                    "tags": "[1, 2]", "x": "None"}
    assert scalars({"step": 3, "loss": 0.5, "best": True, "name": "a"}) == {"step": 3.0,
                                                                           "loss": 0.5}


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for the module: creating its tables takes seconds."""
    pytest.importorskip("mlflow")
    return tmp_path_factory.mktemp("mlflow") / "mlruns.db"


def test_tensorboard_and_mlflow(tmp_path: Path, train_csv: Path, recipe_for,
                                mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setattr(fitclass.api, "write_report_safely", _write_report)  # the artefact
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    uri = f"sqlite:///{mlflow_db}"
    recipe = recipe_for("tfidf", train_csv, name="tracked", tracking=["tensorboard", "mlflow"],
                        mlflow={"tracking_uri": uri, "experiment": "fitclass-tests"})
    run = fitclass.train(recipe, out=tmp_path / "runs" / "tracked")
    assert (run.path / "report.html").is_file()

    events = list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(run.path / "tensorboard")).Reload()
    tags = accumulator.Tags()["scalars"]
    assert {"final/accuracy", "final/macro_f1", "final/log_loss"} <= set(tags)
    final = accumulator.Scalars("final/accuracy")[-1].value
    assert final == pytest.approx(run.metrics["accuracy"], abs=1e-6)

    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["fitclass-tests"])
    assert len(found) == 1
    row = found.iloc[0]
    assert row["status"] == "FINISHED"
    assert row["tags.mlflow.runName"] == "tracked"
    assert row["metrics.final/accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert row["metrics.final/macro_f1"] == pytest.approx(run.metrics["macro_f1"])
    assert row["params.model.backbone"] == "tfidf"
    assert row["params.train.seed"] == "0"
    assert not (tmp_path / "runs" / "mlruns.db").exists()  # the given URI, not the default
    # the report is an artefact, stored beside the database, not in the working directory
    artifacts = Path(mlflow.get_run(row["run_id"]).info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "report.html").is_file()
    assert artifacts.is_relative_to(mlflow_db.parent / "mlartifacts")
    assert not any(workdir.iterdir())


def test_failed_run_is_reported_to_mlflow(tmp_path: Path, train_csv: Path, recipe_for,
                                          table_writer, mlflow_db: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    valid = table_writer([{"id": "v1", "text": "a song on the radio", "label": "music"}],
                         tmp_path / "valid.csv")
    uri = f"sqlite:///{mlflow_db}"
    recipe = recipe_for("tfidf", train_csv, data={"valid": str(valid)}, tracking=["mlflow"],
                        mlflow={"tracking_uri": uri, "experiment": "failing"})
    with pytest.raises(DataError):
        fitclass.train(recipe, out=tmp_path / "run")
    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["failing"])
    assert found["status"].tolist() == ["FAILED"]
