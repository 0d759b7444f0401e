"""What every `fitclass` command shares: the typer app, the error and warning printers, the
run summary."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fitclass.errors import FitclassError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune pretrained models into robust classifiers.")
err = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Print a user error's message (no traceback) and exit with status 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FitclassError as error:
            # The message is plain text (paths, values): never parse it as rich markup.
            err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; resume with `fitclass train --resume RUN_DIR`")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def quiet_libraries() -> None:
    """Library progress bars and notices drown our own output; the CLI owns the terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def print_summary(run: Any) -> None:
    metrics = run.metrics
    select = metrics["select"]
    table = Table(title=f"validation ({metrics['n']} rows), selected on {select['metric']}")
    for column in ("class", "precision", "recall", "f1", "support", "predicted"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                      f"{row['f1']:.3f}", str(row["support"]),
                      str(metrics["predicted_distribution"][name]))
    err.print(table)
    keys = [select["metric"], "accuracy", "balanced_accuracy", "macro_f1", "log_loss"]
    err.print(interval_line(metrics, keys), soft_wrap=True)
    across = metrics.get("intervals_across_members") or {}
    if across:
        members = next(iter(across.values())).get("n")
        err.print(f"across its {members} members (mean, t interval): "
                  + "  ".join(f"{k}={_interval_text(across[k])}" for k in dict.fromkeys(keys)
                              if isinstance(across.get(k), dict)), soft_wrap=True)
    if isinstance(metrics.get("optimize"), dict):
        err.print(optimize_line(metrics["optimize"]), markup=False, soft_wrap=True)
    for message in metrics.get("warnings") or []:
        err.print(f"[bold red]warning:[/] {escape(str(message))}", markup=True, soft_wrap=True)


def optimize_line(fitted: dict[str, Any]) -> str:
    """decision.optimize in one line: the metric before and after, and each class's
    predictions before -> after against its true count."""
    score, shares = fitted.get("score", {}), fitted.get("shares", {})
    before, after = shares.get("before", {}), shares.get("after", {})
    classes = ", ".join(f"{name} {before.get(name)}->{after.get(name)} (true {true})"
                        for name, true in shares.get("true", {}).items())
    return (f"decision.optimize {fitted.get('metric')}: {score.get('before', 0.0):.4f} -> "
            f"{score.get('cross_fitted', 0.0):.4f} (cross-fitted, {fitted.get('folds')} "
            f"folds); predicted {classes}")


def interval_line(metrics: dict[str, Any], keys: list[str]) -> str:
    """`macro_f1=0.8123 [0.7990, 0.8251]  accuracy=...`: each metric with its 95% bootstrap
    interval over the rows when `metrics` holds one (runs from before intervals: the value)."""
    intervals = metrics.get("intervals") or {}
    shown = []
    for key in dict.fromkeys(keys):
        value = metrics.get(key)
        if not isinstance(value, float | int):
            continue
        interval = intervals.get(key)
        shown.append(f"{key}={_interval_text(interval)}" if isinstance(interval, dict)
                     else f"{key}={value:.4f}")
    note = "  (95% intervals: bootstrap over the rows)" if intervals else ""
    return "  ".join(shown) + note


def _interval_text(interval: dict[str, Any]) -> str:
    return f"{interval['estimate']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"


@contextmanager
def printed_warnings() -> Iterator[None]:
    """fitclass's input warnings (empty texts, skipped images) as `warning: ...` lines on
    stderr; other libraries' warnings as Python shows them."""
    from fitclass.data.scoring import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, DataWarning):
                    err.print(f"warning: {warning.message}", markup=False, soft_wrap=True)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)


TEXT_COLUMN_HELP = "The file's text column, when it differs from training."
DEVICE_HELP = ("Where the model runs: auto (the GPU when there is one), cpu, cuda, cuda:N "
               "or mps.")
PRECISION_HELP = "fp32, bf16 or fp16 autocast (default: the run's train.precision)."
LAYOUT_HELP = ("The file's layout, as train's --set: data.text=..., data.id=..., "
               "data.label=..., data.quoting=none")
