"""Experiment tracking: TensorBoard and MLflow, off unless a recipe lists them in `tracking`.

Trackers receive the flattened recipe as parameters, every evaluation's scalars as metrics,
the final validation metrics, and the report as an artefact. Their packages are optional
(`pip install 'fitclass[tracking]'`); a missing one is a clear error before training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fitclass.errors import RecipeError
from fitclass.recipe import Recipe
from fitclass.registry import Registry
from fitclass.runs.layout import TENSORBOARD


class Tracker(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: Path) -> None: ...
    def finish(self, status: str) -> None: ...


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1}; lists and None become strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat


def scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class TensorBoardTracker:
    """Event files in RUN_DIR/tensorboard (`tensorboard --logdir runs/`)."""

    def __init__(self, run_dir: Path, recipe: Recipe) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RecipeError("tracking: tensorboard needs the tensorboard package: "
                              "pip install 'fitclass[tracking]'") from None
        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD))

    def log_params(self, params: dict[str, Any]) -> None:
        self.writer.add_text("recipe", "\n".join(f"{k}: {v}" for k, v in params.items()))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_artifact(self, path: Path) -> None:
        self.writer.add_text("artifacts", str(path))

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


class MlflowTracker:
    """An MLflow run; the store defaults to SQLite `mlruns.db` beside the run folder."""

    def __init__(self, run_dir: Path, recipe: Recipe) -> None:
        try:
            import mlflow
        except ImportError:
            raise RecipeError("tracking: mlflow needs the mlflow package: "
                              "pip install 'fitclass[tracking]'") from None
        self.mlflow = mlflow
        uri = recipe.mlflow.tracking_uri or f"sqlite:///{run_dir.resolve().parent / 'mlruns.db'}"
        mlflow.set_tracking_uri(uri)
        experiment = recipe.mlflow.experiment or recipe.name or "fitclass"
        if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(experiment) is None:
            # MLflow's default artifact root is ./mlruns in the working directory: keep a
            # SQLite store's artefacts beside its database instead.
            database = Path(uri.removeprefix("sqlite:///")).resolve()
            mlflow.create_experiment(experiment, artifact_location=(
                database.parent / "mlartifacts").as_uri())
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_name=run_dir.name)

    def log_params(self, params: dict[str, Any]) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: Path) -> None:
        self.mlflow.log_artifact(str(path))

    def finish(self, status: str) -> None:
        self.mlflow.end_run(status="FINISHED" if status == "finished" else "FAILED")


TRACKERS: Registry[Callable[[Path, Recipe], Tracker]] = Registry("tracker", "tracking")
TRACKERS.add("tensorboard", TensorBoardTracker)
TRACKERS.add("mlflow", MlflowTracker)


def start_trackers(run_dir: Path, recipe: Recipe) -> list[Tracker]:
    trackers = [TRACKERS.get(name)(run_dir, recipe) for name in recipe.tracking]
    params = flatten(recipe.to_dict())
    for tracker in trackers:
        tracker.log_params(params)
    return trackers
