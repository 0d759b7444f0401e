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

from fitclass.tasks import Task
from fitclass.training.callbacks import Callback
from fitclass.training.state import LoopState
from fitclass.training.strategy import StepOutput


class DynamicsRecorder:
    """Arrays of shape (epochs, rows), filled as batches pass; NaN where a row was not seen.

    Recording never waits for the accelerator: each batch's values and row positions are
    written into a preallocated buffer on the logits' device, which is copied to the host
    once per epoch (`flush`, called at the epoch's end and before the arrays are read)."""

    FIELDS = ("loss", "p_given", "margin", "predicted")

    def __init__(self, num_rows: int, epochs: int, task: Task) -> None:
        self.task = task
        self._arrays = {name: np.full((epochs, num_rows), np.nan, dtype=np.float32)
                       for name in self.FIELDS}
        # the epoch's recorded batches on the device: row positions, and values per field
        self._positions: torch.Tensor | None = None
        self._values_buffer: torch.Tensor | None = None
        self._filled = 0
        self._epoch = 0

    @torch.no_grad()
    def record(self, epoch: int, rows: torch.Tensor, logits: torch.Tensor,
               targets: torch.Tensor) -> None:
        if epoch != self._epoch:
            self.flush()
            self._epoch = epoch
        values = self.task.row_dynamics(logits, targets)
        self._make_room(len(values), values.device)
        assert self._positions is not None and self._values_buffer is not None
        end = self._filled + len(values)
        self._positions[self._filled:end] = rows.to(values.device, torch.int64)
        self._values_buffer[self._filled:end] = values
        self._filled = end

    def _make_room(self, count: int, device: torch.device) -> None:
        """Buffers sized for one epoch's rows up front (grown if an epoch sees more, e.g.
        a sampler that repeats rows)."""
        needed = self._filled + count
        if self._positions is None or self._positions.device != device:
            self.flush()
            self._allocate(max(needed, self._arrays["loss"].shape[1]), device)
        elif needed > len(self._positions):
            positions, values = self._positions, self._values_buffer
            assert values is not None
            self._allocate(2 * needed, device)
            assert self._positions is not None and self._values_buffer is not None
            self._positions[:self._filled] = positions[:self._filled]
            self._values_buffer[:self._filled] = values[:self._filled]

    def _allocate(self, size: int, device: torch.device) -> None:
        self._positions = torch.empty(size, dtype=torch.int64, device=device)
        self._values_buffer = torch.empty((size, len(self.FIELDS)), dtype=torch.float32,
                                          device=device)

    def flush(self) -> None:
        """Copy the recorded batches to the host arrays (one device-to-host copy)."""
        if self._positions is None or self._values_buffer is None or self._filled == 0:
            return
        index = self._positions[:self._filled].cpu().numpy()
        values = self._values_buffer[:self._filled].cpu().numpy()
        self._filled = 0
        for column, name in enumerate(self.FIELDS):
            self._arrays[name][self._epoch, index] = values[:, column]

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The (epochs, rows) arrays per field, with every recorded batch in them."""
        self.flush()
        return self._arrays

    def state(self) -> dict[str, np.ndarray]:
        self.flush()
        return dict(self._arrays)

    def restore(self, state: dict[str, np.ndarray]) -> None:
        for name in self.FIELDS:
            if name in state and state[name].shape == self._arrays[name].shape:
                self._arrays[name] = state[name]

    def summary(self, ids: Sequence[str], given: Sequence[str],
                class_names: Sequence[str]) -> pd.DataFrame:
        """One row per training row, most suspect (lowest mean margin) first."""
        self.flush()
        seen = ~np.isnan(self._arrays["loss"])
        last_epoch = np.where(seen.any(0), seen.shape[0] - 1 - np.argmax(seen[::-1], 0), 0)
        last_predicted = self._arrays["predicted"][last_epoch, np.arange(seen.shape[1])]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows never seen: NaN, no noise
            frame = pd.DataFrame({
                "id": list(ids), "given_label": list(given),
                "loss_mean": np.nanmean(self._arrays["loss"], 0),
                "p_given_mean": np.nanmean(self._arrays["p_given"], 0),
                "margin_mean": np.nanmean(self._arrays["margin"], 0),
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

    def on_epoch_end(self, state: LoopState) -> None:
        self.recorder.flush()
