"""Parameter-efficient fine-tuning (`model.peft`): LoRA or IA3 adapters on a Hugging Face
backbone, through the `peft` library.

The adapters wrap the backbone only (the encoder `AutoModel` gives); fitclass's pooled linear
head stays outside the `PeftModel`, so it always trains, whatever peft freezes. Which Linear
layers get adapters is read from the module's structure, never from the model's name:
`target_modules: auto` takes the Linear layers inside the stacked blocks (a dotted path with a
block index) whose own name is one of the attention/MLP projection names common
architectures use (`PROJECTIONS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from peft import IA3Config, LoraConfig, PeftModel, get_peft_model
from pydantic import ValidationError
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.pytorch_utils import Conv1D

from fitclass import files
from fitclass.errors import RecipeError, RunError
from fitclass.models.base import MODEL_INFO
from fitclass.models.registry import BACKBONES
from fitclass.precision import load_pretrained
from fitclass.recipe import ModelConfig, PeftConfig

#: Projection layer names that `target_modules: auto` looks for. BERT-like encoders:
#: query/key/value/dense; Llama, Qwen, Mistral, Gemma: q/k/v/o and gate/up/down; and the
#: names other families give the same projections (DistilBERT, GPT-2, Falcon, Phi, OPT, T5).
PROJECTIONS = frozenset({
    "query", "key", "value", "dense",
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    "q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2",
    "c_attn", "c_proj", "c_fc", "query_key_value", "dense_h_to_4h", "dense_4h_to_h",
    "qkv_proj", "gate_up_proj", "out_proj", "fc1", "fc2", "q", "k", "v", "o", "wi", "wo",
})
#: IA3 scales a feed-forward layer's input rather than its output: the layers that close an
#: MLP block, by their path's ending (BERT's FFN output is `<block>.output.dense`; its
#: attention output `attention.output.dense` is not one).
FEEDFORWARD_ENDINGS = ("down_proj", "fc2", "wo", "dense_4h_to_h", "lin2", ".output.dense",
                       "mlp.c_proj")
LINEAR_TYPES = (nn.Linear, Conv1D)


def linear_layers(encoder: nn.Module) -> list[str]:
    """Dotted names of the encoder's Linear layers."""
    return [name for name, child in encoder.named_modules() if isinstance(child, LINEAR_TYPES)]


def in_block(name: str) -> bool:
    """Whether a module sits in a stack of blocks: some part of its path is an index."""
    return any(part.isdigit() for part in name.split("."))


def resolve_targets(encoder: nn.Module, settings: PeftConfig, backbone: str) -> list[str]:
    """The full names of the Linear layers that get adapters, or a RecipeError naming the
    layer names the backbone has."""
    layers = linear_layers(encoder)
    if settings.target_modules == "auto":
        wanted, where = PROJECTIONS, "inside its blocks"
        chosen = [n for n in layers if in_block(n) and n.rsplit(".", 1)[-1] in PROJECTIONS]
    else:
        wanted, where = frozenset(settings.target_modules), "anywhere"
        chosen = [n for n in layers
                  if any(n == w or n.endswith("." + w) for w in settings.target_modules)]
    if not chosen:
        names = sorted({n.rsplit(".", 1)[-1] for n in layers})
        raise RecipeError(
            f"model.peft.target_modules: no Linear layer of backbone {backbone!r} {where} is "
            f"named any of {sorted(wanted)[:12]}; its Linear layers are named "
            f"{names[:20] or 'nothing (it has none)'}; list some of them, e.g. "
            f"model.peft.target_modules: [{', '.join(names[:2])}]")
    return chosen


def adapter_config(settings: PeftConfig, targets: list[str]) -> LoraConfig | IA3Config:
    """peft's configuration for `settings` on exactly the layers `targets` names."""
    if settings.method == "ia3":
        feedforward = [t for t in targets if t.endswith(FEEDFORWARD_ENDINGS)
                       and not t.endswith("attention.output.dense")]
        return IA3Config(target_modules=targets, feedforward_modules=feedforward)
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=targets, bias="none")


def with_adapters(encoder: PreTrainedModel, settings: PeftConfig,
                  targets: list[str]) -> PeftModel:
    """`encoder` wrapped: its own weights frozen, the adapters trainable."""
    # no task type: the classification head is fitclass's and lives outside this model
    return get_peft_model(encoder, adapter_config(settings, targets))


def describe(settings: PeftConfig, targets: list[str]) -> dict[str, Any]:
    """What `fitclass_model.json` records to rebuild the same adapters when loading."""
    return {"method": settings.method, "r": settings.r, "alpha": settings.alpha,
            "dropout": settings.dropout, "target_modules": targets}


def damaged_record(model_dir: Path, key: str, expected: str) -> RunError:
    return files.damaged(model_dir / MODEL_INFO, f"has no valid peft.{key} (expected "
                                                 f"{expected})")


def settings_of(model_dir: Path, saved: object) -> tuple[PeftConfig, list[str]]:
    """The `describe` record of `fitclass_model.json` back as settings and target layers."""
    if not isinstance(saved, dict):
        raise damaged_record(model_dir, "", "a mapping of method, r, alpha, dropout, "
                                            "target_modules")
    targets = saved.get("target_modules")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise damaged_record(model_dir, "target_modules", "a list of layer names")
    try:
        settings = PeftConfig(method=saved.get("method"), r=saved.get("r"),
                              alpha=saved.get("alpha"), dropout=saved.get("dropout"),
                              target_modules=targets)
    except ValidationError as error:
        raise damaged_record(model_dir, "method/r/alpha/dropout",
                             f"valid adapter settings: {error.errors()[0]['msg']}") from None
    return settings, targets


def save_trainable(module: nn.Module, fixed: frozenset[str], path: Path) -> None:
    """Every tensor of `module` except the `fixed` backbone weights, as safetensors."""
    from safetensors.torch import save_file

    state = {name: tensor.detach().contiguous() for name, tensor in module.state_dict().items()
             if name not in fixed}
    save_file(state, str(path))


def load_trainable(module: nn.Module, fixed: frozenset[str], path: Path) -> None:
    """The saved trainable tensors into `module`, whose fixed weights came from the base
    model: every other tensor must be in the file, shaped as the module's."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise files.damaged(path, "is missing")
    try:
        state = load_file(str(path))
    except SafetensorError as error:
        raise files.damaged(path, f"is not a readable safetensors file ({error})") from None
    expected = {name for name in module.state_dict() if name not in fixed}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise files.damaged(path, f"does not fit the saved adapters (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # wrongly shaped tensors
        first = str(error).strip().splitlines()[0][:300]
        raise files.damaged(path, f"does not fit the saved adapters ({first})") from None


def merged(encoder: PreTrainedModel) -> PreTrainedModel:
    """The backbone with its adapters folded into its weights (a plain model again)."""
    if isinstance(encoder, PeftModel):
        return cast(PreTrainedModel, encoder.merge_and_unload())
    return encoder


def has_adapters(encoder: nn.Module) -> bool:
    return isinstance(encoder, PeftModel)


def load_base(model_dir: Path, saved: dict[str, Any]) -> PreTrainedModel:
    """The base model an adapter model was trained on, or a RunError naming it."""
    source = base_source(model_dir, saved)
    try:
        return load_pretrained(AutoModel.from_pretrained, source)
    except OSError as error:
        raise RunError(f"{model_dir / MODEL_INFO} names the base model {source!r} its adapters "
                       f"sit on, which could not be loaded ({error}); make that model id or "
                       f"folder available again, or merge the adapters where it is "
                       f"(fitclass export RUN --merge)") from None


def base_source(model_dir: Path, saved: dict[str, Any]) -> str:
    """Where an adapter model's base weights are: its registered backbone's source where the
    name is one (the embedded MiniLM's folder differs between machines), else the id or
    folder the run trained from."""
    name = saved.get("base_backbone")
    factory = BACKBONES.find(name) if isinstance(name, str) else None
    if factory is not None:
        source = getattr(factory(ModelConfig(backbone=name)), "source", None)
        if isinstance(source, str):
            return source
    source = saved.get("base")
    if not isinstance(source, str) or not source:
        raise damaged_record(model_dir, "base", "the base model's id or folder")
    return source
