"""The ensemble kind: a classifier whose members are other runs, loaded one at a time.

Saved as JSON only (member paths, the combiner's weights or meta-model); predicting loads
each member, takes its calibrated probabilities, frees it, then combines, so memory is
bounded by the largest member rather than their sum.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fitclass.data.table import TextInput
from fitclass.decide.combiners import Combiner
from fitclass.errors import RecipeError, RunError
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.registry import register_backbone, register_kind
from fitclass.recipe import ModelConfig
from fitclass.training.context import FitContext, FitResult


def resolve_member(model_dir: Path, member: dict[str, str]) -> Path:
    """A member's run folder: relative to the ensemble first (the pair can move together),
    then the absolute path recorded at build time."""
    relative = (model_dir.parent / member["relative"]).resolve()
    if (relative / "status.json").is_file():
        return relative
    absolute = Path(member["absolute"])
    if (absolute / "status.json").is_file():
        return absolute
    raise RunError(f"{model_dir}: ensemble member not found at {relative} or {absolute}; "
                   f"keep member runs next to the ensemble or at their original paths")


class EnsembleClassifier(Classifier):
    """Combines the calibrated probabilities of member runs."""

    kind = "ensemble"

    def __init__(self, class_names: Sequence[str], members: list[dict[str, str]],
                 combiner: Combiner, model_dir: Path | None = None) -> None:
        super().__init__(class_names)
        self.members = members
        self.combiner = combiner
        self.model_dir = model_dir

    def member_paths(self) -> list[Path]:
        if self.model_dir is None:
            return [Path(m["absolute"]) for m in self.members]
        return [resolve_member(self.model_dir, m) for m in self.members]

    def member_probabilities(self, texts: Sequence[TextInput], batch_size: int) -> np.ndarray:
        from fitclass.run import load_run

        stacked = []
        for path in self.member_paths():
            member = load_run(path)
            stacked.append(member.predict_proba(list(texts), batch_size))
            del member  # one member in memory at a time
        return np.stack(stacked)

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return self.combiner.combine(self.member_probabilities(texts, batch_size))

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {"kind": self.kind, "class_names": self.class_names,
                                "members": self.members, "combiner": self.combiner.to_dict()}
        (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False),
                                            encoding="utf-8")


@register_kind
class EnsembleBackbone(Backbone):
    """Ensembles are built from finished runs by `fitclass ensemble`, not trained."""

    kind = "ensemble"

    def fit(self, context: FitContext) -> FitResult:
        raise RecipeError("model.backbone 'ensemble' is built from finished runs: use "
                          "`fitclass ensemble RUN_DIR ... --out DIR` or `train --seeds N`")

    @classmethod
    def load(cls, model_dir: Path) -> EnsembleClassifier:
        info = json.loads((model_dir / MODEL_INFO).read_text(encoding="utf-8"))
        return EnsembleClassifier(info["class_names"], info["members"],
                                  Combiner.from_dict(info["combiner"]), model_dir)


@register_backbone("ensemble")
def ensemble(config: ModelConfig) -> Backbone:
    return EnsembleBackbone()
