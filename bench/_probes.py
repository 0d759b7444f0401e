"""The worker side of the subprocess benchmarks: what each measured run installs to be
measured the same way whichever system trains.

- `TokenCounter`: tokens the encoder's word embeddings receive in training mode, padding
  included (a shape read, no device sync), so padded tokens per epoch are measured, not
  simulated from a sampler: it counts whatever batches a system really built.
- `TrainerClock` (HF Trainer) and `FitclassClock` (fitclass's callback hooks): training time
  per epoch, from the epoch's start to the end of its last optimiser step, so evaluations and
  checkpoint saves are excluded; on CUDA each mark synchronises first.
- `trainer_arguments`: the shared hyperparameters spelled for the installed transformers.

Imports no fitclass: a worker imports the fitclass its PYTHONPATH names. `FitclassClock`
is duck-typed to fitclass's `Callback` hooks for that reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import torch
import transformers
from torch import nn
from transformers import TrainerCallback, TrainingArguments

from _runs import RESULT_MARK


def emit(result: dict[str, Any]) -> None:
    """The one result line the parent reads."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def set_threads(threads: int | None) -> int:
    """The same intra-op thread count for every system; returns the count in force."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class TokenCounter:
    """Counts the ids fed to word embeddings (`num_embeddings == vocab_size`) while the module
    is in training mode: padded tokens of training batches (evaluation runs in eval mode).

    Patches `nn.Embedding.forward` for this process, since a system's module is built inside
    its own training call. Reads shapes only, so it adds no device sync."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.tokens = 0
        self.batches = 0

    def install(self) -> TokenCounter:
        original = nn.Embedding.forward
        counter = self

        def forward(self: nn.Embedding, input: torch.Tensor) -> torch.Tensor:
            if self.training and self.num_embeddings == counter.vocab_size:
                counter.tokens += input.numel()
                counter.batches += 1
            return original(self, input)

        nn.Embedding.forward = forward  # type: ignore[method-assign]
        return self


class EpochMarks:
    """Start and end of each epoch's training steps, in seconds since the clock started."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.epochs: list[tuple[float, float]] = []
        self._start: float | None = None
        self.origin = 0.0

    def begin(self) -> None:
        sync(self.device)
        now = time.perf_counter()
        if not self.epochs and self._start is None:
            self.origin = now
        self._start = now

    def end(self) -> None:
        if self._start is None:
            return
        sync(self.device)
        self.epochs.append((self._start - self.origin, time.perf_counter() - self.origin))
        self._start = None

    def fields(self) -> dict[str, Any]:
        seconds = [end - start for start, end in self.epochs]
        return {"train_s": sum(seconds), "epoch_s": [round(s, 4) for s in seconds]}


class TrainerClock(TrainerCallback):
    """Trainer's epochs: on_epoch_begin to on_epoch_end. Trainer evaluates and saves after
    on_epoch_end and before the next on_epoch_begin, so both are outside the clock."""

    def __init__(self, device: str) -> None:
        self.marks = EpochMarks(device)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.begin()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.marks.end()


class FitclassClock:
    """fitclass's epochs through its callback hooks (`fitclass.train(callbacks=[...])`).

    An epoch starts at on_train_begin or the previous on_epoch_end and ends at the last
    optimiser step (`state.step == state.total_steps`) or at on_epoch_end; meant for recipes
    that evaluate once, after the last step (`train.eval_every` = the epoch count), where
    on_epoch_end follows the last step directly in every epoch but the last."""

    def __init__(self, device: str) -> None:
        self.marks = EpochMarks(device)
        self.ended_at_last_step = False

    def on_train_begin(self, state: Any) -> None:
        self.marks.begin()

    def on_batch_end(self, state: Any, output: Any) -> None:
        pass

    def on_step_end(self, state: Any) -> None:
        if state.total_steps and state.step >= state.total_steps:
            self.marks.end()
            self.ended_at_last_step = True

    def on_evaluate(self, state: Any, row: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, state: Any) -> None:
        self.marks.end()
        if not self.ended_at_last_step:
            self.marks.begin()

    def on_train_end(self, state: Any) -> None:
        self.marks.end()  # only if an epoch is still open: a run that stopped early


def trainer_arguments(hyper: dict[str, Any], *, output_dir: str, seed: int, grouped: bool,
                      evaluate: bool, device: str, precision: str) -> TrainingArguments:
    """fitclass's hyperparameters (`hyper`: epochs, batch_size, eval_batch_size, lr,
    weight_decay, warmup_ratio, grad_clip) spelled for this transformers version. With
    `evaluate`, every epoch is evaluated and saved and the best (accuracy) is loaded at the
    end, as fitclass selects; without, nothing is evaluated or saved."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    extra: dict[str, Any] = {}
    if "warmup_ratio" in names:  # transformers 4.x; 5.x takes a ratio as warmup_steps < 1
        extra["warmup_ratio"] = hyper["warmup_ratio"]
    else:
        extra["warmup_steps"] = hyper["warmup_ratio"]
    if grouped:
        if "group_by_length" in names:
            extra["group_by_length"] = True
        else:
            extra["train_sampling_strategy"] = "group_by_length"
    if "overwrite_output_dir" in names:  # removed in transformers 5
        extra["overwrite_output_dir"] = True
    if evaluate:
        extra.update(eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
                     load_best_model_at_end=True, metric_for_best_model="accuracy",
                     greater_is_better=True, save_total_limit=1)
    else:
        extra.update(eval_strategy="no", save_strategy="no")
    return TrainingArguments(
        output_dir=output_dir, seed=seed,
        per_device_train_batch_size=hyper["batch_size"],
        per_device_eval_batch_size=hyper["eval_batch_size"],
        learning_rate=hyper["lr"], num_train_epochs=hyper["epochs"],
        weight_decay=hyper["weight_decay"], lr_scheduler_type="linear",
        max_grad_norm=hyper["grad_clip"], bf16=precision == "bf16", use_cpu=device == "cpu",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0, **extra,
    )


def versions() -> dict[str, Any]:
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "pid": os.getpid()}
