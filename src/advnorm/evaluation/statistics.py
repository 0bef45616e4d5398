"""Is one method better than another? Paired differences over seeds x test subjects, with a 95% interval.

Two methods are compared on the same test subjects with the same seeds, so the comparison is
paired: for every (seed, test subject) both have a mean Dice over CSF/GM/WM, and the question is
whether their differences average away from zero. The interval is Student's t over those n pairs
(n - 1 degrees of freedom). The pairs are not fully independent (each subject appears once per
seed), so the interval is somewhat narrow for few subjects; the report says how many seeds and
subjects it rests on, and a difference is called significant only when the interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the pairs both have, with its 95% confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def words(self, a: str, b: str) -> str:
        """``"a scores 0.031 higher than b (95% CI 0.012 to 0.050, 9 pairs): significant"``."""
        if self.n == 0:
            return f"{a} and {b} share no test subject and seed"
        direction = "higher" if self.mean >= 0 else "lower"
        ci = f"95% CI {self.low:+.3f} to {self.high:+.3f}, {self.n} pairs" if self.n >= 2 else f"{self.n} pair, no CI"
        verdict = "significant" if self.significant else "not significant"
        return f"{a} scores {abs(self.mean):.3f} {direction} than {b} ({ci}): {verdict}"


def paired_difference(a: Mapping[tuple, float], b: Mapping[tuple, float], confidence: float = 0.95) -> PairedDifference:
    """``a`` and ``b`` map the same kind of key (e.g. (seed, domain, case)) to a score; non-finite ones are dropped."""
    keys = sorted(k for k in set(a) & set(b) if math.isfinite(a[k]) and math.isfinite(b[k]))
    d = np.asarray([a[k] - b[k] for k in keys], dtype=float)
    if d.size == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    if d.size < 2:
        return PairedDifference(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return PairedDifference(mean, mean - half, mean + half, int(d.size))


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` sd for a single value) of the finite values."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan
