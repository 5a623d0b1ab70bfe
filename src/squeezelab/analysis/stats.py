"""Statistics for the report, computed with scipy: descriptive, correlation, paired tests, Holm.

The study reported a Pearson r and repeated-measures t-tests; we add mean, standard deviation
and a 95% t confidence interval over seeds for every compared cell, Cohen's d_z as effect
size, a rank test beside each t-test (Wilcoxon signed-rank for paired samples, Mann-Whitney U
for Welch's), and Holm's correction across the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from ..declared import ALPHA as ALPHA  # the default level, declared with the claims


@dataclass(frozen=True)
class Summary:
    """Mean, spread and 95% confidence interval of n values."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    def within(self, low: float, high: float) -> Summary:
        """The interval cut to the values the quantity can take (an accuracy: 0 to 100).

        A t interval over a few skewed seeds (two near 80%, one stuck at 50%) can run past
        100%; cutting it at the bounds keeps its coverage, since the true mean lies inside them.
        """
        if self.n < 2:
            return self
        return replace(self, ci_low=max(self.ci_low, low), ci_high=min(self.ci_high, high))

    def runs_past(self, low: float, high: float) -> bool:
        """Whether the t interval reaches outside ``[low, high]``."""
        return self.n > 1 and (self.ci_low < low or self.ci_high > high)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Return mean, sample SD and the t-based confidence interval of ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return Summary(int(x.size), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Correlation:
    n: int
    r: float
    p: float


def pearson(x: Sequence[float], y: Sequence[float], alternative: str = "two-sided") -> Correlation:
    """Pearson's r between ``x`` and ``y`` with its p-value (two-sided unless asked)."""
    if len(x) != len(y) or len(x) < 3:
        raise ValueError("pearson needs two equal-length samples of at least 3 values")
    res = stats.pearsonr(x, y, alternative=alternative)
    return Correlation(len(x), float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of treatment vs control: t-test, Wilcoxon, effect size."""

    n: int
    mean_diff: float
    diff_ci_low: float
    diff_ci_high: float
    t: float
    p: float
    wilcoxon_w: float
    wilcoxon_p: float
    cohen_dz: float
    alternative: str = "two-sided"


def paired_test(
    treatment: Sequence[float], control: Sequence[float], alternative: str = "two-sided"
) -> PairedTest:
    """Compare paired samples: repeated-measures t-test plus Wilcoxon signed-rank test."""
    a, b = np.asarray(treatment, float), np.asarray(control, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("paired_test needs two equal-length samples of at least 2 pairs")
    d = a - b
    ci = summarize(d)
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0:  # identical differences: scipy's t is undefined; the sign decides
        t = math.copysign(math.inf, mean) if mean else 0.0
        favoured = {"two-sided": mean != 0, "greater": mean > 0, "less": mean < 0}[alternative]
        p = 0.0 if favoured else 1.0
    else:
        res = stats.ttest_rel(a, b, alternative=alternative)
        t, p = float(res.statistic), float(res.pvalue)
    if np.any(d != 0):
        w = stats.wilcoxon(a, b, alternative=alternative, zero_method="wilcox")
        wilcoxon_w, wilcoxon_p = float(w.statistic), float(w.pvalue)
    else:
        wilcoxon_w, wilcoxon_p = 0.0, 1.0
    dz = mean / sd if sd > 0 else (math.copysign(math.inf, mean) if mean else 0.0)
    return PairedTest(
        int(a.size),
        float(d.mean()),
        ci.ci_low,
        ci.ci_high,
        t,
        p,
        wilcoxon_w,
        wilcoxon_p,
        dz,
        alternative,
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, float)
    order = np.argsort(p)
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class WelchTest:
    """Welch's unequal-variance t-test of ``a - b`` against ``-margin``, with its CI."""

    n_a: int
    n_b: int
    mean_diff: float  # raw difference mean(a) - mean(b), not shifted by the margin
    ci_low: float  # one-sided tests leave the other bound infinite
    ci_high: float
    t: float
    df: float
    p: float
    alternative: str = "two-sided"
    # Mann-Whitney U of a + margin vs b: the rank test beside the t, as Wilcoxon is beside a
    # paired t. It does not assume a normal spread (seeds at 85 / 85 / 85 against 81 / 80 /
    # 69 / 50: every treatment seed above every control seed is p = 1/35, whatever the 50).
    mann_whitney_u: float = math.nan
    mann_whitney_p: float = math.nan


def welch_test(
    a: Sequence[float],
    b: Sequence[float],
    alternative: str = "two-sided",
    margin: float = 0.0,
    confidence: float = 0.95,
) -> WelchTest:
    """Welch's t-test of H0: mean(a) - mean(b) = -margin (non-inferiority when margin > 0).

    The confidence interval matches the test: one-sided (a lower bound for ``greater``, an
    upper bound for ``less``) or two-sided.
    """
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.size < 2 or y.size < 2:
        raise ValueError("welch_test needs at least 2 values per group")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0:
        raise ValueError("welch_test: both groups are constant")
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    diff = float(x.mean() - y.mean())
    res = stats.ttest_ind(x + margin, y, equal_var=False, alternative=alternative)
    if alternative == "two-sided":
        q = float(stats.t.ppf(0.5 + confidence / 2, df))
        low, high = diff - q * se, diff + q * se
    else:
        q = float(stats.t.ppf(confidence, df))
        low, high = (
            (diff - q * se, math.inf) if alternative == "greater" else (-math.inf, diff + q * se)
        )
    u = stats.mannwhitneyu(x + margin, y, alternative=alternative)
    return WelchTest(
        int(x.size),
        int(y.size),
        diff,
        low,
        high,
        float(res.statistic),
        df,
        float(res.pvalue),
        alternative,
        float(u.statistic),
        float(u.pvalue),
    )


def pooled_variance(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """The variance pooled within ``groups`` (each group's squared deviations from its own
    mean, over their degrees of freedom) and its df; None when no group has two values."""
    arrays = [np.asarray(g, float) for g in groups if len(g) > 1]
    df = sum(a.size - 1 for a in arrays)
    if df == 0:
        return None, 0
    return sum(float(((a - a.mean()) ** 2).sum()) for a in arrays) / df, df


def least_significant_difference(
    groups: Sequence[Sequence[float]], n_a: int, n_b: int, confidence: float = 0.95
) -> float | None:
    """Fisher's least significant difference between a mean of ``n_a`` and one of ``n_b``.

    The variance is pooled within ``groups`` (every cell of one comparison, seeds within a
    cell), so cells of two seeds each still give an estimate with several degrees of freedom.
    None when no group has two values (nothing measures the seed-to-seed spread).
    """
    pooled, df = pooled_variance(groups)
    if pooled is None:
        return None
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return q * math.sqrt(pooled * (1 / n_a + 1 / n_b))


def correlation_n_needed(
    r: float, alpha: float = ALPHA, power: float = 0.8, alternative: str = "greater"
) -> int | None:
    """Pairs needed to detect correlation ``r`` (Fisher z approximation)."""
    if not math.isfinite(r) or r == 0 or abs(r) >= 1:
        return None
    za = stats.norm.ppf(1 - (alpha / 2 if alternative == "two-sided" else alpha))
    zb = stats.norm.ppf(power)
    return math.ceil(((za + zb) / math.atanh(abs(r))) ** 2 + 3)


def correlation_power(
    r: float, n: int, alpha: float = ALPHA, alternative: str = "greater"
) -> float:
    """Power to detect correlation ``r`` with n pairs (Fisher z approximation)."""
    if n < 4 or not math.isfinite(r):
        return math.nan
    z = math.atanh(min(abs(r), 0.999999)) * math.sqrt(n - 3)
    za = stats.norm.ppf(1 - (alpha / 2 if alternative == "two-sided" else alpha))
    return float(stats.norm.sf(za - z))
