"""Shifted validation: the validation file's label distribution against the table's, as a
total variation distance (half the sum of absolute share differences: the share of rows
that would have to change class for the two to match)."""

from __future__ import annotations

from fitclass.diagnosis.findings import Finding

#: Total variation distance at or above which validation counts as shifted.
SHIFTED = 0.10
#: Target share given to a class validation lacks: a share of 0 would forbid predicting it.
FLOOR = 0.001


def shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.items()}


def total_variation(first: dict[str, float], second: dict[str, float]) -> float:
    names = set(first) | set(second)
    return 0.5 * sum(abs(first.get(n, 0.0) - second.get(n, 0.0)) for n in names)


def check_shift(train: dict[str, int], valid: dict[str, int], valid_source: str,
                multilabel: bool) -> Finding | None:
    """A finding when validation's label mix differs from the table's; labels validation
    has and the table lacks are an error (the model can never predict them)."""
    unseen = sorted(name for name, n in valid.items() if n and not train.get(name))
    p, q = shares(train), shares(valid)
    distance = total_variation(p, q)
    measured = {"file": valid_source, "total_variation": round(distance, 4),
                "train_shares": {k: round(v, 4) for k, v in p.items()},
                "valid_shares": {k: round(v, 4) for k, v in q.items()}, "unseen": unseen}
    if unseen:
        return Finding("unseen_labels", "error",
                       f"{len(unseen)} validation labels never occur in the table: "
                       f"{', '.join(unseen[:8])}", measured,
                       "add training rows for them, or drop these validation rows",
                       "a class with no training row can never be predicted; `fitclass "
                       "train` stops on this")
    if distance < SHIFTED:
        return None
    moved = sorted(p, key=lambda n: -abs(p.get(n, 0.0) - q.get(n, 0.0)))[:3]
    title = (f"shifted validation: label distributions differ by {distance:.0%} (total "
             f"variation); " + ", ".join(f"{n} {p.get(n, 0):.0%} -> {q.get(n, 0):.0%}"
                                         for n in moved))
    why = ("prior correction re-weights probabilities from the training mix to the one "
           "deployment sees (Saerens et al. 2002); on movie4, correcting to a mix the test "
           "did not have (uniform) lost 4 macro-F1 points, so only when validation's mix "
           "is the deployment's (docs/benchmarks.md, issue 3)")
    if multilabel:
        return Finding("shifted_validation", "warning", title, measured,
                       "check which mix deployment sees: thresholds fitted on this "
                       "validation file follow its mix", why, {}, "shifted_validation")
    return Finding("shifted_validation", "warning", title, measured,
                   "if the validation mix is what deployment sees, correct the priors to it; "
                   "otherwise make validation a random sample of the same source as train",
                   why, {"decision.prior_correction": {k: max(FLOOR, round(q.get(k, 0.0), 4))
                                                        for k in p}},
                   "shifted_validation")
