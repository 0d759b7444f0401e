"""Recipe section: `model` (backbone and head)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fitclass.capabilities import capabilities_for, kind_only_keys, kinds_reading
from fitclass.recipe.base import Strict


class ModelConfig(Strict):
    """The backbone and its head. `minilm` is the embedded default; `tfidf` is classical."""

    backbone: str = "minilm"
    pretrained: bool = True
    max_length: int = Field(128, ge=8, le=8192)
    pooling: Literal["auto", "mean", "cls"] = "auto"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
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
        if self.ngram_range[0] < 1 or self.ngram_range[0] > self.ngram_range[1]:
            raise ValueError("model.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n")
        return self
