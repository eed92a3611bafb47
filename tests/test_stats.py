"""attnfd.analysis.stats against hand computations, with scipy.stats as the reference for each
test statistic and interval, and the paired test's power against a published value and a simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from attnfd.analysis import stats

A = {0: 71.0, 1: 69.5, 2: 74.0, 3: 70.2, 4: 72.9}
B = {0: 68.0, 1: 68.1, 2: 70.5, 3: 69.9, 4: 70.0}


def test_paired_difference_interval_and_p_against_scipy():
    c = stats.paired(A, B)
    d = [A[s] - B[s] for s in A]
    assert c.test == "paired t" and c.n == 5 and c.seeds == (0, 1, 2, 3, 4)
    assert c.diff == pytest.approx(sum(d) / 5)
    assert c.sd == pytest.approx(math.sqrt(sum((x - c.diff) ** 2 for x in d) / 4))
    reference = scipy_stats.ttest_rel(list(A.values()), list(B.values()))
    interval = reference.confidence_interval(0.95)
    assert c.p == pytest.approx(reference.pvalue, rel=1e-12)
    assert (c.low, c.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    # by hand: the t quantile times the standard error of the mean difference
    half = scipy_stats.t.ppf(0.975, 4) * c.sd / math.sqrt(5)
    assert c.high - c.diff == pytest.approx(half)
    assert c.p_welch == pytest.approx(scipy_stats.ttest_ind(list(A.values()), list(B.values()), equal_var=False).pvalue)


def test_pairing_uses_only_the_seeds_both_rows_have():
    c = stats.paired({**A, 9: 100.0}, {k: v for k, v in B.items() if k != 2})
    assert c.seeds == (0, 1, 3, 4) and c.n == 4
    assert c.diff == pytest.approx(np.mean([A[s] - B[s] for s in (0, 1, 3, 4)]))
    # fewer than two shared seeds: Welch over every seed of each row
    unpaired = stats.compare({0: 1.0, 1: 2.0, 2: 4.0}, {5: 3.0, 6: 5.0, 7: 8.0})
    reference = scipy_stats.ttest_ind([1, 2, 4], [3, 5, 8], equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert unpaired.test == "Welch" and unpaired.p == pytest.approx(reference.pvalue, rel=1e-12)
    assert (unpaired.low, unpaired.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert stats.compare(A, B).test == "paired t"


def test_no_spread_means_no_test_not_p_zero():
    c = stats.paired({0: 55.0, 1: 55.0, 2: 55.0}, {0: 50.0, 1: 50.0, 2: 50.0})
    assert c.diff == 5 and math.isnan(c.p) and math.isnan(c.low)
    # the permutation test still has its answer: every difference positive, the floor 2 / 2**3
    assert c.p_exact == pytest.approx(0.25)
    assert math.isnan(stats.paired({0: 1.0}, {0: 2.0}).p)


def sign_flip_by_hand(d: list[float]) -> float:
    """Every assignment of signs: the share whose |mean| reaches the observed |mean|."""
    observed = abs(sum(d)) / len(d)
    hits = [abs(sum(s * x for s, x in zip(signs, d))) / len(d) >= observed - 1e-12
            for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("d", [[1.0, 2.0, 3.0], [1.0, -2.0, 3.0, 0.5], [0.3, 0.1, -0.2, 0.4, 0.6, 0.2], [0.0, 1.0, 2.0]])
def test_exact_permutation_p_against_enumeration(d):
    assert stats.sign_flip_p(d) == pytest.approx(sign_flip_by_hand(d), rel=1e-12)


def test_exact_p_floor_is_two_over_two_to_the_n():
    for n in range(2, 8):
        assert stats.sign_flip_p([1.0 + k for k in range(n)]) == pytest.approx(2 / 2**n)
    # Wilcoxon's exact signed-rank test shares the floor (the README's reason why neither reaches 0.05 below 6 pairs)
    assert scipy_stats.wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0], method="exact").pvalue == pytest.approx(2 / 2**5)


def test_holm_and_benjamini_hochberg_against_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert stats.holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH by hand: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert stats.benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert math.isnan(stats.holm(p)[4]) and math.isnan(stats.benjamini_hochberg(p)[4])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.correct(p, "bh") == stats.benjamini_hochberg(p)
    with pytest.raises(ValueError, match="unknown correction"):
        stats.correct(p, "bonferoni")


def test_pooled_sd_by_hand():
    sd, df = stats.pooled_sd([[1.0, 3.0], [2.0, 2.0, 5.0], [7.0]])
    # squares about each group's mean: 2 and 6; degrees of freedom 1 + 2
    assert df == 3 and sd == pytest.approx(math.sqrt(8 / 3))


def test_paired_power_against_a_published_value():
    # R's power.t.test(n = 20, delta = 1) (two-sample, sd 1) prints power = 0.8689528: the upper tail of
    # a noncentral t with 38 df and noncentrality sqrt(10). A paired test with 39 pairs has 38 df, and
    # a difference of sqrt(10 / 39) sd gives it that noncentrality; the lower tail adds about 2e-7
    assert stats.paired_power(math.sqrt(10 / 39), 1.0, 39) == pytest.approx(0.8689528, abs=1e-6)


def test_paired_power_against_a_simulation_with_scipy():
    rng = np.random.default_rng(7)
    n, diff, sd, runs = 6, 1.2, 1.0, 20_000
    a = rng.normal(diff, sd, size=(runs, n))
    rejected = scipy_stats.ttest_rel(a, np.zeros_like(a), axis=1).pvalue < 0.05
    assert stats.paired_power(diff, sd, n) == pytest.approx(rejected.mean(), abs=0.012)
    # a normal approximation would claim far more power at this sample size
    normal = scipy_stats.norm.sf(1.96 - diff / (sd / math.sqrt(n)))
    assert normal - stats.paired_power(diff, sd, n) > 0.05


def test_detectable_difference_and_seeds_needed_invert_the_power():
    sd = 1.7
    for n in (2, 3, 5, 10):
        found = stats.detectable_difference(sd, n)
        assert stats.paired_power(found, sd, n) == pytest.approx(0.8, abs=1e-6)
    needed = stats.seeds_needed(1.0, sd)
    assert stats.paired_power(1.0, sd, int(needed)) >= 0.8 > stats.paired_power(1.0, sd, int(needed) - 1)
    # a stricter alpha needs more seeds; a larger difference fewer
    assert stats.seeds_needed(1.0, sd, alpha=0.05 / 7) > needed > stats.seeds_needed(3.0, sd)
    assert math.isnan(stats.seeds_needed(1.0, 0.0)) and math.isnan(stats.detectable_difference(1.0, 1))
