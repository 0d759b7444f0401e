"""Recipe sections: `train` (optimisation, selection, stages) and `averaging`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fitclass.recipe.base import SELECTABLE_METRICS, Strict


class SelectConfig(Strict):
    """The metric that picks the best checkpoint; `mode` defaults to the metric's direction."""

    metric: str = "macro_f1"
    mode: Literal["max", "min"] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in SELECTABLE_METRICS:
            choices = sorted(SELECTABLE_METRICS)
            raise ValueError(f"unknown metric {value!r}; choose one of {choices}")
        return value

    @property
    def direction(self) -> Literal["max", "min"]:
        return self.mode or SELECTABLE_METRICS[self.metric]


class EarlyStoppingConfig(Strict):
    """Stop after `patience` evaluations without an improvement larger than `min_delta`."""

    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0.0)


class EvalEvery(Strict):
    """Evaluation interval: `1` (epochs), `0.5` (half epochs) or `"200 steps"`."""

    value: float = Field(1.0, gt=0.0)
    unit: Literal["epochs", "steps"] = "epochs"

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, raw: Any) -> Any:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return {"value": raw, "unit": "epochs"}
        if isinstance(raw, str):
            match = re.fullmatch(r"\s*([0-9.]+)\s*(epochs?|steps?)\s*", raw)
            if not match:
                raise ValueError(f"{raw!r} is not like 1, 0.5, '2 epochs' or '200 steps'")
            unit = "steps" if match.group(2).startswith("step") else "epochs"
            return {"value": float(match.group(1)), "unit": unit}
        return raw


class TopBlocks(Strict):
    """Train the head and the top `top_k_blocks` blocks of the backbone."""

    top_k_blocks: int = Field(ge=0)


class StageConfig(Strict):
    """One stage of the transfer schedule; the optimiser and schedule restart at each."""

    epochs: int = Field(ge=1)
    lr: float = Field(gt=0.0)
    trainable: Literal["head", "all"] | TopBlocks = "all"


class TrainConfig(Strict):
    """Optimisation, evaluation and checkpoint selection."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    #: Tokens per batch and process instead of `batch_size` rows: summed real tokens when
    #: packed, rows x longest row when padded.
    batch_tokens: int | None = Field(None, ge=8)
    #: Padding-free batches: `auto` packs where the model supports it, `on` requires it.
    packing: Literal["auto", "on", "off"] = "off"
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-5, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    scheduler: Literal["cosine", "linear", "constant"] = "linear"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    grad_accumulation: int = Field(1, ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 42
    eval_every: EvalEvery = Field(default_factory=lambda: EvalEvery())
    select: SelectConfig = Field(default_factory=lambda: SelectConfig())
    early_stopping: EarlyStoppingConfig | None = None
    stages: list[StageConfig] | None = None
    layer_decay: float | None = Field(None, gt=0.0, le=1.0)
    cache_features: bool = True
    #: Optimiser steps between reads of the running training loss (progress bar, the
    #: non-finite check). The loss is summed on the accelerator; each read waits for it, so
    #: reading every step would stall a GPU between steps. Evaluations always read it.
    log_every: int = Field(50, ge=1)
    #: torch.compile the training forward: `on`, `off`, or `auto` (on CUDA only, where it
    #: repays its compile time). `true`/`false` mean on/off.
    compile: Literal["auto", "on", "off"] = "off"
    #: Recompute activations in the backward pass instead of keeping them (Hugging Face
    #: backbones' `gradient_checkpointing_enable`): less memory, about a third more time.
    gradient_checkpointing: bool = False

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_bool(cls, value: object) -> object:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("packing", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML reads an unquoted on/off as a boolean
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @property
    def total_epochs(self) -> int:
        """`stages` replace `epochs` when given."""
        return sum(s.epochs for s in self.stages) if self.stages else self.epochs


class SwaConfig(Strict):
    """Uniform average of `k` evaluated checkpoints: the `last` k or the `top` k by
    `train.select`, optionally only from epoch `from_epoch` on; kept if `keep: better` finds
    it better on validation than the best checkpoint, or always (`keep: always`)."""

    k: int = Field(3, ge=2)
    pick: Literal["last", "top"] = "last"
    from_epoch: float | None = Field(None, ge=0.0)
    keep: Literal["better", "always"] = "better"


class EmaConfig(Strict):
    """Exponential moving average of the weights, updated every optimiser step; `warmup`
    uses min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the start."""

    decay: float = Field(0.999, gt=0.0, lt=1.0)
    warmup: bool = True


class AveragingConfig(Strict):
    """Weight averaging after (SWA, soup) or during (EMA) training."""

    swa: SwaConfig | None = None
    ema: EmaConfig | None = None
    soup: bool = False

    @property
    def active(self) -> bool:
        return self.swa is not None or self.ema is not None or self.soup
