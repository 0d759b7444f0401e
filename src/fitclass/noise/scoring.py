"""Suspect scores on arrays: confident learning (cleanlab) on out-of-fold probabilities,
training-dynamics margins, and duplicates that disagree on their label."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from cleanlab.count import estimate_joint
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from fitclass.target_kinds import TargetKind


def confident_learning(targets: np.ndarray, kind: TargetKind,
                       probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 - self-confidence label quality, cleanlab's `find_label_issues` mask), with
    cleanlab's multi-label functions for a multi-label kind."""
    if kind.multilabel:
        from cleanlab.multilabel_classification.filter import (
            find_label_issues as multilabel_issues,
        )

        labels = [list(np.flatnonzero(row)) for row in targets]
        mask = multilabel_issues(labels, probs)
        return label_score(targets, kind, probs), np.asarray(mask)
    mask = find_label_issues(targets, probs, filter_by="prune_by_noise_rate")
    return label_score(targets, kind, probs), np.asarray(mask)


def label_score(targets: np.ndarray, kind: TargetKind, probs: np.ndarray) -> np.ndarray:
    """1 - cleanlab's self-confidence label quality (1 - the probability of the given
    label; multi-label: cleanlab's multi-label quality), in [0, 1]: above 0.5 the
    probabilities favour another label."""
    if kind.multilabel:
        from cleanlab.multilabel_classification.rank import (
            get_label_quality_scores as multilabel_quality,
        )

        labels = [list(np.flatnonzero(row)) for row in targets]
        return 1.0 - np.asarray(multilabel_quality(labels, probs))
    return 1.0 - get_label_quality_scores(targets, probs, method="self_confidence")


def margin_score(margins: np.ndarray) -> np.ndarray:
    """Area-under-margin to [0, 1]: a negative mean margin (another class wins) scores > 0.5."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(np.nan_to_num(margins, nan=0.0)))


def conflicting_duplicates(texts: Sequence[str], labels: Sequence[str]) -> dict[int, str]:
    """Rows whose normalised text also occurs with another label -> the group's most common
    label (the suggestion). Rows already holding the most common label are not returned."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row, text in enumerate(texts):
        groups[re.sub(r"\s+", " ", text).strip().lower()].append(row)
    suspects: dict[int, str] = {}
    for rows in groups.values():
        votes = Counter(labels[r] for r in rows)
        if len(votes) > 1:
            majority = votes.most_common(1)[0][0]
            suspects.update({r: majority for r in rows if labels[r] != majority})
    return suspects


def noise_summary(targets: np.ndarray, kind: TargetKind, probs: np.ndarray,
                  class_names: Sequence[str]) -> dict[str, object]:
    """Estimated noise rate per given class and the most confused class pairs, from
    cleanlab's estimate of the joint distribution of given and true labels."""
    if kind.multilabel:  # the joint of given and true classes is a single-label notion
        return {"note": "per-class noise rates are estimated for multi-class tasks only"}
    joint = estimate_joint(targets, probs)
    rows = joint.sum(axis=1)
    rates = {name: float(1 - joint[i, i] / rows[i]) if rows[i] > 0 else None
             for i, name in enumerate(class_names)}
    pairs = [(float(joint[i, j]), class_names[i], class_names[j])
             for i in range(len(class_names)) for j in range(len(class_names)) if i != j]
    pairs.sort(reverse=True)
    return {
        "estimated_noise_rate": rates,
        "estimated_noisy_share": float(1 - np.trace(joint)),
        "most_confused": [{"given": g, "likely_true": t, "share_of_rows": share}
                          for share, g, t in pairs[:10] if share > 0],
    }
