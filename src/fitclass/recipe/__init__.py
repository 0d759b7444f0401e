"""The recipe: pydantic models of every key, their defaults, and `--set key=value` overrides.

A recipe is validated before any data is read or model loaded. Unknown keys and bad values
raise `RecipeError` naming the dotted key path, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from fitclass.capabilities import capabilities_for
from fitclass.errors import RecipeError
from fitclass.recipe.base import DECISION_METRICS, SELECTABLE_METRICS, TASK_METRICS, Strict
from fitclass.recipe.batching import batching_problems
from fitclass.recipe.data import DataConfig, SplitConfig
from fitclass.recipe.distil import DistilConfig, distil_problems
from fitclass.recipe.images import AugmentConfig, ImagesConfig, MixConfig
from fitclass.recipe.model import ModelConfig, PeftConfig
from fitclass.recipe.remedies import (
    BootstrapConfig,
    CoteachingConfig,
    DecisionConfig,
    ImbalanceConfig,
    MinorityAugmentConfig,
    NoiseConfig,
    SelfTrainingConfig,
)
from fitclass.recipe.search import MlflowConfig, SweepConfig
from fitclass.recipe.training import (
    AveragingConfig,
    EarlyStoppingConfig,
    EmaConfig,
    EvalEvery,
    SelectConfig,
    StageConfig,
    SwaConfig,
    TopBlocks,
    TrainConfig,
)

__all__ = [
    "DECISION_METRICS",
    "SELECTABLE_METRICS",
    "TASK_METRICS",
    "AugmentConfig",
    "AveragingConfig",
    "BootstrapConfig",
    "CoteachingConfig",
    "DataConfig",
    "DecisionConfig",
    "DistilConfig",
    "EarlyStoppingConfig",
    "EmaConfig",
    "EvalEvery",
    "ImagesConfig",
    "ImbalanceConfig",
    "MinorityAugmentConfig",
    "MixConfig",
    "MlflowConfig",
    "ModelConfig",
    "NoiseConfig",
    "PeftConfig",
    "Recipe",
    "SelectConfig",
    "SelfTrainingConfig",
    "SplitConfig",
    "StageConfig",
    "SwaConfig",
    "SweepConfig",
    "TopBlocks",
    "TrainConfig",
    "build_recipe",
    "load_recipe",
    "merge",
    "parse_overrides",
]


class Recipe(Strict):
    """A whole fitclass recipe."""

    task: Literal["multiclass", "multilabel"] = "multiclass"
    name: str | None = None
    data: DataConfig
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    imbalance: ImbalanceConfig = Field(default_factory=lambda: ImbalanceConfig())
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig())
    self_training: SelfTrainingConfig | None = None
    distil: DistilConfig | None = None
    decision: DecisionConfig = Field(default_factory=lambda: DecisionConfig())
    averaging: AveragingConfig = Field(default_factory=lambda: AveragingConfig())
    sweep: SweepConfig | None = None
    tracking: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)
    mlflow: MlflowConfig = Field(default_factory=lambda: MlflowConfig())
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig())

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        for problem in (_task_problems(self) + _backbone_problems(self)
                        + _image_problems(self) + batching_problems(self)
                        + distil_problems(self)):
            raise ValueError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe (defaults included), minus keys its backbone never reads."""
        raw = self.model_dump(mode="json")
        foreign = self.model.foreign_keys()
        raw["model"] = {k: v for k, v in raw["model"].items() if k not in foreign}
        split = raw["data"]["split"]  # the fold and refit keys only where they are set
        for key in ("folds", "fold"):
            if split[key] is None:
                split.pop(key)
        if not split["refit"]:
            split.pop("refit")
        if self.distil is None:  # only distillation runs name a teacher
            raw.pop("distil")
        if self.data.images is None:  # image-only keys stay out of text recipes
            raw.pop("augment")
            raw["model"].pop("image_size", None)
            raw["data"] = {k: v for k, v in raw["data"].items()
                           if k not in ("images", "on_bad_image")}
        return raw

    def carried(self) -> dict[str, Any]:
        """What a run derived from this recipe's run (an ensemble of it, a student distilled
        from it) takes over: the task, the data section (the same tables and split rule),
        the decision settings, the selection metric and the seed. How this run learned
        (backbone, schedule, remedies, distillation) stays its own."""
        raw = self.to_dict()
        return {"task": raw["task"], "data": raw["data"], "decision": raw["decision"],
                "train": {"select": raw["train"]["select"], "seed": raw["train"]["seed"]}}

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
        optimize = recipe.decision.optimize
        if optimize != "none" and optimize not in DECISION_METRICS:
            problems.append(f"decision.optimize: {optimize!r} is not a multi-class metric of "
                            f"the predicted labels (it scores probabilities, or exists only "
                            f"for task: multilabel), so no decision can raise it; use one of "
                            f"{', '.join(DECISION_METRICS)}")
    else:
        if not recipe.data.multilabel:
            problems.append("task: multilabel needs data.label as a list of 0/1 columns, or "
                            "one column of names with data.label_sep (e.g. '|')")
        if recipe.decision.prior_correction != "none" or recipe.decision.cost_matrix:
            problems.append("decision.prior_correction and decision.cost_matrix apply to task: "
                            "multiclass; multilabel uses decision.thresholds")
        if recipe.decision.optimize != "none":
            problems.append("decision.optimize applies to task: multiclass; multilabel "
                            "decisions are already fitted per label: decision.thresholds: "
                            "per_class (the default, auto) picks each label's F1-optimal "
                            "threshold, global one threshold for micro-F1; remove "
                            "decision.optimize")
    return problems


def _backbone_problems(recipe: Recipe) -> list[str]:
    """Settings a trained classical (non-neural) kind such as TF-IDF cannot honour, refused
    rather than ignored; the kind's declared capabilities say which it is."""
    capabilities = capabilities_for(recipe.model.backbone)
    if capabilities is None or capabilities.neural or not capabilities.trainable:
        return []
    name = recipe.model.backbone
    problems = []
    if recipe.imbalance.sampler != "none":
        problems.append(f"imbalance.sampler needs a neural backbone; with backbone: {name} "
                        f"use imbalance.class_weights")
    if recipe.imbalance.loss not in ("ce", "bce"):
        problems.append(f"imbalance.loss {recipe.imbalance.loss!r} needs a neural backbone; "
                        f"backbone: {name} fits a linear model")
    if recipe.imbalance.pos_weight != "none":
        problems.append(f"imbalance.pos_weight needs a neural backbone; with backbone: {name} "
                        f"use imbalance.class_weights")
    if recipe.train.gradient_checkpointing:
        problems.append(f"train.gradient_checkpointing needs a neural backbone (backbone: "
                        f"{name} keeps no activations); set it to false")
    if recipe.averaging.active or recipe.train.stages or recipe.train.layer_decay:
        problems.append(f"averaging, train.stages and train.layer_decay need a neural backbone "
                        f"(backbone: {name} has no checkpoints or layers)")
    noise = recipe.noise
    if noise.label_smoothing or noise.bootstrap or noise.coteaching:
        problems.append(f"noise.label_smoothing, noise.bootstrap and noise.coteaching need a "
                        f"neural backbone (backbone: {name} fits a linear model)")
    return problems


def _image_problems(recipe: Recipe) -> list[str]:
    """Keys that need image inputs, and text-only features asked of image runs."""
    if recipe.data.images is None:
        if "augment" in recipe.model_fields_set:
            return ["augment applies to image inputs; set data.images (see docs/recipe.md) "
                    "or remove the augment section"]
        return []
    problems = []
    capabilities = capabilities_for(recipe.model.backbone)
    if capabilities is not None and capabilities.modality == "text":
        problems.append(f"model.backbone {recipe.model.backbone!r} reads text; with "
                        f"data.images use resnet-tiny, a Hugging Face image model id or "
                        f"folder, or timm:<name>")
    if recipe.model.peft is not None:
        problems.append("model.peft is text-only for now (adapters on Hugging Face text "
                        "transformers); remove model.peft for data.images")
    if recipe.noise.coteaching or recipe.self_training or recipe.imbalance.minority_augment:
        problems.append("noise.coteaching, self_training and imbalance.minority_augment are "
                        "text-only for now; remove them for data.images")
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
        elif isinstance(value, dict) and isinstance(merged.get(key), list):
            merged[key] = _merge_items(key, merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_items(key: str, items: list[Any], overrides: dict[str, Any]) -> list[Any]:
    """`train.stages.0.lr=...`: a numeric key addresses an item of a list (sweeps over a
    stage's learning rate or epochs)."""
    merged = list(items)
    for index, value in overrides.items():
        if not index.isdigit() or int(index) >= len(merged):
            raise RecipeError(f"--set {key}.{index}...: {key} is a list of {len(merged)} "
                              f"items; address one by its position 0-{len(merged) - 1}, "
                              f"e.g. {key}.0.lr=1e-3")
        position = int(index)
        if isinstance(value, dict) and isinstance(merged[position], dict):
            merged[position] = merge(merged[position], value)
        else:
            merged[position] = value
    return merged


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Relative data paths become absolute paths under `base_dir`."""
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
    # Paths written in a recipe file are relative to the file; paths typed with --set are
    # relative to the shell's working directory, like any other path on a command line.
    raw = _resolve_paths(raw, base_dir)
    if overrides:
        raw = _resolve_paths(merge(raw, parse_overrides(overrides)), Path.cwd())
    return build_recipe(raw, name)
