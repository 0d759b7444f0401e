"""Per-row training dynamics, recorded from the logits every training step already computes.

For every row and epoch: the loss, the probability of the given label, and the margin
(given label's logit minus the largest other logit: area under the margin, Pleiss et al.
2020, when averaged). Mislabelled rows keep a high loss and a negative margin while the
model grows confident in another class; `dynamics.csv` ranks them for the audit and report.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.strategy import StepOutput


class DynamicsRecorder:
    """Arrays of shape (epochs, rows), filled as batches pass; NaN where a row was not seen."""

    FIELDS = ("loss", "p_given", "margin", "predicted")

    def __init__(self, num_rows: int, epochs: int, multilabel: bool) -> None:
        self.multilabel = multilabel
        self.arrays = {name: np.full((epochs, num_rows), np.nan, dtype=np.float32)
                       for name in self.FIELDS}

    @torch.no_grad()
    def record(self, epoch: int, rows: torch.Tensor, logits: torch.Tensor,
               targets: torch.Tensor) -> None:
        logits, index = logits.float(), rows.cpu().numpy()
        if self.multilabel:
            y = targets.float()
            loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
            p_given = (torch.sigmoid(logits) * y + torch.sigmoid(-logits) * (1 - y)).mean(1)
            margin = ((2 * y - 1) * logits).mean(1)
            predicted = (logits > 0).float().argmax(1)
        else:
            given = targets.long()
            log_p = F.log_softmax(logits, dim=1)
            loss = -log_p.gather(1, given[:, None])[:, 0]
            p_given = loss.neg().exp()
            others = logits.scatter(1, given[:, None], float("-inf"))
            margin = logits.gather(1, given[:, None])[:, 0] - others.max(1).values
            predicted = logits.argmax(1)
        for name, values in zip(self.FIELDS, (loss, p_given, margin, predicted), strict=True):
            self.arrays[name][epoch, index] = values.cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        return dict(self.arrays)

    def restore(self, state: dict[str, np.ndarray]) -> None:
        for name in self.FIELDS:
            if name in state and state[name].shape == self.arrays[name].shape:
                self.arrays[name] = state[name]

    def summary(self, ids: Sequence[str], given: Sequence[str],
                class_names: Sequence[str]) -> pd.DataFrame:
        """One row per training row, most suspect (lowest mean margin) first."""
        seen = ~np.isnan(self.arrays["loss"])
        last_epoch = np.where(seen.any(0), seen.shape[0] - 1 - np.argmax(seen[::-1], 0), 0)
        last_predicted = self.arrays["predicted"][last_epoch, np.arange(seen.shape[1])]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows never seen: NaN, no noise
            frame = pd.DataFrame({
                "id": list(ids), "given_label": list(given),
                "loss_mean": np.nanmean(self.arrays["loss"], 0),
                "p_given_mean": np.nanmean(self.arrays["p_given"], 0),
                "margin_mean": np.nanmean(self.arrays["margin"], 0),
                "epochs_seen": seen.sum(0),
                "last_predicted": [class_names[int(i)] if np.isfinite(i) else ""
                                   for i in last_predicted],
            })
        return frame.sort_values("margin_mean", kind="stable").reset_index(drop=True)


class Dynamics(Callback):
    """Records every batch's logits against its given labels (before MixUp/CutMix mixes
    them) into a `DynamicsRecorder`."""

    def __init__(self, recorder: DynamicsRecorder) -> None:
        self.recorder = recorder

    def on_batch_end(self, state: LoopState, output: StepOutput) -> None:
        if output.logits is None or output.positions is None or output.labels is None:
            return
        self.recorder.record(state.epoch, output.positions, output.logits, output.labels)
