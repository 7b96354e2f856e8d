"""The statistics of an experiment, from counts or summary statistics (scipy.stats).

Rates (successes out of trials): a Wilson 95 % interval per variant, the lift against
control with a Wald interval on the difference, the two-proportion z-test (pooled) and
the chance to beat control under Beta(1 + successes, 1 + failures) posteriors.
Means (n, mean, variance): a t interval per variant, Welch's t-test and interval on the
difference, and the chance to beat control under the normal approximation.
Sample ratio mismatch: a chi-square test of exposures against the split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

CONFIDENCE = 0.95
# An SRM alarm is a broken pipeline, not a close call: the usual threshold is p < 0.001.
SRM_ALPHA = 0.001
# Above this many successes the exact Beta sum is replaced by its normal approximation.
_EXACT_BETA_MAX = 200_000


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    lift: float  # variant minus control (absolute: rate points or mean units)
    lift_interval: Interval
    p_value: float
    chance_to_beat: float


def wilson_interval(successes: int, trials: int) -> Interval:
    if trials == 0:
        return Interval(0.0, 1.0)
    ci = stats.binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def compare_rates(s_v: int, n_v: int, s_c: int, n_c: int) -> Comparison | None:
    """Variant against control; None when either has no trials."""
    if n_v == 0 or n_c == 0:
        return None
    p_v, p_c = s_v / n_v, s_c / n_c
    z_crit = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    se = math.sqrt(p_v * (1 - p_v) / n_v + p_c * (1 - p_c) / n_c)
    pooled = (s_v + s_c) / (n_v + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_v + 1 / n_c))
    p_value = 1.0 if se0 == 0 else float(2 * stats.norm.sf(abs(p_v - p_c) / se0))
    return Comparison(
        lift=p_v - p_c,
        lift_interval=Interval(p_v - p_c - z_crit * se, p_v - p_c + z_crit * se),
        p_value=p_value,
        chance_to_beat=chance_to_beat_rate(s_v, n_v, s_c, n_c),
    )


def chance_to_beat_rate(s_v: int, n_v: int, s_c: int, n_c: int) -> float:
    """P(rate_variant > rate_control) with uniform priors: Beta(1+s, 1+n-s) posteriors."""
    a_v, b_v, a_c, b_c = 1 + s_v, 1 + n_v - s_v, 1 + s_c, 1 + n_c - s_c
    if min(a_v, a_c) > _EXACT_BETA_MAX:
        mv, vv = stats.beta.stats(a_v, b_v, moments="mv")
        mc, vc = stats.beta.stats(a_c, b_c, moments="mv")
        return float(stats.norm.sf(0, loc=float(mv - mc), scale=math.sqrt(float(vv + vc))))
    # The exact sum (Evan Miller) over the smaller alpha; P(A > B) = 1 - P(B > A).
    if a_v <= a_c:
        return _beta_beats(a_v, b_v, a_c, b_c)
    return 1.0 - _beta_beats(a_c, b_c, a_v, b_v)


def _beta_beats(a_b: int, b_b: int, a_a: int, b_a: int) -> float:
    """P(X_B > X_A) for X_B ~ Beta(a_b, b_b), X_A ~ Beta(a_a, b_a), integer a_b."""
    i = np.arange(a_b, dtype=np.float64)
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(min(1.0, max(0.0, np.exp(special.logsumexp(terms)))))


@dataclass(frozen=True)
class Summary:
    """n observations with their mean and (sample) variance; several add up exactly."""

    n: int
    mean: float
    variance: float

    def __add__(self, other: Summary) -> Summary:
        n = self.n + other.n
        if n == 0:
            return Summary(0, 0.0, 0.0)
        mean = (self.n * self.mean + other.n * other.mean) / n
        m2 = (
            max(self.n - 1, 0) * self.variance
            + max(other.n - 1, 0) * other.variance
            + self.n * other.n / n * (self.mean - other.mean) ** 2
        )
        return Summary(n, mean, m2 / (n - 1) if n > 1 else 0.0)


def mean_interval(s: Summary) -> Interval:
    if s.n < 2:
        return Interval(-math.inf, math.inf)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, s.n - 1)) * math.sqrt(s.variance / s.n)
    return Interval(s.mean - half, s.mean + half)


def compare_means(v: Summary, c: Summary) -> Comparison | None:
    """Welch's t-test of variant against control; None when either has under two values."""
    if v.n < 2 or c.n < 2:
        return None
    diff = v.mean - c.mean
    se2 = v.variance / v.n + c.variance / c.n
    if se2 == 0:
        same = diff == 0
        return Comparison(
            diff, Interval(diff, diff), 1.0 if same else 0.0, 0.5 if same else float(diff > 0)
        )
    result = stats.ttest_ind_from_stats(
        v.mean, math.sqrt(v.variance), v.n, c.mean, math.sqrt(c.variance), c.n, equal_var=False
    )
    df = se2**2 / ((v.variance / v.n) ** 2 / (v.n - 1) + (c.variance / c.n) ** 2 / (c.n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(se2)
    return Comparison(
        lift=diff,
        lift_interval=Interval(diff - half, diff + half),
        p_value=float(result.pvalue),
        chance_to_beat=float(stats.norm.sf(0, loc=diff, scale=math.sqrt(se2))),
    )


@dataclass(frozen=True)
class SampleRatio:
    chi2: float
    p_value: float
    mismatch: bool
    expected: dict[str, float]


def sample_ratio(exposures: Mapping[str, int], split: Mapping[str, float]) -> SampleRatio | None:
    """Chi-square of exposures against the split (variants at 0 % left out); None without
    enough data (fewer than two variants with a share, or no exposures)."""
    names: Sequence[str] = [v for v, pct in split.items() if pct > 0]
    total = sum(exposures.get(v, 0) for v in names)
    if len(names) < 2 or total == 0:
        return None
    shares = sum(split[v] for v in names)
    expected = {v: total * split[v] / shares for v in names}
    observed = [exposures.get(v, 0) for v in names]
    result = stats.chisquare(observed, [expected[v] for v in names])
    p = float(result.pvalue)
    return SampleRatio(float(result.statistic), p, p < SRM_ALPHA, expected)
