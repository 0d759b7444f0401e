"""`Interval`: a metric's estimate with its spread and a confidence interval, and the
interval across independent runs (seeds, folds) by Student's t."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

LEVEL = 0.95  # the confidence level every number fitclass shows is given at


@dataclass(frozen=True)
class Interval:
    """`estimate` with a `level` confidence interval [`low`, `high`], the standard deviation
    `std` of what it was estimated from (runs, or bootstrap replicates), the number `n` of
    those and the `method` that made the interval (`t` across runs, `bootstrap` over rows)."""

    estimate: float
    low: float
    high: float
    std: float
    n: int
    method: str
    level: float = LEVEL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Interval:
        return cls(**payload)

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, scale: float = 1.0, digits: int = 4) -> str:
        """`0.8123 [0.7990, 0.8251]` (times `scale`: 100 shows points)."""
        return (f"{self.estimate * scale:.{digits}f} "
                f"[{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]")


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of independent runs' scores with Student's t interval (n - 1 degrees of
    freedom). One run has no spread to measure: its interval is the single value and `std`
    is NaN, so a reader can tell "unknown" from "zero"."""
    if not values:
        raise ValueError("t_interval: no values")
    n, mean = len(values), math.fsum(values) / len(values)
    if n == 1:
        return Interval(mean, mean, mean, math.nan, 1, "t", level)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, std, n, "t", level)
