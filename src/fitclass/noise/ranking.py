"""One suspect ranking from every piece of evidence the audit gathered.

The rule (docs: README "Auditing labels"):
1. The proxies' out-of-fold probabilities are mixed, P = sum_p w_p P_p, with the weights on
   the simplex that maximise the mixture's log-likelihood of the given labels: a weak proxy
   gets little weight instead of diluting a strong one (an equal average lost to the probe
   alone on SST-2, where TF-IDF is weak), and proxies of equal strength share it.
2. Confident learning (cleanlab) on P: `score` is 1 - P(given label) and the flagged set is
   cleanlab's `find_label_issues`.
3. With training dynamics from neural fold runs, `score` is the mean of that and the
   area-under-the-margin score (`scoring.margin_score`).
Each proxy's own 1 - P_p(given label), the AUM score and the outlier z-score are kept as
`score_<method>` columns; `score` stays a label score in [0, 1], so `noise.min_score`
keeps its meaning (and `noise.action` skips rows listed only as outliers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import softmax

from fitclass.data.table import TextTable
from fitclass.noise import scoring
from fitclass.noise.outliers import Outliers
from fitclass.target_kinds import TargetKind

SUSPECT_COLUMNS = ["id", "text", "given_label", "suggested_label", "score", "methods"]
#: Per-method score columns follow SUSPECT_COLUMNS, each named score_<method>.
SCORE_PREFIX = "score_"
RULE = ("score = 1 - P(given label) under the proxies' out-of-fold probabilities mixed "
        "with log-likelihood weights (mean with the AUM score when fold runs gave "
        "training dynamics); flagged: cleanlab find_label_issues on the mixture, a "
        "negative mean margin, a duplicate with another label, or an outlier z-score "
        "above 3.5")


@dataclass
class Ranking:
    suspects: pd.DataFrame
    #: The mixed out-of-fold probabilities (what confident learning scored).
    probs: np.ndarray
    weights: dict[str, float]


def given_likelihood(probs: np.ndarray, targets: np.ndarray, kind: TargetKind) -> np.ndarray:
    """Per row, the probability of its given label (multi-label: the mean per-label
    probability of the given yes/no)."""
    if kind.multilabel:
        return np.where(targets == 1, probs, 1.0 - probs).mean(axis=1)
    return probs[np.arange(len(targets)), targets]


def mixture_weights(probs: list[np.ndarray], targets: np.ndarray,
                    kind: TargetKind) -> np.ndarray:
    """Simplex weights maximising the mean log-likelihood of the given labels under the
    mixture (softmax-parametrised; equal weights where the likelihood cannot tell)."""
    if len(probs) == 1:
        return np.ones(1)
    columns = np.stack([given_likelihood(p, targets, kind) for p in probs], axis=1)

    def loss(logits: np.ndarray) -> float:
        return float(-np.mean(np.log(columns @ softmax(logits) + 1e-12)))

    found = minimize(loss, np.zeros(len(probs)), method="L-BFGS-B")
    return np.asarray(softmax(found.x))


def rank_suspects(table: TextTable, class_names: list[str], targets: np.ndarray,
                  kind: TargetKind, proxy_probs: dict[str, np.ndarray],
                  margins: dict[str, float], outliers: Outliers | None) -> Ranking:
    """One row per flagged training row, most suspect first, with per-method scores."""
    weights = mixture_weights(list(proxy_probs.values()), targets, kind)
    probs = sum((w * p for w, p in zip(weights, proxy_probs.values(), strict=True)),
                np.zeros_like(next(iter(proxy_probs.values()))))
    cl_score, cl_mask = scoring.confident_learning(targets, kind, probs)
    columns = {f"{SCORE_PREFIX}{name}": scoring.label_score(targets, kind, p)
               for name, p in proxy_probs.items()}
    has_dynamics = bool(margins)
    margin = np.array([margins.get(i, np.nan) for i in table.ids])
    score = cl_score
    if has_dynamics:
        columns[f"{SCORE_PREFIX}aum"] = scoring.margin_score(margin)
        score = (cl_score + columns[f"{SCORE_PREFIX}aum"]) / 2
    if outliers is not None:
        columns[f"{SCORE_PREFIX}outlier"] = outliers.score
    given = [kind.label_text(x) for x in table.labels or []]
    duplicates = ({} if kind.multilabel else  # a conflict of duplicates: one label each
                  scoring.conflicting_duplicates([str(t) for t in table.texts], given))
    rows = []
    for i in range(len(table)):
        methods = []
        if cl_mask[i]:
            methods.append("confident_learning")
        if has_dynamics and np.isfinite(margin[i]) and margin[i] < 0:
            methods.append("training_dynamics")
        if i in duplicates:
            methods.append("duplicate_conflict")
        if outliers is not None and outliers.flagged[i]:
            methods.append("outlier")
        if methods:
            rows.append({"id": table.ids[i], "text": str(table.texts[i]),
                         "given_label": given[i],
                         "suggested_label": _suggestion(i, probs, targets, kind,
                                                        class_names, duplicates),
                         "score": round(float(score[i]), 6), "methods": "+".join(methods)}
                        | {name: round(float(values[i]), 6)
                           for name, values in columns.items()})
    frame = pd.DataFrame(rows, columns=SUSPECT_COLUMNS + list(columns))
    frame = frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    return Ranking(frame, probs, {name: round(float(w), 4)
                                  for name, w in zip(proxy_probs, weights, strict=True)})


def _suggestion(row: int, probs: np.ndarray, targets: np.ndarray, kind: TargetKind,
                class_names: list[str], duplicates: dict[int, str]) -> str:
    if kind.multilabel:  # every label the model believes in
        return "|".join(n for n, p in zip(class_names, probs[row], strict=True) if p >= 0.5)
    order = np.argsort(-probs[row])
    best = order[0] if order[0] != targets[row] else order[1]
    if row in duplicates and probs[row, order[0]] < 0.5:
        return duplicates[row]
    return class_names[int(best)]


def is_suspects_header(header: list[str]) -> bool:
    """A suspects table's columns: this version's, or an older one's (no score_ columns)."""
    extra = header[len(SUSPECT_COLUMNS):]
    return (header[:len(SUSPECT_COLUMNS)] == SUSPECT_COLUMNS
            and all(name.startswith(SCORE_PREFIX) and name != SCORE_PREFIX for name in extra))
