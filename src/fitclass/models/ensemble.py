"""The ensemble kind: a classifier whose members are other runs, loaded one at a time.

Saved as JSON only (member paths, the combiner's weights or meta-model); predicting loads
each member, takes its calibrated probabilities, frees it, then combines, so memory is
bounded by the largest member rather than their sum. A cross-validation run combines its fold
runs' raw probabilities instead (`member_output: raw`): the folds are one model split K ways,
and its one decision is fitted on their raw out-of-fold probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fitclass.capabilities import ENSEMBLE
from fitclass.contracts.fit import FitContext, FitResult
from fitclass.contracts.model import LoadedRun, RunAccess
from fitclass.data.table import TextInput
from fitclass.decide.combiners import Combiner
from fitclass.errors import RecipeError, RunError
from fitclass.files import damaged
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.loading import read_model_info
from fitclass.models.members import ENSEMBLE_KIND, checked_members, resolve_member
from fitclass.models.registry import register_backbone, register_kind
from fitclass.recipe import ModelConfig

#: What an ensemble takes from each member: its calibrated probabilities (its own decision's
#: temperature and prior correction applied), or its model's raw ones.
MEMBER_OUTPUTS = ("calibrated", "raw")

if TYPE_CHECKING:
    from fitclass.precision import Policy

#: The model a member predicts with instead of its own (its index in the ensemble, the loaded
#: member run): how the ONNX engine swaps in each member's exported graph.
MemberEngine = Callable[[int, LoadedRun], Classifier]


def checked_combiner(payload: dict[str, Any], members: int, classes: int,
                     path: Path) -> Combiner:
    """The saved combiner, its weights (or meta-model) sized for the members and classes."""
    try:
        combiner = Combiner.from_dict(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise damaged(path, f"has an unreadable combiner ({type(error).__name__}: {error})"
                      ) from None
    weights_ok = combiner.weights.shape == (members,) and np.isfinite(combiner.weights).all()
    meta_ok = combiner.meta_coef is None or (
        combiner.meta_coef.ndim == 2 and combiner.meta_coef.shape[1] == members * classes
        and combiner.meta_intercept is not None
        and combiner.meta_intercept.shape == (combiner.meta_coef.shape[0],))
    if not (weights_ok and meta_ok):
        raise damaged(path, f"has a combiner that does not fit {members} members and "
                            f"{classes} classes")
    return combiner


class EnsembleClassifier(Classifier):
    """Combines the calibrated probabilities of member runs."""

    kind = ENSEMBLE_KIND
    capabilities = ENSEMBLE

    def __init__(self, class_names: Sequence[str], members: list[dict[str, str]],
                 combiner: Combiner, model_dir: Path | None = None,
                 member_output: str = "calibrated") -> None:
        super().__init__(class_names)
        self.members = members
        self.combiner = combiner
        self.model_dir = model_dir
        self.member_output = member_output
        self.runs: RunAccess | None = None  # set by `bind_runs` (the run layer)
        self.policy: Policy | None = None  # members load with it (device, precision)

    def bind_runs(self, runs: RunAccess) -> None:
        self.runs = runs

    def use(self, policy: Policy) -> None:
        """Members run on `policy`'s device and precision as each is loaded."""
        self.policy = policy

    def bound_runs(self) -> RunAccess:
        """The run layer's access to runs; an ensemble loaded on its own has none."""
        if self.runs is None:
            raise RunError(f"{self.model_dir}: an ensemble predicts through its member runs; "
                           f"load it with fitclass.load_run")
        return self.runs

    def member_paths(self) -> list[Path]:
        if self.model_dir is None:
            return [Path(m["absolute"]) for m in self.members]
        is_run = self.bound_runs().is_run
        return [resolve_member(self.model_dir, m, is_run) for m in self.members]

    def member_probabilities(self, texts: Sequence[TextInput], batch_size: int,
                             engine: MemberEngine | None = None) -> np.ndarray:
        """Each member's probabilities (calibrated or raw, `member_output`), stacked. With
        `engine`, each member predicts with the model `engine(index, member)` gives instead
        of its own (the ONNX engine's graphs); members then load on the CPU in fp32."""
        load_run = self.bound_runs().load
        stacked = []
        for index, path in enumerate(self.member_paths()):
            policy = self.policy
            if engine is not None:
                member = load_run(path, device="cpu", precision="fp32")
            elif policy is None:
                member = load_run(path)
            else:
                member = load_run(path, device=str(policy.device), precision=policy.precision)
            if member.class_names != self.class_names:
                raise RunError(f"{path}: member classes {member.class_names} differ from the "
                               f"ensemble's {self.class_names}; rebuild the ensemble with "
                               f"`fitclass ensemble`")
            # a member predicts with its own model unless an engine swaps one in
            swapped = {} if engine is None else {"model": engine(index, member)}
            stacked.append(member.model_proba(list(texts), batch_size, **swapped)
                           if self.member_output == "raw" else
                           member.predict_proba(list(texts), batch_size, **swapped))
            del member, swapped  # one member in memory at a time
        return np.stack(stacked)

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return self.combiner.combine(self.member_probabilities(texts, batch_size))

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {"kind": self.kind, "class_names": self.class_names,
                                "members": self.members, "combiner": self.combiner.to_dict()}
        if self.member_output != "calibrated":  # written only where it differs
            info["member_output"] = self.member_output
        (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False),
                                            encoding="utf-8")


@register_kind
class EnsembleBackbone(Backbone):
    """Ensembles are built from finished runs by `fitclass ensemble`, not trained."""

    kind = ENSEMBLE_KIND
    capabilities = ENSEMBLE

    def fit(self, context: FitContext) -> FitResult:
        raise RecipeError("model.backbone 'ensemble' is built from finished runs: use "
                          "`fitclass ensemble RUN_DIR ... --out DIR` or `train --seeds N`")

    @classmethod
    def load(cls, model_dir: Path) -> EnsembleClassifier:
        path = model_dir / MODEL_INFO
        info = read_model_info(model_dir, {"members": list, "combiner": dict})
        members = checked_members(info["members"], path)
        combiner = checked_combiner(info["combiner"], len(members), len(info["class_names"]),
                                    path)
        # an ensemble that contains itself is refused by the run layer that loads it
        # (`runs/members.py`: following member runs is the run record's business)
        output = info.get("member_output", "calibrated")
        if output not in MEMBER_OUTPUTS:
            raise damaged(path, f"has member_output {output!r}; expected one of "
                                f"{list(MEMBER_OUTPUTS)}")
        return EnsembleClassifier(info["class_names"], members, combiner, model_dir, output)


@register_backbone("ensemble")
def ensemble(config: ModelConfig) -> Backbone:
    return EnsembleBackbone()
