"""Which built-in callbacks a fine-tune runs, in which order, around the one loop.

Order is part of the contract, per evaluation: `Selection` marks the row best (or not),
`Averaging` snapshots and scores the EMA (adding its column), `BestCheckpoint` saves a new
best, `EarlyStopping` decides whether to stop, `ResumeState` saves the resumable state, and
`EvaluationReport` logs the row and tells trackers and a sweep's pruner, knowing whether
more training follows. The user's callbacks come last and see the finished row.

The head-only stages on cached features share the selector and averager but not early
stopping (a plateau of the head alone says nothing about the fine-tune that follows), the
resume state (a resumed run restarts after them) or the EMA (their steps move only the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelerate import Accelerator
from torch import nn

from fitclass.contracts.fit import FitContext
from fitclass.contracts.neural import NeuralClassifier
from fitclass.training.averaging import Averager, Averaging
from fitclass.training.callbacks import Callback, Phase
from fitclass.training.checkpoint import BestCheckpoint, ResumeState
from fitclass.training.dynamics import Dynamics, DynamicsRecorder
from fitclass.training.evaluation import evaluate
from fitclass.training.losses import Loss
from fitclass.training.progress import EvaluationReport, ProgressBar
from fitclass.training.selection import EarlyStopping, Selection, Selector

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Wiring:
    """The objects a fine-tune's built-in callbacks share across its phases."""

    context: FitContext
    classifier: NeuralClassifier
    accelerator: Accelerator
    loss_fn: Loss
    selector: Selector
    averager: Averager | None

    @classmethod
    def for_context(cls, context: FitContext, classifier: NeuralClassifier,
                    accelerator: Accelerator, loss_fn: Loss) -> Wiring:
        config = context.recipe.train
        selector = Selector(config.select.metric, config.select.direction,
                            config.early_stopping.min_delta if config.early_stopping else 0.0)
        averager = (Averager(context.recipe.averaging, context.run, config.select.direction,
                             fixed=classifier.fixed_parameters())
                    if context.recipe.averaging.active else None)
        return cls(context, classifier, accelerator, loss_fn, selector, averager)

    @property
    def metric(self) -> str:
        return self.selector.metric

    def module(self) -> nn.Module:
        """The classifier's module without accelerate's wrappers (what is saved)."""
        return self.accelerator.unwrap_model(self.classifier.module)

    def evaluate_metric(self, _module: nn.Module) -> float | None:
        """The select metric of the classifier's current weights (averaging's candidates)."""
        batch_size = self.context.recipe.train.eval_batch_size
        value = evaluate(self.classifier, self.context, self.loss_fn, batch_size)[0].get(
            self.metric)
        return None if value is None else float(value)

    def callbacks(self, *, cached: bool, recorder: DynamicsRecorder | None = None,
                  after_cached: bool = False) -> list[Callback]:
        """The built-in callbacks of the fine-tune (`cached=False`; `after_cached` when the
        head-only stages ran before it) or of those stages (`cached=True`), in their order,
        then the user's."""
        context, main = self.context, self.accelerator.is_main_process
        parts: list[Callback] = [Selection(self.selector)]
        if self.averager is not None:
            scorer = (lambda _module: None) if cached else self.evaluate_metric
            parts.append(Averaging(self.averager, self.module, self.metric, scorer,
                                   each_step=not cached))
        best = BestCheckpoint(context.run, self.module, is_main=main,
                              fixed=self.classifier.fixed_parameters())
        parts.append(best)
        if not cached:
            stopping = context.recipe.train.early_stopping
            if stopping is not None:
                parts.append(EarlyStopping(self.selector, stopping.patience,
                                           context.reporter.log))
            parts.append(ResumeState(context.run, self.accelerator,
                                     lambda: _arrays(recorder), best,
                                     fixed=self.classifier.fixed_parameters()))
            if recorder is not None:
                parts.append(Dynamics(recorder))
            parts.append(ProgressBar(context.reporter, context.recipe.train.log_every))
        parts.append(EvaluationReport(context.reporter, self.metric))
        users = Phase(context.callbacks, first=not after_cached, last=not cached)
        return [*parts, users]


def _arrays(recorder: DynamicsRecorder | None) -> dict[str, np.ndarray] | None:
    return None if recorder is None else recorder.state()
