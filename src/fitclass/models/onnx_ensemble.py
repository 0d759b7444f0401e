"""Predicting an ensemble run (`fitclass ensemble`, a `--seeds` or `--folds` run) with its
members' exported ONNX graphs: each member predicts with its graph, then the members are
combined exactly as the PyTorch ensemble combines them (the same member runs in the same
order, each member's own decision or raw probabilities as `member_output` says, the same
combiner); the ensemble run's decision is applied afterwards by the run, as for any engine.

A member whose kind has no torch network (TF-IDF: scikit-learn on the CPU) predicts with its
own model (`native`); a member that is itself an ensemble predicts through its own members'
graphs. Which member predicts how is read from the export's record (`runs/onnx_engine.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitclass.contracts.model import LoadedRun
from fitclass.data.table import TextInput
from fitclass.errors import RunError
from fitclass.models.base import Classifier
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.onnx import OnnxClassifier, graph_source

#: How the ONNX engine predicts a member: its exported graph, its own model, or its members.
ONNX, NATIVE, NESTED = "onnx", "native", "ensemble"


@dataclass(frozen=True)
class MemberEngine:
    """How one member of an ensemble predicts under the ONNX engine: with the exported
    `graph` (`onnx`), with its own model (`native`), or, for a member that is an ensemble,
    through its `members` (`ensemble`)."""

    name: str
    engine: str
    graph: Path | None = None
    members: tuple[MemberEngine, ...] = ()


class OnnxEnsembleClassifier(Classifier):
    """An ensemble whose transformer members predict with their exported graphs."""

    kind = "onnx-ensemble"

    def __init__(self, ensemble: EnsembleClassifier, members: Sequence[MemberEngine]) -> None:
        super().__init__(ensemble.class_names)
        self.ensemble, self.members = ensemble, tuple(members)
        if len(self.members) != len(ensemble.members):
            raise RunError(f"{ensemble.model_dir}: the ONNX export has {len(self.members)} "
                           f"members, the ensemble {len(ensemble.members)}; run `fitclass "
                           f"export` on the ensemble run again")

    def member_model(self, index: int, member: LoadedRun) -> Classifier:
        """What member `index` predicts with (the ensemble calls it as it loads each)."""
        plan = self.members[index]
        if plan.engine == ONNX:
            assert plan.graph is not None
            # the tokenizer only: the graph replaces the network, which is never built
            return OnnxClassifier(graph_source(member.model_dir, member.path), plan.graph)
        if plan.engine == NESTED:
            nested = member.classifier
            if not isinstance(nested, EnsembleClassifier):
                raise RunError(f"{member.path}: exported as an ensemble member but its model "
                               f"is {nested.kind!r}; run `fitclass export` on the ensemble "
                               f"run again")
            return OnnxEnsembleClassifier(nested, plan.members)
        return member.classifier

    def member_probabilities(self, texts: Sequence[TextInput], batch_size: int = 64
                             ) -> np.ndarray:
        """Each member's probabilities (members x rows x classes), as the ensemble feeds its
        combiner."""
        return self.ensemble.member_probabilities(texts, batch_size, engine=self.member_model)

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return self.ensemble.combiner.combine(self.member_probabilities(texts, batch_size))

    def save(self, model_dir: Path) -> None:
        raise RunError("an ONNX ensemble is saved by `fitclass export`, not by a run")

