"""Findings as data: what `fitclass doctor` measured, the remedy, why, and the recipe keys it
implies. `fitclass auto` reads the same objects to choose its search space, so every field is
plain data (JSON-ready) and no finding's meaning lives only in its printed text."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
#: Regimes a table can fall in (a table may be in several, or none: "ordinary").
Regime = Literal["very_few_rows_per_class", "long_tail", "noisy", "shifted_validation",
                 "leaky", "script_mismatch"]


@dataclass
class Finding:
    """One diagnosis: `code` names the concern (stable, for programs), `measured` holds the
    numbers behind it, `recipe` the dotted recipe keys the remedy sets (empty when the remedy
    is an action, not a key: fix a file, run a command)."""

    code: str
    severity: Severity
    title: str
    measured: dict[str, Any]
    remedy: str
    why: str
    recipe: dict[str, Any] = field(default_factory=dict)
    #: The regime this finding puts the table in, if any.
    regime: Regime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Diagnosis:
    """Everything `fitclass doctor` found about one table."""

    source: str
    task: Literal["multiclass", "multilabel"]
    rows: int
    class_counts: dict[str, int]
    findings: list[Finding]
    #: The recipe the findings imply: the table's own keys plus every finding's, validated.
    recipe: dict[str, Any]
    backbone: str
    seconds: float = 0.0

    @property
    def regimes(self) -> list[str]:
        """The regimes the table falls in, in finding order, each once."""
        return list(dict.fromkeys(f.regime for f in self.findings if f.regime is not None))

    def finding(self, code: str) -> Finding | None:
        """The first finding with this code, or None."""
        return next((f for f in self.findings if f.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        return {"tool": "fitclass doctor", "source": self.source, "task": self.task,
                "rows": self.rows, "backbone": self.backbone,
                "class_counts": self.class_counts, "regimes": self.regimes,
                "findings": [f.to_dict() for f in self.findings], "recipe": self.recipe,
                "seconds": round(self.seconds, 2)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """`{"imbalance.class_weights": "inverse"}` -> `{"imbalance": {"class_weights": ...}}`."""
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def merged(base: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    """The base recipe's dotted keys, then each finding's in order (a later finding's value
    for the same key wins: findings are ordered so the backbone is settled first)."""
    keys = dict(base)
    for finding in findings:
        keys.update(finding.recipe)
    return nested(keys)


def setter_of(findings: list[Finding]) -> dict[str, str]:
    """Each dotted recipe key -> the code of the finding that set it last."""
    return {key: f.code for f in findings for key in f.recipe}
