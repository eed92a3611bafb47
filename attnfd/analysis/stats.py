"""Mean and spread over seeds, and whether a difference between two rows is more than noise.

The spread is the sample standard deviation (ddof=1); with one seed there is none. The test
is Welch's t-test (unequal variances, two-sided) on the per-seed values: it needs two seeds
on each side, and when both sides have no spread at all (e.g. a deterministic run repeated)
there is nothing to test, so the p-value is missing rather than 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass
class Summary:
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else math.nan


def summarise(values) -> Summary:
    """Keep the finite values only: a missing result is missing, never 0."""
    kept = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            kept.append(v)
    return Summary(kept)


def welch_p(a: Summary, b: Summary) -> float:
    """Two-sided p-value of Welch's t-test between the seeds of two rows (NaN when untestable)."""
    if a.n < 2 or b.n < 2 or (np.var(a.values) == 0 and np.var(b.values) == 0):
        return math.nan
    return float(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"
