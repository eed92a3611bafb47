"""Mean and spread over seeds, differences between rows with their 95% intervals and p-values,
corrections over a table block, and the power of the paired test.

Pure functions over numbers; each test statistic is scipy's (checked in tests/test_stats.py).

- Spread is the sample standard deviation (ddof=1); with one seed there is none.
- Two rows whose completed trials share seeds are compared *paired*: a seed fixes the
  student's initialisation, its batches and its dropout in every cell of a study (README,
  "What a seed fixes"), so the per-seed differences remove the seed-to-seed noise both rows
  share. The paired t-test (``scipy.stats.ttest_rel``) gives the p-value and the t interval
  the 95% CI of the mean difference. Beside it, the exact sign-flip permutation test of the
  same mean difference (``scipy.stats.permutation_test``, each difference's sign flipped):
  it needs no normality, keeps the units of the difference shown, and treats a zero
  difference (two deterministic runs that agree) as what it is, where Wilcoxon's signed-rank
  test has to drop or split zeros and tests ranks, not the mean. Both exact tests share one
  limit: with n pairs no p can be below 2 / 2**n (0.25 with 3 seeds, 0.0625 with 5), so at
  fewer than 6 pairs the exact p can never reach 0.05, whatever the data.
- Rows without two shared seeds are compared unpaired: Welch's t-test (unequal variances)
  and the Welch-Satterthwaite interval.
- A difference with no spread at all (every paired difference equal, or both rows constant)
  has nothing to test: its p-value and interval are missing, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
# sign flips enumerated exactly up to this many pairs (2**16 of them); beyond, a seeded sample
EXACT_PAIRS = 16
MONTE_CARLO_FLIPS = 99_999
PAIRED, WELCH = "paired t", "Welch"
CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


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


def _finite_values(values) -> list[float]:
    kept = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            kept.append(v)
    return kept


def summarise(values) -> Summary:
    """Keep the finite values only: a missing result is missing, never 0."""
    return Summary(_finite_values(values))


@dataclass(frozen=True)
class Comparison:
    """Row a minus row b. ``test`` is ``paired t`` (``n`` pairs) or ``Welch`` (``n`` = the
    smaller side); ``p_exact`` is the sign-flip permutation p of a paired comparison and
    ``p_welch`` Welch's p on every seed of both rows, for reading the two side by side."""

    test: str
    n: int
    diff: float
    low: float = math.nan
    high: float = math.nan
    p: float = math.nan
    p_exact: float = math.nan
    p_welch: float = math.nan
    sd: float = math.nan  # of the paired differences
    seeds: tuple = ()  # the seeds paired

    @property
    def paired(self) -> bool:
        return self.test == PAIRED


def welch_p(a: Summary, b: Summary) -> float:
    """Two-sided p-value of Welch's t-test between the seeds of two rows (NaN when untestable)."""
    if a.n < 2 or b.n < 2 or (np.var(a.values) == 0 and np.var(b.values) == 0):
        return math.nan
    return float(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)


def welch(a, b) -> Comparison:
    """Unpaired: the difference of the means, Welch's p and the Welch-Satterthwaite 95% CI."""
    a, b = summarise(a), summarise(b)
    diff = a.mean - b.mean
    p = welch_p(a, b)
    if not math.isfinite(p):
        return Comparison(WELCH, min(a.n, b.n), diff, p_welch=p)
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(va + vb)
    return Comparison(WELCH, min(a.n, b.n), diff, diff - half, diff + half, p, p_welch=p)


def sign_flip_p(differences) -> float:
    """Two-sided p of the exact permutation test of a mean paired difference: every
    assignment of signs to the differences (a seeded sample of them above EXACT_PAIRS pairs)."""
    d = np.asarray(_finite_values(differences))
    if len(d) < 2:
        return math.nan
    flips = math.inf if len(d) <= EXACT_PAIRS else MONTE_CARLO_FLIPS
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="two-sided",
                                    n_resamples=flips, rng=np.random.default_rng(0))
    return float(result.pvalue)


def paired(a_by_seed: dict, b_by_seed: dict) -> Comparison:
    """Paired over the seeds both rows have: mean difference, t interval, paired t p, exact p."""
    seeds = sorted(set(a_by_seed) & set(b_by_seed), key=str)
    d = np.array([a_by_seed[s] - b_by_seed[s] for s in seeds], dtype=float)
    p_welch = welch_p(summarise(a_by_seed.values()), summarise(b_by_seed.values()))
    n = len(d)
    diff = float(d.mean()) if n else math.nan
    if n < 2:
        return Comparison(PAIRED, n, diff, p_welch=p_welch, seeds=tuple(seeds))
    sd = float(d.std(ddof=1))
    exact = sign_flip_p(d)
    if sd == 0:
        return Comparison(PAIRED, n, diff, p_exact=exact, p_welch=p_welch, sd=sd, seeds=tuple(seeds))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_rel([a_by_seed[s] for s in seeds], [b_by_seed[s] for s in seeds]).pvalue)
    return Comparison(PAIRED, n, diff, diff - half, diff + half, p, exact, p_welch, sd, tuple(seeds))


def compare(a_by_seed: dict, b_by_seed: dict) -> Comparison:
    """Paired when the rows share two seeds or more, else Welch over each row's seeds."""
    shared = set(a_by_seed) & set(b_by_seed)
    if len(shared) >= 2:
        return paired(a_by_seed, b_by_seed)
    return welch(list(a_by_seed.values()), list(b_by_seed.values()))


def holm(p_values) -> list[float]:
    """Holm's step-down correction (family-wise error). Missing p-values stay missing and are
    not counted in the family."""
    p = [float(v) if v is not None else math.nan for v in p_values]
    tested = sorted((v, i) for i, v in enumerate(p) if math.isfinite(v))
    m = len(tested)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, (value, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * value))
        out[i] = running
    return out


def benjamini_hochberg(p_values) -> list[float]:
    """Benjamini-Hochberg's step-up correction (false discovery rate); missing stays missing."""
    p = [float(v) if v is not None else math.nan for v in p_values]
    tested = sorted((v, i) for i, v in enumerate(p) if math.isfinite(v))
    m = len(tested)
    out = [math.nan] * len(p)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        value, i = tested[rank]
        running = min(running, m * value / (rank + 1))
        out[i] = running
    return out


def correct(p_values, method: str = "holm") -> list[float]:
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    return holm(p_values) if method == "holm" else benjamini_hochberg(p_values)


def pooled_sd(groups) -> tuple[float, int]:
    """The pooled sample sd of several groups (each about its own mean) and its degrees of freedom."""
    squares, df = 0.0, 0
    for group in groups:
        values = _finite_values(group)
        if len(values) >= 2:
            squares += float(np.sum((np.asarray(values) - np.mean(values)) ** 2))
            df += len(values) - 1
    return (math.sqrt(squares / df), df) if df else (math.nan, 0)


def paired_power(diff: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs to detect a true mean difference
    ``diff`` when the differences have standard deviation ``sd``: both tails of the
    noncentral t (df n - 1, noncentrality diff / (sd / sqrt(n))) beyond the critical t."""
    if n < 2 or not (sd > 0) or not math.isfinite(diff):
        return math.nan
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(diff) / (sd / math.sqrt(n))
    # the lower tail as the upper tail of -T: scipy's cdf far out in that tail returns NaN, its sf 0
    return float(stats.nct.sf(critical, df, shift) + stats.nct.sf(critical, df, -shift))


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference the paired t-test with ``n`` pairs detects with the
    given power (solved on the noncentral t, not a normal approximation)."""
    if n < 2 or not (sd > 0):
        return math.nan
    high = sd
    while paired_power(high, sd, n, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 0.0, high, xtol=1e-10 * sd))


def seeds_needed(diff: float, sd: float, alpha: float = ALPHA, power: float = POWER, most: int = 100_000) -> float:
    """The fewest pairs (seeds) with which the paired t-test detects ``diff`` with the given
    power; NaN when it cannot be said (no spread measured) or more than ``most`` would be needed."""
    if not (sd > 0) or not (abs(diff) > 0):
        return math.nan

    def enough(n: int) -> bool:
        return paired_power(diff, sd, n, alpha) >= power

    if enough(2):
        return 2.0
    # power grows with n: double to bracket the answer, then halve the bracket
    low, high = 2, 4
    while not enough(high):
        if high > most:
            return math.nan
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return float(high) if high <= most else math.nan


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def format_number_p(p: float) -> str:
    """A p-value in a column of its own: ``0.012``, ``<0.001``, or empty when there is none."""
    if not math.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"
