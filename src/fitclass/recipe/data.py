"""Recipe sections: `data` (files, columns, splits)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fitclass.recipe.base import Strict
from fitclass.recipe.images import ImagesConfig


class SplitConfig(Strict):
    """How to carve a validation set out of `data.train` when `data.valid` is not given."""

    method: Literal["stratified", "group"] = "stratified"
    valid_size: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 42
    #: `group`: near-duplicate clusters (texts: `data.near_duplicate_threshold`; images:
    #: identical files and dHashes within `data.images.near_duplicate_bits`) become groups
    #: (joined with `data.group` under method: group), so no cluster straddles train and
    #: validation, nor two cross-validation folds.
    dedupe: Literal["none", "group"] = "none"
    #: Cross-validation (`fitclass train --folds K` writes both into each fold run): the
    #: validation rows are fold `fold` (0-based) of `folds` folds of every labelled row
    #: (`data.train` and `data.valid` together), stratified, grouped (`method: group`) or
    #: iterative (multi-label), shuffled by `seed`; `valid_size` does not apply.
    folds: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    #: Train on every labelled row (`data.train` and `data.valid`), none held out: the run
    #: `fitclass train --refit` makes (its decision and expected score come from the run that
    #: chose its schedule).
    refit: bool = False

    @model_validator(mode="after")
    def _one_fold_of_k(self) -> SplitConfig:
        if (self.folds is None) != (self.fold is None):
            raise ValueError("data.split.folds and data.split.fold go together (fold k of K, "
                             "0 <= k < K); `fitclass train --folds K` writes both")
        if self.folds is not None and self.fold is not None and self.fold >= self.folds:
            raise ValueError(f"data.split.fold {self.fold} is not one of the {self.folds} "
                             f"folds 0..{self.folds - 1}")
        if self.refit and self.folds is not None:
            raise ValueError("data.split.refit trains on every labelled row; it takes no "
                             "data.split.folds/fold")
        return self

    @property
    def all_labelled(self) -> bool:
        """Whether the run's rows are every labelled row (train and valid files together):
        a fold run or a refit."""
        return self.folds is not None or self.refit


class DataConfig(Strict):
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
    #: Text encoding of CSV/TSV/JSONL files (a Python codec name: utf-8, cp949, latin-1...).
    encoding: str = "utf-8"
    #: Field separator of CSV/TSV files; null picks it by extension (`,` for .csv, tab else).
    sep: str | None = None
    #: Image inputs (see `recipe/images.py`); `true` takes the defaults.
    images: ImagesConfig | None = None
    #: Unreadable or truncated images: stop with the list (`fail`) or drop them (`skip`).
    on_bad_image: Literal["fail", "skip"] = "fail"
    #: Texts whose character 3-gram sets (case, punctuation and spacing ignored) have at
    #: least this Jaccard similarity are near duplicates; null turns the check off. Below
    #: 0.5 unrelated texts sharing common words start to match (and candidates multiply).
    near_duplicate_threshold: float | None = Field(0.8, ge=0.5, le=1.0)

    @field_validator("images", mode="before")
    @classmethod
    def _images_shorthand(cls, value: object) -> object:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("unknown encoding; use a Python codec name such as utf-8, "
                             "cp949, cp1252 or latin-1") from None
        return value

    @field_validator("sep")
    @classmethod
    def _one_character_sep(cls, value: str | None) -> str | None:
        if value in ("\\t", "tab"):  # '\t' in single quotes is a backslash and a t
            return "\t"
        if value is not None and (len(value) != 1 or value in "\"\r\n"):
            raise ValueError("data.sep is one character other than a quote or line break, "
                             "e.g. ',', ';', '|' or '\\t' (tab)")
        return value

    @field_validator("text")
    @classmethod
    def _one_or_two_text_columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) not in (1, 2):
            raise ValueError("give one text column, or a pair [first, second] for sentence pairs")
        return value

    @model_validator(mode="after")
    def _dedupe_needs_text_check(self) -> DataConfig:
        if (self.split.dedupe == "group" and self.images is None
                and self.near_duplicate_threshold is None):
            raise ValueError("data.split.dedupe: group needs the near-duplicate check: set "
                             "data.near_duplicate_threshold (e.g. 0.8), or set "
                             "data.split.dedupe: none")
        return self

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
