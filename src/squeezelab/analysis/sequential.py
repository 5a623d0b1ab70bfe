"""Group-sequential boundaries by Lan-DeMets alpha spending: looking at a claim again and again
without the false positives that looking brings.

A study that adds seeds until its claims are decided tests each claim at several *looks*. At
look ``k`` a fraction ``t_k`` of the planned information has come in (seeds per condition so
far over the most it may take), and the spending function says how much of the claim's level
``alpha`` may have been spent by then: ``alpha(t_k)``. The boundary ``b_k`` is the z value that
spends exactly ``alpha(t_k) - alpha(t_{k-1})`` at look ``k``, given that the statistic stayed
below every earlier boundary; the probability of ever crossing is then ``alpha`` whatever the
number and timing of the looks (Lan & DeMets 1983; Jennison & Turnbull 2000, ch. 7).

- ``obrien-fleming``: ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``, spends almost nothing
  early: a claim stops at its first looks only when its effect is large.
- ``pocock``: ``alpha(t) = alpha ln(1 + (e - 1) t)``, spends evenly: stops sooner, pays with a
  stricter last boundary.

The crossing probabilities are computed by numerical integration of the score process's
density over the continuation region (Armitage, McPherson & Rowe 1969; Jennison & Turnbull
ch. 19), on a fixed grid: deterministic, so a look taken again on the same fractions gives the
same boundary. A boundary is a z value; a claim's test (t with its degrees of freedom) is
compared through its one-sided p against the boundary's nominal level ``1 - Phi(b_k)``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize
from scipy.stats import norm

SPENDING = ("obrien-fleming", "pocock")
GRID = 401  # points of the integration grid per look (boundaries agree with 1,201 to 1e-5)
_LOW = -10.0  # the grid's floor, in standard deviations of the score at that look


def spent(alpha: float, t: float, spending: str) -> float:
    """The level a claim may have spent by information fraction ``t`` (0 < t <= 1)."""
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {', '.join(SPENDING)}, got {spending!r}")
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    if spending == "obrien-fleming":
        return float(2.0 - 2.0 * norm.cdf(norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t)))
    return float(alpha * math.log(1.0 + (math.e - 1.0) * t))


def boundaries(alpha: float, fractions: Sequence[float], spending: str) -> list[float]:
    """The upper z boundary at each look, for one-sided level ``alpha``.

    ``fractions`` are the looks' information fractions, increasing, the last at most 1 (a
    study that stops early never reaches 1; its looks' boundaries do not depend on later
    ones). A look that may spend nothing new (no new information) has boundary ``inf``.
    """
    t = tuple(float(f) for f in fractions)
    if any(b <= a for a, b in itertools.pairwise(t)) or not t or t[0] <= 0 or t[-1] > 1:
        raise ValueError(f"information fractions must increase within (0, 1], got {list(t)}")
    spent(alpha, 1.0, spending)  # names a bad spending function before any work
    return list(_cached(alpha, t, spending))


@functools.lru_cache(maxsize=1024)
def _cached(alpha: float, t: tuple[float, ...], spending: str) -> tuple[float, ...]:
    return tuple(_solve(alpha, list(t), lambda a, f: spent(a, f, spending)))


def constant_boundaries(alpha: float, fractions: Sequence[float], shape: str) -> list[float]:
    """Classical boundaries of one shape for comparison with published tables: ``pocock``
    (the same z at every look) or ``obrien-fleming`` (``c / sqrt(t_k)``), with ``c`` chosen so
    the crossing probability is ``alpha``."""
    t = [float(f) for f in fractions]

    def crossing(c: float) -> float:
        bounds = [c / math.sqrt(f) if shape == "obrien-fleming" else c for f in t]
        return float(sum(crossing_probabilities(bounds, t))) - alpha

    c = optimize.brentq(crossing, 0.5, 10.0, xtol=1e-10)
    return [c / math.sqrt(f) if shape == "obrien-fleming" else c for f in t]


def crossing_probabilities(
    bounds: Sequence[float], fractions: Sequence[float], drift: float = 0.0
) -> list[float]:
    """The probability of first crossing each boundary, for a score process with ``drift``
    (the z statistic's mean at full information: 0 under the null)."""
    probs = []
    grid, density = _start(bounds[0], fractions[0], drift)
    probs.append(_upper(bounds[0], fractions[0], drift, None))
    for k in range(1, len(bounds)):
        step = fractions[k] - fractions[k - 1]
        probs.append(_upper(bounds[k], fractions[k], drift, (grid, density, step)))
        grid, density = _advance(grid, density, bounds[k], fractions[k], step, drift)
    return probs


def nominal_levels(alpha: float, fractions: Sequence[float], spending: str) -> list[float]:
    """Each look's one-sided nominal level ``1 - Phi(b_k)``: a claim's p at or below it
    crosses."""
    return [float(norm.sf(b)) for b in boundaries(alpha, fractions, spending)]


def look_fractions(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The information fraction of each recorded look (``Store.looks`` rows), in look order."""
    return [f for _, f in sorted({(r["look"], r["fraction"]) for r in rows})]


def look_level(alpha: float, fractions: Sequence[float], spending: str) -> float:
    """The nominal level at the last of ``fractions`` for a claim of level ``alpha``: what a
    fixed design's level becomes at this look of a sequential one."""
    return float(norm.sf(boundaries(alpha, fractions, spending)[-1]))


def at_look(fractions: Sequence[float], spending: str) -> Callable[[np.ndarray], np.ndarray]:
    """Holm's step levels mapped to this look's nominal levels (``verdicts.holm_levels``'s
    ``nominal``): each step's alpha gets its own spending sequence over the same looks."""
    t = tuple(fractions)

    def nominal(levels: np.ndarray) -> np.ndarray:
        levels = np.asarray(levels, float)
        unique = {float(a): look_level(float(a), t, spending) for a in np.unique(levels)}
        return np.vectorize(unique.__getitem__, otypes=[float])(levels)

    return nominal


@dataclasses.dataclass(frozen=True)
class SequentialDesign:
    """A study's sequential plan: its declared seeds are the first look; each later look adds
    ``seeds_per_look`` seeds to the conditions of claims still open, up to ``max_seeds`` per
    condition (or ``looks`` looks), spending each claim's level by ``spending``. ``budget`` caps
    the study's run-epochs in all, ``budget_hours`` one call's wall clock (None: no cap)."""

    first: int  # seeds per condition at the first look
    max_seeds: int
    seeds_per_look: int = 1
    looks: int | None = None
    spending: str = "obrien-fleming"
    budget: float | None = None
    budget_hours: float | None = None

    def __post_init__(self) -> None:
        if self.spending not in SPENDING:
            raise ValueError(f"spending must be one of {', '.join(SPENDING)}")
        if not 1 <= self.first <= self.max_seeds:
            raise ValueError(
                f"max_seeds ({self.max_seeds}) must be at least the declared seeds ({self.first})"
            )
        if self.seeds_per_look < 1:
            raise ValueError("seeds_per_look must be at least 1")
        if self.looks is not None and self.looks < 1:
            raise ValueError("looks must be at least 1")

    @property
    def schedule(self) -> list[int]:
        """Seeds per condition at each planned look."""
        seeds = [*range(self.first, self.max_seeds, self.seeds_per_look), self.max_seeds]
        return seeds[: self.looks] if self.looks else seeds

    @property
    def most(self) -> int:
        """The seeds at the last planned look: full information."""
        return self.schedule[-1]

    def fraction(self, seeds: int) -> float:
        return min(seeds / self.most, 1.0)

    def next_seeds(self, seeds: int) -> int | None:
        """The seeds of the look after one at ``seeds`` (None: that was the last)."""
        later = [s for s in self.schedule if s > seeds]
        return later[0] if later else None


# --- numerical integration ------------------------------------------------------------------
# The score S_k = Z_k sqrt(t_k) is Brownian motion in t with drift ``drift`` per unit t; its
# sub-density on the continuation region (below every boundary so far) is carried from look to
# look on a grid and integrated with Simpson's rule.


def _solve(alpha: float, t: list[float], spend: Callable[[float, float], float]) -> list[float]:
    bounds: list[float] = []
    before = 0.0
    state: tuple[np.ndarray, np.ndarray, float] | None = None
    grid = density = None
    for k, f in enumerate(t):
        now = spend(alpha, f)
        target = now - before
        if target <= 1e-15:
            b = math.inf
        elif state is None:
            b = float(norm.isf(target))
        else:
            b = optimize.brentq(_excess, -2.0, 40.0, args=(f, state, target), xtol=1e-9)
        bounds.append(b)
        before = now
        if k == 0:
            grid, density = _start(b, f, 0.0)
        else:
            assert grid is not None and density is not None
            grid, density = _advance(grid, density, b, f, t[k] - t[k - 1], 0.0)
        if k + 1 < len(t):
            state = (grid, density, t[k + 1] - f)
    return bounds


def _excess(
    bound: float, t: float, state: tuple[np.ndarray, np.ndarray, float], target: float
) -> float:
    return _upper(bound, t, 0.0, state) - target


def _simpson_weights(n: int, h: float) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3.0


def _grid(bound: float, t: float, drift: float) -> np.ndarray:
    """Score values from far below the mean up to the boundary (odd count, for Simpson)."""
    sd = math.sqrt(t)
    top = min(bound * sd, drift * t + 10.0 * sd) if math.isfinite(bound) else drift * t + 10 * sd
    return np.linspace(drift * t + _LOW * sd, top, GRID)


def _start(bound: float, t: float, drift: float) -> tuple[np.ndarray, np.ndarray]:
    grid = _grid(bound, t, drift)
    return grid, norm.pdf(grid, loc=drift * t, scale=math.sqrt(t))


def _advance(
    grid: np.ndarray, density: np.ndarray, bound: float, t: float, step: float, drift: float
) -> tuple[np.ndarray, np.ndarray]:
    new = _grid(bound, t, drift)
    w = _simpson_weights(len(grid), grid[1] - grid[0]) * density
    kernel = norm.pdf(new[:, None], loc=grid[None, :] + drift * step, scale=math.sqrt(step))
    return new, kernel @ w


def _upper(
    bound: float,
    t: float,
    drift: float,
    state: tuple[np.ndarray, np.ndarray, float] | None,
) -> float:
    """P(score at look t >= bound sqrt(t), having continued at every earlier look)."""
    if not math.isfinite(bound):
        return 0.0
    level = bound * math.sqrt(t)
    if state is None:
        return float(norm.sf(level, loc=drift * t, scale=math.sqrt(t)))
    grid, density, step = state
    w = _simpson_weights(len(grid), grid[1] - grid[0]) * density
    tail = norm.sf(level, loc=grid + drift * step, scale=math.sqrt(step))
    return float(w @ tail)
