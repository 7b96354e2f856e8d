"""The statistics against scipy's own tests and integrals on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from registry.experiments import stats


def test_two_proportion_z_test_matches_chi_square_without_correction() -> None:
    s_v, n_v, s_c, n_c = 130, 1000, 100, 1000
    cmp = stats.compare_rates(s_v, n_v, s_c, n_c)
    assert cmp is not None
    table = np.array([[s_v, n_v - s_v], [s_c, n_c - s_c]])
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert cmp.p_value == pytest.approx(p, rel=1e-9)
    assert cmp.lift == pytest.approx(0.03)
    se = math.sqrt(0.13 * 0.87 / 1000 + 0.1 * 0.9 / 1000)
    assert cmp.lift_interval.low == pytest.approx(0.03 - 1.959963984540054 * se)


def test_wilson_interval_matches_scipy() -> None:
    ci = stats.wilson_interval(130, 1000)
    ref = sps.binomtest(130, 1000).proportion_ci(0.95, method="wilson")
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))
    assert ci.low < 0.13 < ci.high


@pytest.mark.parametrize(
    ("s_v", "n_v", "s_c", "n_c"), [(13, 100, 10, 100), (5, 20, 9, 20), (300, 1000, 280, 1000)]
)
def test_chance_to_beat_control_matches_the_beta_integral(
    s_v: int, n_v: int, s_c: int, n_c: int
) -> None:
    bv, bc = sps.beta(1 + s_v, 1 + n_v - s_v), sps.beta(1 + s_c, 1 + n_c - s_c)
    expected, _ = integrate.quad(lambda x: bv.pdf(x) * bc.cdf(x), 0, 1, limit=200)
    got = stats.chance_to_beat_rate(s_v, n_v, s_c, n_c)
    assert got == pytest.approx(expected, abs=1e-6)
    # Symmetric: the two chances add up to one.
    assert got + stats.chance_to_beat_rate(s_c, n_c, s_v, n_v) == pytest.approx(1.0)


def test_chance_to_beat_on_huge_counts_agrees_with_the_exact_sum() -> None:
    exact = stats._beta_beats(1 + 210_500, 1 + 789_500, 1 + 210_000, 1 + 790_000)
    approx = stats.chance_to_beat_rate(210_500, 1_000_000, 210_000, 1_000_000)
    assert approx == pytest.approx(exact, abs=2e-3)


def test_welch_t_test_matches_scipy_on_raw_data() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(10.4, 2.0, 400), rng.normal(10.0, 3.0, 350)
    va = stats.Summary(len(a), float(a.mean()), float(a.var(ddof=1)))
    vb = stats.Summary(len(b), float(b.mean()), float(b.var(ddof=1)))
    cmp = stats.compare_means(va, vb)
    assert cmp is not None
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (cmp.lift_interval.low, cmp.lift_interval.high) == pytest.approx((ci.low, ci.high))


def test_summaries_add_up_exactly() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(3, 1, 1000)
    parts = [x[:100], x[100:101], x[101:700], x[700:]]
    total = stats.Summary(0, 0.0, 0.0)
    for p in parts:
        total = total + stats.Summary(
            len(p), float(p.mean()), float(p.var(ddof=1)) if len(p) > 1 else 0.0
        )
    assert total.n == 1000
    assert total.mean == pytest.approx(x.mean())
    assert total.variance == pytest.approx(x.var(ddof=1))


def test_sample_ratio_mismatch_is_detected_and_a_fair_split_passes() -> None:
    split = {"control": 80.0, "warm": 10.0, "formal": 10.0}
    fair = stats.sample_ratio({"control": 8010, "warm": 1000, "formal": 990}, split)
    assert fair is not None and not fair.mismatch
    ref = sps.chisquare([8010, 1000, 990], [8000, 1000, 1000])
    assert fair.p_value == pytest.approx(ref.pvalue)
    # 2 % of traffic lost from one arm: a broken pipeline, flagged.
    broken = stats.sample_ratio({"control": 8000, "warm": 1000, "formal": 800}, split)
    assert broken is not None and broken.mismatch and broken.p_value < 0.001
    assert stats.sample_ratio({}, split) is None
