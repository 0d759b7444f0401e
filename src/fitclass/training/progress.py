"""Progress: a rich bar (loss, throughput, ETA) on a terminal, one plain line per eval otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fitclass.metrics import headline
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState


def format_metrics(row: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = row.get(key)
        if isinstance(value, float):
            parts.append(f"{key}={value:.4f}")
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)


class Reporter:
    """Prints what training is doing; silent when `enabled` is False (non-main DDP ranks)."""

    def __init__(self, enabled: bool = True, tty: bool | None = None) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.console = Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._task: Any = None
        #: Called with every evaluation's history row (experiment trackers subscribe).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        #: Called with an evaluation's row only when more training follows it; one may raise
        #: `Pruned` to stop the run early (a sweep's pruner). Never after the last
        #: evaluation: stopping then saves no compute and would discard a finished result.
        self.stop_checks: list[Callable[[dict[str, Any]], None]] = []

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, markup=False, soft_wrap=True)

    def start(self, total_steps: int, done: int = 0) -> None:
        if not (self.enabled and self.tty):
            return
        self._progress = Progress(
            TextColumn("train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total_steps, completed=done, info="")

    @property
    def showing(self) -> bool:
        """Whether a progress bar is on screen (a terminal, the main process)."""
        return self._progress is not None

    def step(self, loss: float | None, samples_per_second: float) -> None:
        """Advance the bar one step; refresh its text when `loss` is given."""
        if self._progress is None:
            return
        if loss is None:
            self._progress.update(self._task, advance=1)
            return
        info = f"loss {loss:.4f} | {samples_per_second:.1f} samples/s"
        self._progress.update(self._task, advance=1, info=info)

    def evaluated(self, row: dict[str, Any], metric: str, improved: bool,
                  more_follows: bool = False) -> None:
        """Log one evaluation and tell the listeners; when `more_follows` (training goes on
        after it), the stop checks may end the run here."""
        for listener in self.listeners:
            listener(row)
        keys = ["epoch", "step", "train_loss", "valid_loss", metric, "accuracy",
                "train_samples_per_s"]
        mark = " *best*" if improved else ""
        self.log(format_metrics(row, list(dict.fromkeys(keys))) + mark)
        if more_follows:
            for check in self.stop_checks:
                check(row)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class ProgressBar(Callback):
    """The reporter's bar: started at the resumed step, advanced every optimiser step, its
    running loss and throughput refreshed every `log_every` steps (reading the loss waits
    for the accelerator), closed at the end."""

    def __init__(self, reporter: Reporter, log_every: int = 50) -> None:
        self.reporter, self.log_every = reporter, log_every

    def on_train_begin(self, state: LoopState) -> None:
        self.reporter.start(state.total_steps, done=state.step)

    def on_step_end(self, state: LoopState) -> None:
        if not self.reporter.showing:
            return
        fresh = state.step % self.log_every == 0 and state.loss_batches > 0
        self.reporter.step(state.train_loss if fresh else None, state.samples_per_second)

    def on_train_end(self, state: LoopState) -> None:
        self.reporter.close()


class EvaluationReport(Callback):
    """Logs every evaluation and passes it to the reporter's listeners (experiment
    trackers) and, when more training follows, its stop checks (a sweep's pruner). Runs
    after selection, averaging and early stopping, so the row is complete and a stop they
    decided counts as the last evaluation."""

    def __init__(self, reporter: Reporter, metric: str) -> None:
        self.reporter, self.metric = reporter, metric

    def on_evaluate(self, state: LoopState, row: dict[str, Any]) -> None:
        last = state.should_stop or state.step >= state.total_steps
        self.reporter.evaluated(row | headline(state.metrics, self.metric), self.metric,
                                bool(row.get("is_best")), more_follows=not last)
