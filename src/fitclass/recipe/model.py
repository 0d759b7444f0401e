"""Recipe section: `model` (backbone and head)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fitclass.recipe.base import TFIDF_KEYS, Strict


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
