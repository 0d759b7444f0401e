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
    refit = metrics.get("refit")
    if isinstance(refit, dict):
        err.print(f"refit: trained on all {refit.get('train_rows')} labelled rows for "
                  f"{refit.get('epochs')} epochs ({refit.get('schedule_from')}); decision from "
                  f"{refit.get('decision_from')}. No validation split of its own: the scores "
                  f"below are its expected score, from {refit.get('expected_from')}.",
                  markup=False, soft_wrap=True)
    where = ("out-of-fold" if metrics.get("cv") else "validation")
    table = Table(title=f"{where} ({metrics['n']} rows), selected on {select['metric']}")
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
    print_crossval(metrics)
    if isinstance(metrics.get("distillation"), dict):
        err.print(distillation_line(metrics["distillation"], select["metric"]), markup=False,
                  soft_wrap=True)
    for message in metrics.get("warnings") or []:
        err.print(f"[bold red]warning:[/] {escape(str(message))}", markup=True, soft_wrap=True)


def distillation_line(summary: dict[str, Any], metric: str) -> str:
    """A student's agreement with its teacher and the gap (student - teacher) in the
    selection metric and accuracy, on the same validation rows."""
    gaps, teacher = summary.get("gap", {}), summary.get("teacher_metrics", {})
    parts = [f"{k} {teacher[k]:.4f} (student - teacher {gaps[k]:+.4f})"
             for k in dict.fromkeys([metric, "accuracy"]) if k in gaps and k in teacher]
    agreement = summary.get("agreement")
    agreed = "n/a" if agreement is None else f"{agreement:.4f}"
    return (f"distilled from {summary.get('teacher')}: agreement with the teacher {agreed}; "
            f"teacher {', '.join(parts)}; {summary.get('unlabelled_rows', 0)} unlabelled rows")


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


#: Metrics the cross-validation summary shows, after the selection metric, when present.
CV_SHOWN = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "samples_f1", "log_loss")


def print_crossval(metrics: dict[str, Any]) -> None:
    """Scores over folds: mean, standard deviation and 95% interval; best epochs."""
    from fitclass.uncertainty.intervals import Interval

    cv, detail = metrics.get("cv"), metrics.get("crossval") or {}
    if not isinstance(cv, dict) or not cv:
        return
    first = metrics.get("select", {}).get("metric")
    table = Table(title=f"{detail.get('k')}-fold cross-validation ({detail.get('method')}, "
                        f"{detail.get('seeds')} seed(s) per fold): mean over folds, 95% "
                        f"t interval")
    for column in ("metric", "mean", "std", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in dict.fromkeys([first, *CV_SHOWN]):
        if name in cv:
            interval = Interval.from_dict(cv[name])
            table.add_row(name, f"{interval.estimate:.4f}", f"{interval.std:.4f}",
                          f"[{interval.low:.4f}, {interval.high:.4f}]")
    err.print(table)
    epochs = detail.get("best_epochs")
    if epochs:
        err.print(f"best epoch per fold run: {', '.join(f'{e:g}' for e in epochs)} "
                  f"(median {detail.get('median_best_epoch'):g})")


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
