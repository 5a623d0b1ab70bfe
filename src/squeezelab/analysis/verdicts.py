"""Three verdicts from intervals: supported, contradicted or inconclusive.

Every test a claim can run reduces to a *pivot*: an estimate, its standard error and the
distribution of ``(estimate - true effect) / se`` (Student's t with the test's degrees of
freedom, or the normal on Fisher's z for a correlation). The p-value, both confidence bounds
and the verdict are read from that one pivot, so they cannot disagree.

Each bound has its level from a Holm step (:func:`holm_levels`): a family of m claims is
tested at alpha / m, alpha / (m - 1), ... in order of p, and once a step fails, every later
claim is read at the failed step's level, so a bound that clears its null at its level is the
same event as Holm's rejection. Holm runs twice per family: over the support p-values (the
bound in the claimed direction) and over the contradiction p-values (:func:`contradiction_p`,
the other bound), so both kinds of error are held family-wise.

For a claim in the direction "greater" (its effect positive; "less" mirrors it), with ``low``
at the support level and ``high`` at the contradiction level (one interval, both shown):

- **supported**: ``low`` clears the null (0; ``-margin`` for non-inferiority);
- **contradicted**: ``high`` falls below the smallest effect of interest (an equivalence, or
  non-superiority, test at the same level): the claimed effect is absent, or reversed when
  ``high`` is below 0. Without a declared ``min_effect`` only a reversal contradicts. A
  non-inferiority claim is contradicted when ``high`` falls below ``-margin``.
- **inconclusive**: neither.

A two-sided claim's interval is the two-sided (1 - a) one; it is supported when the interval
excludes 0 and contradicted when it lies inside ``(-min_effect, +min_effect)``. Under a true
effect of 0 a claim is wrongly supported with probability at most a; under a true effect of
exactly ``min_effect`` it is wrongly contradicted with probability at most a. The benchmark
``benchmarks/verdict_calibration.py`` measures both by simulation.

The functions take numpy arrays as well as floats, so the benchmark runs this very code over
thousands of simulated studies at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
# The direction of an equivalence claim ("ours matches a reference within +-margin"): its
# support is TOST's (both bounds inside the margin), its contradiction a bound beyond it.
EQUIVALENCE = "equivalence"


@dataclass(frozen=True)
class Pivot:
    """An estimate, its standard error, and the distribution its standardized error follows.

    ``df`` is Student's t degrees of freedom (``None``: the normal). ``fisher``: the estimate
    is a correlation r and ``se`` is the standard error of atanh(r), ``1 / sqrt(n - 3)``.
    """

    estimate: float
    se: float
    df: float | None = None
    fisher: bool = False

    def _q(self, a: Any) -> Any:
        """The upper ``a`` quantile of the pivot's distribution."""
        if self.df is None:
            return stats.norm.isf(a)
        return stats.t.isf(a, self.df)

    def _scale(self, x: Any) -> Any:
        return np.arctanh(np.clip(x, -0.999999, 0.999999)) if self.fisher else x

    def _unscale(self, z: Any) -> Any:
        return np.tanh(z) if self.fisher else z

    def bounds(self, a: Any) -> tuple[Any, Any]:
        """The one-sided (1 - a) lower and upper bounds (a two-sided 1 - 2a interval); arrays
        in any field give arrays."""
        centre, half = self._scale(self.estimate), self._q(a) * self.se
        return self._unscale(centre - half), self._unscale(centre + half)

    def p(self, null: float = 0.0, alternative: str = "greater") -> Any:
        """The p-value of H0: effect = ``null`` against ``alternative``."""
        z = (self._scale(self.estimate) - self._scale(null)) / self.se
        dist = stats.norm if self.df is None else stats.t(self.df)
        if alternative == "greater":
            return dist.sf(z)
        if alternative == "less":
            return dist.cdf(z)
        return np.minimum(1.0, 2 * dist.sf(np.abs(z)))


def holm_levels(p: Any, alpha: float, nominal: Any = None) -> np.ndarray:
    """The level each claim of a Holm family is read at (rows: independent families).

    Step k (0-based, p ascending) of m is tested at ``alpha / (m - k)``; the first step whose
    p is not below its level stops the procedure, and it and every later claim are read at the
    stopping step's level. So ``p < level`` exactly when Holm rejects. ``nominal`` maps the
    steps' levels to the levels a look of a sequential design tests them at
    (``sequential.at_look``); without it the design is fixed.
    """
    p = np.atleast_2d(np.asarray(p, float))
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=-1)
    thresholds = alpha / (m - np.arange(m))
    if nominal is not None:
        thresholds = np.asarray(nominal(thresholds), float)
    passed = np.cumprod(sorted_p < thresholds, axis=-1).astype(bool)
    stop = passed.sum(axis=-1, keepdims=True)  # the first failed step (m: none failed)
    levels_sorted = thresholds[np.minimum(np.arange(m), stop)]
    levels = np.empty_like(levels_sorted)
    np.put_along_axis(levels, order, levels_sorted, axis=-1)
    return levels


def decide(
    low: Any,
    high: Any,
    direction: str,
    null: float = 0.0,
    min_effect: float | None = None,
    tost: tuple[Any, Any] | None = None,
) -> Any:
    """The verdict from the bounds (arrays give arrays of verdicts).

    ``low`` / ``high``: a one-sided claim's bounds, each at its own level (the claimed
    direction's at the support level, the other at the contradiction level); a two-sided
    claim's interval at the support level, and ``tost``, its two one-sided bounds at the
    contradiction level. ``null``: 0, or ``-margin`` for a non-inferiority claim (whose
    ``min_effect`` is then ``None``: it is contradicted when ``high`` falls below the margin).
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    m = 0.0 if min_effect is None else float(min_effect)
    if direction == "greater":
        supported, contradicted = low > null, high < null + m
    elif direction == "less":
        supported, contradicted = high < null, low > null - m
    elif direction == EQUIVALENCE:  # m is the margin: inside it supports, beyond it contradicts
        t_low, t_high = (low, high) if tost is None else (np.asarray(b, float) for b in tost)
        supported = (low > null - m) & (high < null + m) & (m > 0)
        contradicted = (t_low > null + m) | (t_high < null - m)
    else:
        t_low, t_high = (low, high) if tost is None else (np.asarray(b, float) for b in tost)
        supported = (low > null) | (high < null)
        contradicted = (t_low > null - m) & (t_high < null + m) & (m > 0)
    out = np.where(supported, SUPPORTED, np.where(contradicted, CONTRADICTED, INCONCLUSIVE))
    return str(out) if out.ndim == 0 else out


def support_p(pivot: Pivot, direction: str, null: float = 0.0,
              margin: float | None = None) -> Any:  # fmt: skip
    """The p-value of the test that supports a claim: H0 "no effect" in its direction; an
    equivalence claim's is TOST's, the larger of the two one-sided tests against +-margin."""
    if direction == EQUIVALENCE:
        m = 0.0 if margin is None else float(margin)
        return np.maximum(pivot.p(null - m, "greater"), pivot.p(null + m, "less"))
    return pivot.p(null, direction)


def contradiction_p(pivot: Pivot, direction: str, null: float = 0.0,
                    min_effect: float | None = None) -> Any:  # fmt: skip
    """The p-value of the test that contradicts a claim: H0 "the effect reaches min_effect"
    (without one: "the effect is not reversed"); two-sided, the larger of the two one-sided
    tests (TOST). Holm runs over these apart from the support p-values."""
    m = 0.0 if min_effect is None else float(min_effect)
    if direction == EQUIVALENCE:  # the deviation lies beyond the margin, on either side
        return np.minimum(pivot.p(null + m, "greater"), pivot.p(null - m, "less"))
    if direction == "greater":
        return pivot.p(null + m, "less")
    if direction == "less":
        return pivot.p(null - m, "greater")
    if m <= 0:
        return np.ones_like(np.asarray(pivot.estimate, float))
    return np.maximum(pivot.p(null - m, "greater"), pivot.p(null + m, "less"))


def guard(outcome: Any, stalled_beside_learned: Any, rule: str) -> Any:
    """Under the 'chance' rule, runs at chance beside runs that learned count as 10% and can
    contradict a claim by themselves (a correlation over 36 points with 10% of them stalled
    is wrongly contradicted 40% of the time at a true r of min_effect: the benchmark): such a
    contradiction is inconclusive. The 'exclude' rule, which drops them, is not guarded."""
    if rule != "chance":
        return outcome
    demote = np.asarray(stalled_beside_learned) & (np.asarray(outcome) == CONTRADICTED)
    out = np.where(demote, INCONCLUSIVE, outcome)
    return str(out) if out.ndim == 0 else out


def qualify(
    verdict: str,
    low: float,
    high: float,
    direction: str,
    null: float = 0.0,
    min_effect: float | None = None,
) -> str:
    """What a verdict says beyond its word: a supported effect's size against the smallest
    effect of interest, and whether a contradicted one is absent or reversed."""
    if direction == EQUIVALENCE:
        m = 0.0 if min_effect is None else min_effect
        if verdict == SUPPORTED:
            return f"within +-{m:g} points of the reference"
        if verdict == CONTRADICTED:
            side = "above" if low > null + m else "below"
            return f"{side} the reference by more than {m:g} points"
        return ""
    sign = -1.0 if direction == "less" else 1.0
    near, far = (low, high) if sign > 0 else (-high, -low)  # bounds in the claimed direction
    null = sign * null
    if verdict == SUPPORTED:
        if direction == "two-sided":
            side = "positive" if low > null else "negative"
            if min_effect is None:
                return f"the effect is {side}"
            big = min(abs(low), abs(high)) >= min_effect
            return f"the effect is {side}" + (
                f" and at least the smallest effect of interest ({min_effect:g})" if big else ""
            )
        if min_effect is None:
            return ""
        if near >= null + min_effect:
            return f"at least the smallest effect of interest ({min_effect:g})"
        if far < null + min_effect:
            return f"smaller than the smallest effect of interest ({min_effect:g})"
        return f"whether it reaches the smallest effect of interest ({min_effect:g}) is open"
    if verdict == CONTRADICTED:
        if direction == "two-sided":
            return f"the effect lies within +-{min_effect:g}, the smallest effect of interest"
        if far < null:
            return "reversed: the effect goes the other way"
        return f"absent: smaller than the smallest effect of interest ({min_effect:g})"
    return ""


def bounds_at(pivot: Pivot, support: Any, contra: Any, direction: str) -> tuple[Any, ...]:
    """(low, high, tost) as :func:`decide` reads them: a one-sided claim's bound in its
    direction at the support level and the other at the contradiction level; a two-sided
    claim's (1 - support) interval and its one-sided bounds at the contradiction level."""
    if direction == "two-sided":
        low, high = pivot.bounds(np.asarray(support) / 2)
        return low, high, pivot.bounds(contra)
    if direction == EQUIVALENCE:  # TOST's bounds at the support level; either at contra
        low, high = pivot.bounds(support)
        return low, high, pivot.bounds(contra)
    s_low, s_high = pivot.bounds(support)
    c_low, c_high = pivot.bounds(contra)
    if direction == "greater":
        return s_low, c_high, None
    return c_low, s_high, None


def read(
    pivot: Pivot,
    support: float,
    contra: float,
    direction: str,
    null: float = 0.0,
    min_effect: float | None = None,
) -> tuple[str, float, float]:
    """(verdict, low, high) of one claim at its two Holm levels (support and contradiction)."""
    low, high, tost = bounds_at(pivot, support, contra, direction)
    verdict = decide(low, high, direction, null, min_effect, tost)
    return verdict, float(low), float(high)


def confidence_label(support: float, contra: float, direction: str) -> str:
    """'90% two-sided (each bound one-sided 95%)' for a one-sided claim at 0.05 and 0.05;
    'lower bound one-sided 98.33%, upper 97.5%' when its two Holm levels differ."""
    if direction == "two-sided":
        return f"{_pct(1 - support)} two-sided"
    if math.isclose(support, contra):
        return f"{_pct(1 - 2 * support)} two-sided (each bound one-sided {_pct(1 - support)})"
    if direction == EQUIVALENCE:
        return (
            f"{_pct(1 - 2 * support)} two-sided for equivalence; a bound beyond the margin "
            f"read one-sided {_pct(1 - contra)}"
        )
    lower, upper = (support, contra) if direction == "greater" else (contra, support)
    return f"lower bound one-sided {_pct(1 - lower)}, upper {_pct(1 - upper)}"


def _pct(x: float) -> str:
    text = f"{100 * x:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


# --- power: what would decide an open claim -------------------------------------------------


def t_power(effect: float, sd: float, n: float, df: float, level: float, two: bool) -> float:
    """Power of a t test whose estimate has sd ``sd / sqrt(n)`` at ``level``, true ``effect``."""
    if sd <= 0 or df < 1:
        return math.nan
    nc = abs(effect) / (sd / math.sqrt(n))
    if two:
        q = stats.t.isf(level / 2, df)
        return float(stats.nct.sf(q, df, nc) + stats.nct.cdf(-q, df, nc))
    return float(stats.nct.sf(stats.t.isf(level, df), df, nc))


def paired_power(
    effect: float, cond_var: float, seed_var: float, seeds: int, n: int, level: float, two: bool
) -> float:
    """Power of the paired test over ``n`` conditions with ``seeds`` seeds per group each: a
    condition's difference varies as ``cond_var + 2 seed_var / seeds``."""
    sd = math.sqrt(cond_var + 2 * seed_var / seeds)
    return t_power(effect, sd, n, n - 1, level, two)


def welch_power(effect: float, sd: float, per_group: int, level: float, two: bool) -> float:
    """Power of the two-sample t test with ``per_group`` runs a group (df = 2n - 2)."""
    if per_group < 2:
        return math.nan
    return t_power(effect, sd * math.sqrt(2), per_group, 2 * per_group - 2, level, two)


def smallest(power_at: Any, target: float = 0.8, limit: int = 1000) -> int | None:
    """The smallest n in 2..limit with ``power_at(n) >= target`` (None: none up to limit)."""
    if not power_at(limit) >= target:
        return None
    lo, hi = 2, limit
    while lo < hi:  # power rises with n: bisect
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo
