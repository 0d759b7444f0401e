"""The recipe: pydantic models of every key, their defaults, and `--set key=value` overrides.

A recipe is validated before any data is read or model loaded. Unknown keys and bad values
raise `RecipeError` naming the dotted key path, the value and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fitclass.errors import RecipeError

#: Metrics that may pick the best checkpoint, with the direction that is better.
SELECTABLE_METRICS: dict[str, Literal["max", "min"]] = {
    "accuracy": "max",
    "balanced_accuracy": "max",
    "macro_f1": "max",
    "micro_f1": "max",
    "weighted_f1": "max",
    "pr_auc_macro": "max",
    "roc_auc_macro": "max",
    "loss": "min",
    "log_loss": "min",
    "samples_f1": "max",
    "subset_accuracy": "max",
    "hamming_loss": "min",
    "lrap": "max",
}
#: Metrics that exist for only one task kind.
TASK_METRICS = {"multiclass": {"accuracy", "balanced_accuracy"},
                "multilabel": {"samples_f1", "subset_accuracy", "hamming_loss", "lrap"}}

#: Keys of `model` that only the TF-IDF backbone reads.
TFIDF_KEYS = ("analyzer", "ngram_range", "max_features", "C", "classifier")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Strict):
    """How to carve a validation set out of `data.train` when `data.valid` is not given."""

    method: Literal["stratified", "group"] = "stratified"
    valid_size: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 42


class DataConfig(_Strict):
    """Where the rows come from and which columns mean what."""

    train: Path
    valid: Path | None = None
    text: str | list[str] = "text"
    label: str | list[str] = "label"
    label_sep: str | None = None
    id: str | None = None
    group: str | None = None
    split: SplitConfig = Field(default_factory=lambda: SplitConfig())
    limit: int | None = Field(None, ge=1)
    quoting: Literal["csv", "none"] = "csv"

    @field_validator("text")
    @classmethod
    def _one_or_two_text_columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) not in (1, 2):
            raise ValueError("give one text column, or a pair [first, second] for sentence pairs")
        return value

    @property
    def text_columns(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    @property
    def label_columns(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)

    @property
    def multilabel(self) -> bool:
        """Labels are 0/1 columns (a list) or delimited names (`label_sep`)."""
        return isinstance(self.label, list) or self.label_sep is not None


class ModelConfig(_Strict):
    """The backbone and its head. `minilm` is the embedded default; `tfidf` is classical."""

    backbone: str = "minilm"
    pretrained: bool = True
    max_length: int = Field(128, ge=8, le=8192)
    pooling: Literal["auto", "mean", "cls"] = "auto"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # TF-IDF backbone only.
    analyzer: Literal["char_wb", "char", "word"] = "char_wb"
    ngram_range: tuple[int, int] = (1, 3)
    max_features: int | None = Field(200_000, ge=1)
    C: float = Field(4.0, gt=0.0)
    classifier: Literal["logreg", "linear_svm", "nbsvm"] = "logreg"

    @model_validator(mode="after")
    def _tfidf_keys_only_for_tfidf(self) -> ModelConfig:
        misplaced = sorted(set(TFIDF_KEYS) & self.model_fields_set)
        if self.backbone != "tfidf" and misplaced:
            raise ValueError(
                f"{', '.join('model.' + k for k in misplaced)} only apply to backbone: tfidf "
                f"(backbone is {self.backbone!r}); remove them or set model.backbone: tfidf"
            )
        if self.ngram_range[0] < 1 or self.ngram_range[0] > self.ngram_range[1]:
            raise ValueError("model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n")
        return self


class SelectConfig(_Strict):
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


class EarlyStoppingConfig(_Strict):
    """Stop after `patience` evaluations without an improvement larger than `min_delta`."""

    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0.0)


class EvalEvery(_Strict):
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


class TopBlocks(_Strict):
    """Train the head and the top `top_k_blocks` blocks of the backbone."""

    top_k_blocks: int = Field(ge=0)


class StageConfig(_Strict):
    """One stage of the transfer schedule; the optimiser and schedule restart at each."""

    epochs: int = Field(ge=1)
    lr: float = Field(gt=0.0)
    trainable: Literal["head", "all"] | TopBlocks = "all"


class TrainConfig(_Strict):
    """Optimisation, evaluation and checkpoint selection."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
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

    @property
    def total_epochs(self) -> int:
        """`stages` replace `epochs` when given."""
        return sum(s.epochs for s in self.stages) if self.stages else self.epochs


class MinorityAugmentConfig(_Strict):
    """Extra AEDA-augmented copies of rare classes' training rows (never validation rows).

    `ratio`: extra copies per row, for every minority class (a number) or per class (a
    mapping); a class is a minority when it has fewer than `below` x the largest class's rows.
    """

    ratio: float | dict[str, float] = Field(1.0)
    below: float = Field(0.5, gt=0.0, le=1.0)
    seed: int = 0


class ImbalanceConfig(_Strict):
    """Remedies for skewed classes: loss weights, samplers, losses, minority augmentation."""

    class_weights: Literal["none", "inverse", "sqrt_inverse", "effective_number"] | list[
        float] | dict[str, float] = "none"
    beta: float = Field(0.999, gt=0.0, lt=1.0)
    pos_weight: Literal["none", "auto"] | list[float] = "none"
    pos_weight_cap: float = Field(10.0, gt=0.0)
    sampler: str = "none"
    loss: str = "ce"
    gamma: float = Field(2.0, ge=0.0)
    alpha: float | list[float] | Literal["auto"] | None = None
    tau: float = Field(1.0, ge=0.0)
    minority_augment: MinorityAugmentConfig | None = None


class BootstrapConfig(_Strict):
    """Bootstrapping loss (Reed et al. 2015): target = (1 - beta) * label + beta * prediction
    (`soft`: the predicted probabilities; `hard`: the predicted class)."""

    mode: Literal["soft", "hard"] = "soft"
    beta: float = Field(0.2, ge=0.0, lt=1.0)


class CoteachingConfig(_Strict):
    """Co-teaching (Han et al. 2018): two networks, each updated on the small-loss rows the
    other picks; the share of rows dropped ramps up to `forget_rate` over `ramp_epochs`."""

    forget_rate: float = Field(0.2, ge=0.0, lt=1.0)
    ramp_epochs: float = Field(1.0, gt=0.0)


class NoiseConfig(_Strict):
    """Resisting label noise during training, and acting on an audit's suspects."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    bootstrap: BootstrapConfig | None = None
    coteaching: CoteachingConfig | None = None
    dynamics: bool = True
    action: Literal["none", "drop", "relabel"] = "none"
    suspects: Path | None = None
    min_score: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _action_needs_suspects(self) -> NoiseConfig:
        if self.action != "none" and self.suspects is None:
            raise ValueError(f"noise.action: {self.action} needs noise.suspects, the "
                             f"suspects.csv written by `fitclass audit`")
        return self


class SelfTrainingConfig(_Strict):
    """Pseudo-labelling rounds on an unlabelled table (same text column(s) as data.text)."""

    unlabelled: Path
    rounds: int = Field(1, ge=1)
    tau: float | dict[str, float] = 0.9
    max_per_class: int | Literal["proportional"] = "proportional"
    limit: int | None = Field(None, ge=1)


class DecisionConfig(_Strict):
    """How probabilities become labels; fitted on validation, saved in the run."""

    thresholds: Literal["auto", "per_class", "global", "none"] = "auto"
    min_support: int = Field(5, ge=1)
    at_least_one: bool = False
    calibration: Literal["none", "temperature"] = "temperature"
    prior_correction: Literal["none", "uniform"] | dict[str, float] = "none"
    cost_matrix: list[list[float]] | None = None


class SwaConfig(_Strict):
    """Uniform average of `k` evaluated checkpoints: the `last` k or the `top` k by
    `train.select`, optionally only from epoch `from_epoch` on; kept if `keep: better` finds
    it better on validation than the best checkpoint, or always (`keep: always`)."""

    k: int = Field(3, ge=2)
    pick: Literal["last", "top"] = "last"
    from_epoch: float | None = Field(None, ge=0.0)
    keep: Literal["better", "always"] = "better"


class EmaConfig(_Strict):
    """Exponential moving average of the weights, updated every optimiser step; `warmup`
    uses min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the start."""

    decay: float = Field(0.999, gt=0.0, lt=1.0)
    warmup: bool = True


class AveragingConfig(_Strict):
    """Weight averaging after (SWA, soup) or during (EMA) training."""

    swa: SwaConfig | None = None
    ema: EmaConfig | None = None
    soup: bool = False

    @property
    def active(self) -> bool:
        return self.swa is not None or self.ema is not None or self.soup


class SweepConfig(_Strict):
    """Search space and search strategy for `fitclass sweep`.

    `params` maps dotted recipe keys to a distribution: `{loguniform: [lo, hi]}`,
    `{uniform: [lo, hi], step: s}`, `{int: [lo, hi], step: s}` or `{categorical: [...]}`.
    """

    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    trials: int = Field(20, ge=1)
    startup_trials: int = Field(3, ge=0)

    @field_validator("params")
    @classmethod
    def _known_distributions(cls, params: dict[str, dict[str, Any]]
                             ) -> dict[str, dict[str, Any]]:
        kinds = ("loguniform", "uniform", "int", "categorical")
        for key, spec in params.items():
            found = [k for k in kinds if k in spec]
            if len(found) != 1:
                raise ValueError(f"sweep.params.{key}: give exactly one of {list(kinds)}, "
                                 f"e.g. {{loguniform: [1.0e-5, 1.0e-4]}}")
            unknown = set(spec) - set(kinds) - {"step", "log"}
            if unknown:
                raise ValueError(f"sweep.params.{key}: unknown keys {sorted(unknown)}")
            bounds = spec[found[0]]
            if found[0] != "categorical" and (not isinstance(bounds, list) or len(bounds) != 2
                                              or bounds[0] >= bounds[1]):
                raise ValueError(f"sweep.params.{key}.{found[0]}: expected [low, high] with "
                                 f"low < high")
        return params

    def resolved(self, metric: str, mode: Literal["max", "min"]) -> SweepConfig:
        """With `metric`/`mode` defaulting to `train.select`."""
        chosen = self.metric or metric
        return self.model_copy(update={"metric": chosen, "mode": self.mode or (
            SELECTABLE_METRICS.get(chosen, mode) if self.metric else mode)})


class MlflowConfig(_Strict):
    """Where MLflow tracking goes (used when `tracking` lists mlflow)."""

    tracking_uri: str | None = None
    experiment: str | None = None


class Recipe(_Strict):
    """A whole fitclass recipe."""

    task: Literal["multiclass", "multilabel"] = "multiclass"
    name: str | None = None
    data: DataConfig
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    imbalance: ImbalanceConfig = Field(default_factory=lambda: ImbalanceConfig())
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig())
    self_training: SelfTrainingConfig | None = None
    decision: DecisionConfig = Field(default_factory=lambda: DecisionConfig())
    averaging: AveragingConfig = Field(default_factory=lambda: AveragingConfig())
    sweep: SweepConfig | None = None
    tracking: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)
    mlflow: MlflowConfig = Field(default_factory=lambda: MlflowConfig())

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        for problem in _task_problems(self) + _backbone_problems(self):
            raise ValueError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (defaults included), minus keys its backbone never reads."""
        raw = self.model_dump(mode="json")
        if self.model.backbone != "tfidf":
            raw["model"] = {k: v for k, v in raw["model"].items() if k not in TFIDF_KEYS}
        return raw

    def to_yaml(self) -> str:
        """The resolved recipe as YAML, as written into every run's `recipe.yaml`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _task_problems(recipe: Recipe) -> list[str]:
    """Keys that contradict the task kind."""
    problems = []
    other = "multilabel" if recipe.task == "multiclass" else "multiclass"
    if recipe.train.select.metric in TASK_METRICS[other]:
        problems.append(f"train.select.metric {recipe.train.select.metric!r} exists only for "
                        f"task: {other}")
    if recipe.task == "multiclass":
        if recipe.data.multilabel:
            problems.append("data.label as a list of columns, or data.label_sep, means "
                            "task: multilabel; set task: multilabel or give one label column")
        if recipe.decision.thresholds in ("per_class", "global"):
            problems.append("decision.thresholds applies to task: multilabel; for multiclass "
                            "use decision.prior_correction or decision.cost_matrix")
        if recipe.imbalance.pos_weight != "none":
            problems.append("imbalance.pos_weight applies to task: multilabel; for multiclass "
                            "use imbalance.class_weights")
    else:
        if not recipe.data.multilabel:
            problems.append("task: multilabel needs data.label as a list of 0/1 columns, or "
                            "one column of names with data.label_sep (e.g. '|')")
        if recipe.decision.prior_correction != "none" or recipe.decision.cost_matrix:
            problems.append("decision.prior_correction and decision.cost_matrix apply to task: "
                            "multiclass; multilabel uses decision.thresholds")
    return problems


def _backbone_problems(recipe: Recipe) -> list[str]:
    """Settings the TF-IDF backbone cannot honour, refused rather than ignored."""
    if recipe.model.backbone != "tfidf":
        return []
    problems = []
    if recipe.imbalance.sampler != "none":
        problems.append("imbalance.sampler needs a neural backbone; with backbone: tfidf use "
                        "imbalance.class_weights")
    if recipe.imbalance.loss not in ("ce", "bce"):
        problems.append(f"imbalance.loss {recipe.imbalance.loss!r} needs a neural backbone; "
                        f"backbone: tfidf fits a logistic regression")
    if recipe.imbalance.pos_weight != "none":
        problems.append("imbalance.pos_weight needs a neural backbone; with backbone: tfidf "
                        "use imbalance.class_weights")
    if recipe.averaging.active or recipe.train.stages or recipe.train.layer_decay:
        problems.append("averaging, train.stages and train.layer_decay need a neural backbone "
                        "(backbone: tfidf has no checkpoints or layers)")
    noise = recipe.noise
    if noise.label_smoothing or noise.bootstrap or noise.coteaching:
        problems.append("noise.label_smoothing, noise.bootstrap and noise.coteaching need a "
                        "neural backbone (backbone: tfidf fits a logistic regression)")
    return problems


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn `["train.lr=3e-5", ...]` into a nested dict; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {pair!r}: expected key=value, e.g. --set train.lr=3e-5")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"--set {pair!r}: {part!r} is set twice with different shapes")
        try:
            node[leaf] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise RecipeError(f"--set {pair!r}: the value is not valid YAML ({error}); "
                              f"quote it, e.g. --set '{key.strip()}=\"...\"'") from None
    return nested


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Data paths in a recipe file are relative to the file, not to the working directory."""
    for section, keys in (("data", ("train", "valid")), ("noise", ("suspects",)),
                          ("self_training", ("unlabelled",))):
        values = raw.get(section)
        if isinstance(values, dict):
            values = dict(values)
            for key in keys:
                if isinstance(values.get(key), str) and not Path(values[key]).is_absolute():
                    values[key] = str((base_dir / values[key]).resolve())
            raw = {**raw, section: values}
    return raw


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid recipe"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key; check the spelling (see docs/recipe.md)")
        elif item["type"] == "missing":
            lines.append(f"  {path}: required key is missing")
        else:
            value = item.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"  {path}: {item['msg']}{shown}")
    return "\n".join(lines)


def build_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a plain dict into a `Recipe`, raising `RecipeError` with key paths."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise RecipeError(_format_validation_error(error, source)) from None


def load_recipe(
    source: str | Path | dict[str, Any] | Recipe, overrides: list[str] | None = None
) -> Recipe:
    """Load a recipe from a YAML path, a dict or a `Recipe`, then apply `--set` overrides."""
    if isinstance(source, Recipe):
        raw: dict[str, Any] = source.to_dict()
        name, base_dir = "recipe", Path.cwd()
    elif isinstance(source, dict):
        raw, name, base_dir = source, "recipe", Path.cwd()
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found; pass the path of a YAML recipe")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise RecipeError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise RecipeError(f"{path}: a recipe is a YAML mapping with keys data, model, train")
        raw, name, base_dir = loaded, str(path), path.resolve().parent
    if overrides:
        raw = merge(raw, parse_overrides(overrides))
    return build_recipe(_resolve_paths(raw, base_dir), name)
