"""Where a claim's spread comes from: seeds within a condition, or the conditions themselves.

A claim's runs are nested: conditions (a learning rate, a batch size: the cells a paired test
matches) and seeds within each condition's groups. Adding seeds shrinks only the first part of
the spread, so the advice on what would decide an open claim needs the two apart. This module
estimates them (pooled within-cell variance for seeds; the rest of a paired difference's
variance for conditions) and bootstraps a statistic hierarchically: conditions resampled with
replacement, then seeds within each resampled condition's groups.

A cluster is one condition: ``{group: [per-seed values]}`` (a paired claim's groups are
treatment and control; a correlation's are the x values; an unpaired claim's clusters each
hold one group, resampled within their group: ``strata``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .stats import pooled_variance

Cluster = dict[Hashable, list[float]]
BOOTSTRAP_REPS = 2000


@dataclass(frozen=True)
class Components:
    """Seed-to-seed and condition-to-condition spread (standard deviations, points)."""

    seed_sd: float | None  # pooled within (condition, group) cells; None: no cell has 2 seeds
    seed_df: int  # the pooled estimate's degrees of freedom
    cond_sd: float | None  # between conditions beyond what seeds explain; None: not estimable
    cells: int  # (condition, group) cells
    single_seed_cells: int  # cells of one seed: no within spread of their own

    def describe(self) -> str:
        parts = []
        if self.seed_sd is None:
            parts.append(
                "seed-to-seed SD unmeasured (every condition has one seed: no within spread)"
            )
        else:
            parts.append(f"seed-to-seed SD {self.seed_sd:.2f} (df {self.seed_df})")
            if self.single_seed_cells:
                parts.append(
                    f"{self.single_seed_cells} of {self.cells} cells have one seed (no within "
                    "spread of their own)"
                )
        if self.cond_sd is not None:
            parts.append(f"condition-to-condition SD {self.cond_sd:.2f}")
        return "; ".join(parts)


def seed_variance(clusters: Sequence[Cluster]) -> tuple[float | None, int]:
    """The within-cell variance pooled over every (condition, group) cell, and its df."""
    return pooled_variance([values for cluster in clusters for values in cluster.values()])


def components(
    clusters: Sequence[Cluster], differences: Sequence[float] | None = None
) -> Components:
    """Spread by source. ``differences``: a paired claim's per-condition differences (treatment
    mean minus control mean), whose variance is the conditions' plus the seeds' share
    ``seed_var * (1/k_treatment + 1/k_control)``; the rest is the conditions'."""
    seed_var, df = seed_variance(clusters)
    cells = sum(len(c) for c in clusters)
    single = sum(len(v) == 1 for c in clusters for v in c.values())
    cond_sd = None
    if differences is not None and len(differences) > 1 and seed_var is not None:
        share = float(np.mean([sum(1 / len(v) for v in c.values() if v) for c in clusters]))
        cond_var = float(np.var(differences, ddof=1)) - seed_var * share
        cond_sd = math.sqrt(max(0.0, cond_var))
    return Components(None if seed_var is None else math.sqrt(seed_var), df, cond_sd, cells, single)


@dataclass(frozen=True)
class Bootstrap:
    """A percentile interval from a seeded hierarchical bootstrap."""

    low: float
    high: float
    reps: int  # replicates that gave a finite statistic
    seed: int


def hierarchical_bootstrap(
    clusters: Sequence[Cluster],
    statistic: Callable[[list[Cluster]], float],
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
    strata: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
) -> Bootstrap | None:
    """Resample conditions (within ``strata``), then seeds within each cell; the percentile
    interval of ``statistic``. None when too few replicates give a finite value."""
    rng = np.random.default_rng(seed)
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata if strata is not None else [0] * len(clusters)):
        groups.setdefault(s, []).append(i)
    arrays = [{g: np.asarray(v, float) for g, v in c.items()} for c in clusters]
    values = []
    for _ in range(reps):
        sample: list[Cluster] = []
        for members in groups.values():
            for i in rng.choice(members, len(members)):
                sample.append(
                    {g: list(v[rng.integers(0, v.size, v.size)]) for g, v in arrays[i].items()}
                )
        try:
            value = statistic(sample)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            continue
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < reps // 2:
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Bootstrap(float(low), float(high), len(values), seed)


def mean_of(values: Sequence[float]) -> float:
    return float(np.mean(values))


def paired_statistic(treated: Callable[[Hashable], bool], control: Any) -> Callable:
    """A paired claim's estimate over clusters: the mean over conditions of (treatment mean
    minus control mean), conditions lacking either group skipped."""

    def stat(sample: list[Cluster]) -> float:
        diffs = []
        for c in sample:
            t = [v for g, vs in c.items() if treated(g) for v in vs]
            if t and c.get(control):
                diffs.append(mean_of(t) - mean_of(c[control]))
        if not diffs:
            raise ValueError("no condition with both groups")
        return mean_of(diffs)

    return stat


def welch_statistic(treatment: Hashable, control: Hashable) -> Callable:
    """An unpaired claim's estimate: treatment runs' mean minus control runs' mean."""

    def stat(sample: list[Cluster]) -> float:
        a = [v for c in sample for v in c.get(treatment, [])]
        b = [v for c in sample for v in c.get(control, [])]
        return mean_of(a) - mean_of(b)

    return stat


def correlation_statistic(relative_to: Any) -> Callable:
    """A correlation claim's r over clusters (each a condition's cells by x)."""

    def stat(sample: list[Cluster]) -> float:
        xs, ys = [], []
        for c in sample:
            if relative_to is not None and not c.get(relative_to):
                continue
            base = mean_of(c[relative_to]) if relative_to is not None else 0.0
            for x, vs in c.items():
                if relative_to is not None and x == relative_to:
                    continue
                xs.append(float(x))  # type: ignore[arg-type]
                ys.append(mean_of(vs) - base)
        if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
            raise ValueError("r undefined")
        return float(np.corrcoef(xs, ys)[0, 1])

    return stat
