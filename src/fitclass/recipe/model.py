"""Recipe section: `model` (backbone, head, and parameter-efficient fine-tuning)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fitclass.capabilities import capabilities_for, kind_only_keys, kinds_reading
from fitclass.recipe.base import Strict

#: The adapter methods `model.peft.method` takes: those the `peft` library provides. BitFit
#: (train the biases only) is not one: peft 0.21 has no BitFit method.
PEFT_METHODS = ("lora", "ia3")


class PeftConfig(Strict):
    """`model.peft`: train small adapters (and the head) instead of the whole backbone."""

    method: Literal["lora", "ia3"] = "lora"
    #: LoRA rank (IA3 has none)
    r: int = Field(16, ge=1, le=4096)
    #: LoRA scaling numerator: the update is scaled by alpha / r
    alpha: int = Field(32, ge=1)
    #: dropout on the LoRA branch's input
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    #: `auto` (the attention and MLP projections found among the backbone's Linear layers)
    #: or the Linear layers' names, e.g. [query, value] or [q_proj, v_proj]
    target_modules: Literal["auto"] | list[str] = "auto"

    @field_validator("method", mode="before")
    @classmethod
    def _known_method(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() not in PEFT_METHODS:
            hint = (" (BitFit is not among them: the peft library has no BitFit method)"
                    if value.lower() == "bitfit" else "")
            raise ValueError(f"expected one of {', '.join(PEFT_METHODS)}{hint}; got "
                             f"{value!r}: set model.peft.method: lora")
        return value.lower() if isinstance(value, str) else value

    @field_validator("target_modules")
    @classmethod
    def _names_given(cls, value: object) -> object:
        if isinstance(value, list) and (not value or not all(name.strip() for name in value)):
            raise ValueError("expected `auto` or a non-empty list of Linear layer names, "
                             "e.g. [query, value]; set model.peft.target_modules: auto")
        return value


class ModelConfig(Strict):
    """The backbone and its head. `minilm` is the embedded default; `tfidf` is classical."""

    backbone: str = "minilm"
    pretrained: bool = True
    max_length: int = Field(128, ge=8, le=8192)
    #: `auto`: mean for sentence-transformers folders, the last real token for decoder-only
    #: (causal) models, else the first token (CLS)
    pooling: Literal["auto", "mean", "cls", "last"] = "auto"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    #: Parameter-efficient fine-tuning (adapters through `peft`); null trains every weight.
    peft: PeftConfig | None = None
    #: Image side in pixels; null takes the backbone's own preprocessing size.
    image_size: int | None = Field(None, ge=8, le=4096)
    # TF-IDF backbone only.
    analyzer: Literal["char_wb", "char", "word"] = "char_wb"
    ngram_range: tuple[int, int] = (1, 3)
    max_features: int | None = Field(200_000, ge=1)
    C: float = Field(4.0, gt=0.0)
    classifier: Literal["logreg", "linear_svm", "nbsvm"] = "logreg"

    def foreign_keys(self) -> set[str]:
        """`model` keys that other kinds read and this backbone's kind does not (its
        declared capabilities name the keys a kind alone reads)."""
        own = capabilities_for(self.backbone)
        return kind_only_keys() - set(own.model_keys if own is not None else ())

    @model_validator(mode="after")
    def _kind_keys_only_for_their_kind(self) -> ModelConfig:
        misplaced = sorted(self.foreign_keys() & self.model_fields_set)
        if misplaced:
            owners = sorted({name for key in misplaced for name in kinds_reading(key)})
            raise ValueError(
                f"{', '.join('model.' + k for k in misplaced)} only apply to backbone: "
                f"{' or '.join(owners)} (backbone is {self.backbone!r}); remove them or set "
                f"model.backbone: {owners[0]}"
            )
        own = capabilities_for(self.backbone)
        if self.peft is not None and own is not None and not own.peft:
            raise ValueError(
                f"model.peft needs a backbone whose kind takes adapters (a Hugging Face text "
                f"transformer: minilm, a hub id or a model folder); backbone {self.backbone!r} "
                f"does not; remove model.peft or change model.backbone")
        if self.ngram_range[0] < 1 or self.ngram_range[0] > self.ngram_range[1]:
            raise ValueError("model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n")
        return self
