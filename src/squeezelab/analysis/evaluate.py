"""Deciding declared claims from a study's runs: supported, contradicted or inconclusive.

:func:`evaluate_claim` decides one claim (:class:`~squeezelab.analysis.claims.ClaimSpec`)
from a study's runs under one divergence rule:

- ``chance``: a diverged run counts at chance accuracy (the study's rule: "nan" = 10%);
- ``exclude``: diverged runs **and stalled ones** (finished at chance by a binomial test at
  their own evaluation count, ``results.records.at_chance``) are dropped, and with them the
  pairs they belong to.

Seeds are replicates, not conditions: paired tests and correlations first average the seeds
of each condition, so n counts conditions. Unpaired tests (Welch, non-inferiority) compare
the runs of two groups, whose seeds are the independent units.

Each test type is one entry of :data:`TEST_TYPES`: a function that fills a result's
statistics and returns a :class:`Design` (the pivot its verdict is read from, and how its
power depends on seeds). Everything else (Holm levels, the three verdicts, intervals, the
advice on what would decide an open claim, the bootstrap) is shared. A claim whose runs cannot
be tested at all (too few units, every run at chance, no spread, a source model that learned
nothing) is *inconclusive* with the reason, never ``nan``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np
from scipy import stats

from ..declared import ANY, RULES, ClaimSpec
from ..results.records import RunRecord, precision_mix
from .published import published_runs, published_value
from .selection import varying_fields
from .stats import (
    ALPHA,
    correlation_n_needed,
    correlation_power,
    holm,
    paired_test,
    pearson,
    pooled_variance,
    welch_test,
)
from .variance import (
    Bootstrap,
    Cluster,
    Components,
    components,
    correlation_statistic,
    hierarchical_bootstrap,
    paired_statistic,
    welch_statistic,
)
from .verdicts import (
    CONTRADICTED,
    EQUIVALENCE,
    INCONCLUSIVE,
    SUPPORTED,
    Pivot,
    confidence_label,
    contradiction_p,
    guard,
    holm_levels,
    paired_power,
    qualify,
    read,
    smallest,
    support_p,
    welch_power,
)

POWER = 0.8
NAMES = ("treatment", "control")


@dataclass
class Design:
    """What a test's verdict is read from, and what more data would change."""

    pivot: Pivot
    null: float  # 0, or -margin (non-inferiority)
    # (support level, contradiction level) -> (power now, units needed, their name, advice)
    advise: Callable[[float, float], tuple[float | None, int | None, str, str]]
    bootstrap: Callable[[], Bootstrap | None] = lambda: None


@dataclass
class ClaimResult:
    """The outcome of one claim (one stratum of it) under one divergence rule."""

    id: str
    statement: str
    rule: str
    test: str
    hypothesis: str
    direction: str = "greater"
    stratum: str = ""
    n: int = 0
    n_excluded: int = 0  # diverged and stalled runs dropped under the "exclude" rule
    estimate: float | None = None  # mean difference (points) or Pearson r
    ci_low: float | None = None  # the interval at the claim's Holm level (see `confidence`)
    ci_high: float | None = None
    confidence: str = ""  # the interval's level in words
    level: float | None = None  # the level of the claim's Holm step (support)
    p_contra: float | None = None  # the contradiction test's p (effect reaches min_effect)
    contra_level: float | None = None  # its Holm step's level
    statistic: str = ""
    value: float | None = None
    df: float | None = None
    p: float | None = None
    p_two_sided: float | None = None
    p_holm: float | None = None
    outcome: str = ""  # supported / contradicted / inconclusive, once decided
    qualifier: str = ""  # a supported effect's size; a contradicted one absent or reversed
    min_effect: float | None = None
    power: float | None = None  # at the declared effect, the design as run, at the level
    n_needed: int | None = None  # of the lever below, for 80% power
    lever: str = ""  # the unit a user can add: "seeds per condition", "runs per group", ...
    advice: str = ""  # what would decide an inconclusive claim
    spread: str = ""  # seed-to-seed and condition-to-condition spread
    boot_low: float | None = None  # hierarchical bootstrap percentile interval (95%)
    boot_high: float | None = None
    boot_reps: int = 0
    alpha: float = ALPHA
    family: str = "claims"
    reason: str = ""  # why the claim is inconclusive
    note: str = ""
    caveat: str = ""  # why the claim was not tested as the study did
    interim: str = ""  # the study's declared runs that have not finished, if any
    published: str = ""
    details: str = ""
    mixed: str = ""  # runs at chance beside runs that learned, if any
    design: Design | None = dc_field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.statement} [{self.stratum}]" if self.stratum else self.statement

    @property
    def verdict(self) -> str:
        word = INCONCLUSIVE if self.reason else (self.outcome or INCONCLUSIVE)
        if self.caveat and word != INCONCLUSIVE:
            word += " (not tested as the study did)"
        # Read on part of the declared runs: the declared test is the full study's.
        return f"{word} (interim)" if self.interim else word

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "design"}
        out["verdict"] = self.verdict
        return {k: _json_safe(v) for k, v in out.items()}


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def matches(config: Mapping[str, Any], where: dict[str, list[Any]]) -> bool:
    """Whether a run config passes a claim's ``where`` filter."""
    return all(_same(config.get(k), allowed) for k, allowed in where.items())


def _same(value: Any, allowed: Iterable[Any]) -> bool:
    return any(
        value == a or (isinstance(value, float) and isinstance(a, float) and math.isclose(value, a))
        for a in allowed
    )


def in_group(value: Any, wanted: Any, control: Any) -> bool:
    """Whether a run's field value belongs to a group (``*``: anything but the control)."""
    if wanted == ANY:
        return value != control
    return value == wanted


def _condition(config: Any, drop: Iterable[str]) -> str:
    drop = {*drop, "seed"}
    return json.dumps({k: v for k, v in config.items() if k not in drop}, sort_keys=True)


def at_chance_run(run: RunRecord, metric: str, chance: float) -> bool:
    """Diverged, or finished at chance on ``metric`` (binomial, at its evaluation count)."""
    return run.status == "diverged" or run.stalled(metric, chance)


def run_value(run: RunRecord, metric: str, rule: str, chance: float) -> float | None:
    """A run's metric under a divergence rule; ``None`` when the run does not count."""
    if run.status == "diverged":
        return chance if rule == "chance" else None
    if rule == "exclude" and run.stalled(metric, chance):
        return None
    value = getattr(run.result, metric)
    return None if value is None or not math.isfinite(value) else float(value)


def _hashable(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _clusters(
    runs: list[RunRecord], claim: ClaimSpec, rule: str, chance: float, key_field: str
) -> dict[str, Cluster]:
    """Per condition (every field but ``key_field`` and the seed), the per-seed values of each
    value of ``key_field``; runs that do not count under ``rule`` left out."""
    out: dict[str, Cluster] = {}
    for r in runs:
        v = run_value(r, claim.metric, rule, chance)
        if v is None:
            continue
        cond = _condition(r.config, (key_field,))
        out.setdefault(cond, {}).setdefault(_hashable(r.config.get(key_field)), []).append(v)
    return out


# --- the test types ----------------------------------------------------------------------


def _paired(claim: ClaimSpec, runs: list[RunRecord], rule: str, chance: float,
            res: ClaimResult) -> Design | None:  # fmt: skip
    clusters = _clusters(runs, claim, rule, chance, claim.field or "")

    def treated(g: Hashable) -> bool:
        return in_group(g, claim.treatment, claim.control)

    a: list[float] = []
    b: list[float] = []
    matched: list[Cluster] = []
    for cluster in clusters.values():
        tv = [v for g, vs in cluster.items() if treated(g) for v in vs]
        c = cluster.get(claim.control)
        if tv and c:
            a.append(float(np.mean(tv)))
            b.append(float(np.mean(c)))
            matched.append({"t": tv, "c": list(c)})  # the cells whose seeds give the within spread
    res.n = len(a)
    res.statistic = "t"
    if len(a) < 2:
        res.reason = f"only {len(a)} matched condition(s) with both groups; a paired test needs 2"
        return None
    if _all_at_chance(_compared(claim, runs), claim.metric, chance):
        res.reason = f"every run is at chance ({chance:g}%): nothing was learned"
        return None
    d = np.subtract(a, b)
    if np.all(d == d[0]):
        res.reason = f"every pair differs by exactly {d[0]:+.2f} points: no spread to test"
        return None
    alt = claim.direction
    t = paired_test(a, b, alternative=alt)
    n = len(d)
    pivot = Pivot(float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n), n - 1.0)
    res.estimate, res.value, res.df = t.mean_diff, t.t, float(n - 1)
    res.p, res.p_two_sided = float(pivot.p(0.0, alt)), float(pivot.p(0.0, "two-sided"))
    res.details = (
        f"Wilcoxon W = {t.wilcoxon_w:.1f}, p = {t.wilcoxon_p:.4g}; Cohen's d_z = {t.cohen_dz:.2f}; "
        f"treatment mean {np.mean(a):.2f}%, control mean {np.mean(b):.2f}%"
    )
    parts = components(matched, list(d))
    res.spread = parts.describe()
    seeds = int(np.median([min(len(m["t"]), len(m["c"])) for m in matched]))

    def advise(level: float, contra: float) -> tuple[float | None, int | None, str, str]:
        return _paired_advice(claim, parts, float(d.var(ddof=1)), n, seeds, level)

    def boot() -> Bootstrap | None:
        return hierarchical_bootstrap(
            list(clusters.values()), paired_statistic(treated, claim.control)
        )

    return Design(pivot, 0.0, advise, boot)


def _paired_advice(claim: ClaimSpec, parts: Components, var_d: float, n: int, seeds: int,
                   level: float) -> tuple[float | None, int | None, str, str]:  # fmt: skip
    """Power at min_effect as run, and the seeds per condition (the lever) that reach 80%."""
    effect = claim.min_effect
    two = claim.direction == "two-sided"
    if effect is None:
        return None, None, "", _no_effect_declared()
    seed_var = None if parts.seed_sd is None else parts.seed_sd**2
    if seed_var is None:
        more = smallest(lambda m: paired_power(effect, var_d, 0.0, 1, m, level, two), limit=100_000)
        return (
            paired_power(effect, var_d, 0.0, 1, n, level, two),
            None,
            "seeds per condition",
            "one seed per condition: the seed-to-seed spread is unmeasured, so how many seeds "
            "would decide it cannot be said; run a second seed of every condition first"
            + (
                f" (at one seed each, about {more} matched conditions would give {POWER:.0%} "
                f"power for the smallest effect of interest, {effect:g})"
                if more
                else ""
            ),
        )
    cond_var = (parts.cond_sd or 0.0) ** 2
    power = paired_power(effect, cond_var, seed_var, seeds, n, level, two)
    needed = smallest(lambda s: paired_power(effect, cond_var, seed_var, s, n, level, two))
    if needed is not None:
        return (
            power,
            needed,
            "seeds per condition",
            (
                f"about {needed} seeds per condition (now {seeds}) would give {POWER:.0%} power "
                f"for the smallest effect of interest ({effect:g}) over these {n} conditions"
            ),
        )
    ceiling = paired_power(effect, cond_var, 0.0, 1, n, level, two)
    more = smallest(
        lambda m: paired_power(effect, cond_var, seed_var, seeds, m, level, two), limit=100_000
    )
    return (
        power,
        None,
        "conditions",
        (
            f"no number of seeds decides it: the spread is between conditions (condition-to-"
            f"condition SD {parts.cond_sd:.2f}; with infinite seeds the power over these {n} "
            f"conditions is {ceiling:.2f}); "
            + (
                f"about {more} matched conditions at {seeds} seed(s) each would"
                if more
                else "no feasible number of conditions would"
            )
            + " (the study's design fixes its conditions: a wider grid would add them)"
        ),
    )


def _no_effect_declared() -> str:
    return (
        "no smallest effect of interest is declared (min_effect), so neither 'contradicted' "
        "nor a power analysis is available; declare one to learn what would decide it"
    )


def _unpaired(claim: ClaimSpec, runs: list[RunRecord], rule: str, chance: float,
              res: ClaimResult) -> Design | None:  # fmt: skip
    a: list[float] = []
    b: list[float] = []
    members: tuple[list[RunRecord], list[RunRecord]] = ([], [])
    cells: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        v = run_value(r, claim.metric, rule, chance)
        if v is None:
            continue
        value = r.config.get(claim.field or "")
        if value == claim.control:
            group = "control"
        elif in_group(value, claim.treatment, claim.control):
            group = "treatment"
        else:
            continue
        (a if group == "treatment" else b).append(v)
        members[0 if group == "treatment" else 1].append(r)
        cells.setdefault((group, _condition(r.config, ())), []).append(v)
    res.n = len(a) + len(b)
    res.statistic = "Welch t"
    if len(a) < 2 or len(b) < 2:
        res.reason = (
            f"{len(a)} treatment and {len(b)} control run(s): an unpaired test needs at least 2 "
            "seeds per group"
        )
        return None
    if _all_at_chance([*members[0], *members[1]], claim.metric, chance):
        res.reason = f"every run is at chance ({chance:g}%): nothing was learned"
        return None
    if np.std(a) == 0 and np.std(b) == 0:
        res.reason = "both groups are constant across seeds: no spread to test"
        return None
    margin = claim.margin or 0.0
    noninferiority = claim.test == "noninferiority"
    alt = "greater" if noninferiority else claim.direction
    w = welch_test(a, b, alt, margin)
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    pivot = Pivot(w.mean_diff, se, w.df)
    res.estimate, res.value, res.df = w.mean_diff, w.t, w.df
    res.p = float(pivot.p(-margin, alt))
    res.p_two_sided = float(pivot.p(-margin, "two-sided"))
    res.details = (
        f"treatment {np.mean(a):.2f}% (n={len(a)}), control {np.mean(b):.2f}% (n={len(b)}); "
        f"df = {w.df:.1f}; Mann-Whitney U = {w.mann_whitney_u:g}, p = {w.mann_whitney_p:.4g} "
        "(ranks: no normal spread assumed; uncorrected, not the declared test)"
        + (f"; margin -{margin:g} ({claim.margin_reason})" if noninferiority else "")
    )
    res.mixed, res.note = _stragglers(members, claim.metric, chance, unpaired=True)
    _add_note(res, _pooled_conditions(members))
    clusters: list[Cluster] = [{group: values} for (group, _), values in cells.items()]
    strata = [group for group, _ in cells]
    parts = components(clusters)
    res.spread = parts.describe()
    sd = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    per_group = min(len(a), len(b))
    # Non-inferiority's power is to show it when the true difference is zero: the margin away.
    effect = margin if noninferiority else claim.min_effect

    def advise(level: float, contra: float) -> tuple[float | None, int | None, str, str]:
        two = alt == "two-sided"
        if effect is None:
            return None, None, "", _no_effect_declared()
        power = welch_power(effect, sd, per_group, level, two)
        needed = smallest(lambda k: welch_power(effect, sd, k, level, two), limit=1_000_000)
        what = "the margin" if noninferiority else "the smallest effect of interest"
        text = (
            f"about {needed:,} runs (seeds) per group (now {per_group}) would give {POWER:.0%} "
            f"power for {what} ({effect:g})"
            if needed
            else f"over a million runs per group would be needed for {what} ({effect:g})"
        )
        if needed is None or needed > 100:
            text += (
                f": the seed-to-seed spread (SD {sd:.2f}) is what stands in the way, so a recipe "
                "that trains every seed alike would decide it sooner than more seeds"
            )
        return power, needed, "runs per group", text

    def boot() -> Bootstrap | None:
        return hierarchical_bootstrap(
            clusters, welch_statistic("treatment", "control"), strata=strata
        )

    return Design(pivot, -margin, advise, boot)


def _correlation(claim: ClaimSpec, runs: list[RunRecord], rule: str, chance: float,
                 res: ClaimResult) -> Design | None:  # fmt: skip
    clusters = _clusters(runs, claim, rule, chance, claim.x or "")
    xs, ys = [], []
    for groups in clusters.values():
        base = 0.0
        if claim.relative_to is not None:
            if claim.relative_to not in groups:
                continue
            base = float(np.mean(groups[claim.relative_to]))
        for x, vs in groups.items():
            if claim.relative_to is not None and x == claim.relative_to:
                continue
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                continue
            xs.append(float(x))
            ys.append(float(np.mean(vs)) - base)
    res.n = len(xs)
    res.statistic = "r"
    if len(xs) < 3:
        res.reason = f"only {len(xs)} point(s) with a baseline under the same condition; need 3"
        return None
    if _all_at_chance(runs, claim.metric, chance):
        res.reason = f"every run is at chance ({chance:g}%): nothing was learned"
        return None
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        res.reason = f"{'x' if len(set(xs)) < 2 else 'y'} is constant: r is undefined"
        return None
    if len(xs) < 4:
        res.reason = "3 points: Fisher's interval for r needs at least 4"
        return None
    alt = claim.direction
    c = pearson(xs, ys, alternative=alt)
    r = max(-0.999999, min(0.999999, c.r))
    pivot = Pivot(r, 1 / math.sqrt(c.n - 3), None, fisher=True)
    res.estimate = res.value = c.r
    res.df = float(c.n - 2)
    res.p = float(pivot.p(0.0, alt))
    res.p_two_sided = pearson(xs, ys).p  # the exact t-test p, as the study printed it
    res.details = (
        f"mean y {np.mean(ys):+.2f} points over {len(set(xs))} values of {claim.x}; the exact "
        f"t-test p (declared direction) {c.p:.4g}, Fisher's z p {res.p:.4g} (the verdict's)"
    )
    parts = components(list(clusters.values()))
    res.spread = parts.describe()
    points = len(xs)

    def advise(level: float, contra: float) -> tuple[float | None, int | None, str, str]:
        effect = claim.min_effect
        if effect is None:
            return None, None, "", _no_effect_declared()
        power = correlation_power(effect, points, level, alt)
        needed = correlation_n_needed(effect, level, POWER, alt)
        return (
            power,
            needed,
            "points",
            (
                f"about {needed} points (x values x conditions; now {points}) would give "
                f"{POWER:.0%} power for r = {effect:g}; seeds do not add points (each point "
                "averages its seeds), so the lever is the design's axes"
            ),
        )

    def boot() -> Bootstrap | None:
        return hierarchical_bootstrap(
            list(clusters.values()), correlation_statistic(claim.relative_to)
        )

    return Design(pivot, 0.0, advise, boot)


def _reference(claim: ClaimSpec, config: Mapping[str, Any]) -> float | str | None:
    """The published value of a run's cell in the claim's reference tables (``"nan"``: the
    published run diverged; ``None``: no published cell matches)."""
    for table in claim.reference:
        value = published_value(published_runs(table), config)
        if value is not None:
            return value
    return None


def _seed_pool(claim: ClaimSpec, runs: list[RunRecord], rule: str, chance: float
               ) -> tuple[float, int, int]:  # fmt: skip
    """(pooled within-cell seed variance, its degrees of freedom, cells pooled) over the
    claim's cells that learned; a cell whose every run is at chance has no spread to give."""
    cells: dict[str, list[RunRecord]] = {}
    for r in runs:
        cells.setdefault(_condition(r.config, ()), []).append(r)
    groups = [
        [v for r in members if (v := run_value(r, claim.metric, rule, chance)) is not None]
        for members in cells.values()
        if not _all_at_chance(members, claim.metric, chance)
    ]
    var, df = pooled_variance(groups)
    return (math.nan if var is None else var), df, sum(len(g) > 1 for g in groups)


def _equivalence(claim: ClaimSpec, runs: list[RunRecord], rule: str, chance: float,
                 res: ClaimResult, pool_from: list[RunRecord] | None = None
                 ) -> Design | None:  # fmt: skip
    """Ours against a published cell: is the deviation within +-margin?

    The published figure is one run of the study's protocol, so if ours is that protocol the
    deviation of our k-seed mean has variance s^2 / k + s^2, s the seed-to-seed SD (pooled
    over the claim's cells that learned, ``pool_from``: one cell rarely has seeds enough).
    Supported when both bounds lie inside the margin (TOST), contradicted when one lies beyond.
    """
    res.statistic = "t (TOST)"
    if not runs:
        res.reason = "no run of it has finished yet"
        return None
    refs = {_hashable(_reference(claim, r.config)) for r in runs}
    if refs == {None}:
        res.reason = f"no published cell of {', '.join(claim.reference)} matches these runs"
        return None
    if len(refs) > 1:
        res.reason = (
            f"these runs match {len(refs)} different published cells: add the fields that tell "
            "them apart to the claim's 'by'"
        )
        return None
    ref = refs.pop()
    if ref == "nan":
        if rule == "exclude":
            res.reason = "the published run diverged; the 'exclude' rule leaves no reference"
            return None
        ref = chance
    values = [v for r in runs if (v := run_value(r, claim.metric, rule, chance)) is not None]
    res.n = len(values)
    if not values:
        res.reason = "no run of this cell counts under this rule"
        return None
    mean, k = float(np.mean(values)), len(values)
    res.estimate = mean - float(ref)  # shown even when no interval can be put around it
    res.details = f"ours {mean:.2f}% (n={k}), published {float(ref):.2f}%"
    var, df, cells = _seed_pool(claim, pool_from or runs, rule, chance)
    if not df:
        res.reason = (
            "one seed per cell: the seed-to-seed spread is unmeasured, so how far a published "
            "single run may fall from ours cannot be said; run a second seed of the cells"
        )
        return None
    sd, margin = math.sqrt(var), float(claim.margin or 0.0)
    pivot = Pivot(res.estimate, sd * math.sqrt(1 / k + 1), float(df))
    res.value, res.df = pivot.estimate / pivot.se, float(df)
    res.p = float(support_p(pivot, EQUIVALENCE, 0.0, margin))
    res.p_two_sided = float(pivot.p(0.0, "two-sided"))
    res.details += f" ({', '.join(claim.reference)}); margin +-{margin:g} ({claim.margin_reason})"
    res.spread = f"seed SD {sd:.2f} (pooled over {cells} cell(s) that learned, df {df})"

    def planned(seeds: int) -> tuple[float, int]:
        """The deviation's standard error and the pooled df were every cell at ``seeds``."""
        return sd * math.sqrt(1 / seeds + 1), max(1, cells * (seeds - 1))

    def power(seeds: int, level: float) -> float:
        se, dof = planned(seeds)
        q = float(stats.t.isf(level, dof))
        return max(0.0, 2 * float(stats.t.cdf(margin / se - q, dof)) - 1)

    beyond = abs(res.estimate) - margin  # how far past the margin the deviation lies now

    def beyond_power(seeds: int, level: float) -> float:
        """The chance that the bound nearer the reference lands past the margin, were the
        deviation what it is now (a planning guess, not a measured power)."""
        se, dof = planned(seeds)
        return float(stats.t.sf(float(stats.t.isf(level, dof)) - beyond / se, dof))

    def advise(level: float, contra: float) -> tuple[float | None, int | None, str, str]:
        if beyond > 0:  # what would decide it is showing the deviation, not equivalence
            more = smallest(lambda m: beyond_power(m, contra), limit=1000)
            past = f"the deviation lies {beyond:.1f} points past the +-{margin:g} margin"
            if more is None:
                return beyond_power(k, contra), None, "", (
                    f"{past}, but the published figure is one run whose own seed spread (SD "
                    f"{sd:.2f} if it is ours) keeps any interval around it wider than that: no "
                    "number of seeds shows it beyond the margin in this cell (other cells may)"
                )  # fmt: skip
            return beyond_power(k, contra), more, "seeds per cell", (
                f"{past}: about {more} seeds per cell (now {k}) would show it beyond the margin "
                f"with {POWER:.0%} power, were it as large as estimated (seed SD {sd:.2f})"
            )  # fmt: skip
        needed = smallest(lambda m: power(m, level), limit=1000)
        if needed is not None:
            text = (
                f"about {needed} seeds per cell (now {k}) would give {POWER:.0%} power to show "
                f"a reading that matches the study within +-{margin:g} points"
            )
        else:
            text = (
                f"no number of seeds: the published figure is one run, whose own seed spread "
                f"(SD {sd:.2f} if it is ours) limits the test; a wider margin would decide it"
            )
        return power(k, level), needed, "seeds per cell", text

    return Design(pivot, 0.0, advise)


TestFunction = Callable[[ClaimSpec, list[RunRecord], str, float, ClaimResult], Design | None]
# One place per test type: its statistics and its Design. Parsing (claims.TESTS) names them.
TEST_TYPES: dict[str, TestFunction] = {
    "paired": _paired,
    "welch": _unpaired,
    "noninferiority": _unpaired,
    "correlation": _correlation,
    "equivalence": _equivalence,
}


# --- one claim, every stratum ---------------------------------------------------------------


def evaluate_claim(
    claim: ClaimSpec,
    runs: list[RunRecord],
    rule: str,
    chance: float = 10.0,
    sources: list[RunRecord] | None = None,
    caveat: str = "",
) -> list[ClaimResult]:
    """Decide ``claim`` from ``runs`` under divergence ``rule``; one result per ``by`` stratum,
    each read at the claim's own alpha (:func:`apply_holm` re-reads a family at Holm's levels).
    """
    runs = [r for r in runs if r.finished_ok and matches(r.config, claim.where)]
    strata: dict[str, list[RunRecord]] = {}
    for r in runs:
        label = ", ".join(f"{b}={r.config.get(b)}" for b in claim.by)
        strata.setdefault(label, []).append(r)
    if not strata:
        strata[""] = []
    dead = _dead_source(sources or [], chance)
    results = []
    for label, members in sorted(strata.items()):
        res = ClaimResult(
            claim.id,
            claim.statement,
            rule,
            claim.test,
            claim.hypothesis,
            direction=_direction(claim),
            stratum=label,
            alpha=claim.alpha,
            family=claim.family,
            published=claim.published,
            caveat=caveat,
            min_effect=claim.margin if claim.test == "equivalence" else claim.min_effect,
        )
        compared = _compared(claim, members)
        if claim.test in ("paired", "correlation"):
            compared = _matched_runs(claim, compared)
        if rule == "exclude":
            res.n_excluded = sum(at_chance_run(r, claim.metric, chance) for r in compared)
        if dead:
            res.reason = dead
        elif claim.test == "equivalence":  # the seed spread is pooled over every cell
            res.design = _equivalence(claim, members, rule, chance, res, runs)
        else:
            res.design = TEST_TYPES[claim.test](claim, members, rule, chance, res)
        if claim.test != "noninferiority" and claim.test != "welch":
            mixed, stalled = _stragglers(_by_group(claim, compared), claim.metric, chance)
            res.mixed = res.mixed or mixed
            _add_note(res, stalled)
        mix = precision_mix(r.precision for r in compared)
        if mix:
            _add_note(
                res,
                f"its runs were computed at more than one precision ({mix}: `auto` resolves per "
                "machine), so a difference between groups may include the arithmetic's",
            )
        if res.design is not None:
            _opposite(res)
            res.p_contra = float(
                contradiction_p(
                    res.design.pivot, res.direction, res.design.null, _claim_effect(res)
                )
            )
            finalize(res, res.alpha)
        results.append(res)
    return results


def _direction(claim: ClaimSpec) -> str:
    if claim.test == "noninferiority":
        return "greater"
    return EQUIVALENCE if claim.test == "equivalence" else claim.direction


def _add_note(res: ClaimResult, text: str) -> None:
    if text:
        res.note = f"{res.note}; {text}" if res.note else text


def _claim_effect(res: ClaimResult) -> float | None:
    """The smallest effect a contradiction is measured against (none: only a reversal)."""
    return None if res.test == "noninferiority" else res.min_effect


def finalize(res: ClaimResult, level: float, contra: float | None = None) -> None:
    """Read a tested claim's verdict, interval and advice at its Holm levels: ``level`` for
    support (the bound in the claimed direction), ``contra`` for contradiction (the other)."""
    design = res.design
    if design is None:
        return
    contra = level if contra is None else contra
    claim_effect = _claim_effect(res)
    outcome, low, high = read(design.pivot, level, contra, res.direction, design.null, claim_effect)
    res.level, res.contra_level, res.ci_low, res.ci_high = level, contra, low, high
    res.confidence = confidence_label(level, contra, res.direction)
    if outcome != SUPPORTED and res.mixed and res.rule == "chance":
        # "no effect" and "some seeds died" look alike to a test over few seeds
        res.reason = (
            f"{'contradicted' if outcome == CONTRADICTED else 'not supported'} at its level "
            f"while {res.mixed}: counted at chance they can decide it by themselves, and no "
            "effect cannot be told from runs that died (the 'exclude' rule drops them)"
        )
        outcome = guard(outcome, True, res.rule)
    res.qualifier = qualify(outcome, low, high, res.direction, design.null, claim_effect)
    if outcome == CONTRADICTED and res.test == "noninferiority":
        res.qualifier = f"inferior: the upper bound {high:+.2f} lies below the margin"
    res.outcome = outcome
    power, needed, lever, advice = design.advise(level, contra)
    res.power, res.n_needed, res.lever = power, needed, lever
    res.advice = advice if res.verdict.startswith(INCONCLUSIVE) else ""


def bootstrap_all(results: Iterable[ClaimResult]) -> None:
    """Attach each tested claim's hierarchical bootstrap interval (seeded; a few hundred ms
    each, so the report asks for it and the simulations do not)."""
    for res in results:
        if res.design is None:
            continue
        boot = res.design.bootstrap()
        if boot is not None:
            res.boot_low, res.boot_high, res.boot_reps = boot.low, boot.high, boot.reps


def _by_group(claim: ClaimSpec, runs: list[RunRecord]) -> tuple[list[RunRecord], ...]:
    if claim.test in ("correlation", "equivalence"):
        return (runs,)
    field = claim.field or ""
    treated = [r for r in runs if in_group(r.config.get(field), claim.treatment, claim.control)]
    control = [r for r in runs if r.config.get(field) == claim.control]
    return treated, control


def _matched_runs(claim: ClaimSpec, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs of the conditions a paired test or a correlation can use, whatever their
    status: a paired condition holding both groups, a correlation's holding its baseline."""
    key = (claim.x if claim.test == "correlation" else claim.field) or ""
    by_condition: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_condition.setdefault(_condition(r.config, (key,)), []).append(r)
    out = []
    for members in by_condition.values():
        values = [r.config.get(key) for r in members]
        if claim.test == "correlation":
            others = [v for v in values if v != claim.relative_to]
            usable = bool(others) and (claim.relative_to is None or claim.relative_to in values)
        else:
            usable = claim.control in values and any(
                in_group(v, claim.treatment, claim.control) for v in values
            )
        if usable:
            out += members
    return out


def reader(claim: ClaimSpec, config: Mapping[str, Any]) -> str | None:
    """The :func:`look_key` of the claim's stratum that would read a run of ``config``; None
    when the claim reads no such run (another condition, or outside its ``where``)."""
    if not matches(config, claim.where):
        return None
    if claim.test not in ("correlation", "equivalence"):
        v = config.get(claim.field or "")
        if not (v == claim.control or in_group(v, claim.treatment, claim.control)):
            return None
    label = ", ".join(f"{b}={config.get(b)}" for b in claim.by)
    return f"{claim.id} [{label}]" if label else claim.id


def _compared(claim: ClaimSpec, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs a claim's test reads: a correlation's (an equivalence's) every run, else its
    two groups' runs."""
    if claim.test in ("correlation", "equivalence"):
        return runs
    return [
        r
        for r in runs
        if (v := r.config.get(claim.field or "")) == claim.control
        or in_group(v, claim.treatment, claim.control)
    ]


def _dead_source(sources: list[RunRecord], chance: float) -> str:
    done = [s for s in sources if s.finished_ok]
    if not done:
        return ""
    if all(at_chance_run(s, "val_acc", chance) for s in done):
        shown = ", ".join(
            "diverged" if s.result.val_acc is None else f"{s.result.val_acc:.1f}%" for s in done
        )
        return f"the source model learned nothing (validation accuracy {shown}, chance {chance:g}%)"
    return ""


def _all_at_chance(runs: Sequence[RunRecord], metric: str, chance: float) -> bool:
    return bool(runs) and all(at_chance_run(r, metric, chance) for r in runs)


def _opposite(res: ClaimResult) -> None:
    """Name a significant effect against the claimed direction (at the claim's alpha)."""
    if res.design is None or res.direction in ("two-sided", EQUIVALENCE):
        return
    other = "less" if res.direction == "greater" else "greater"
    p = float(res.design.pivot.p(res.design.null, other))
    if p < res.alpha:
        _add_note(res, f"the opposite effect is significant (one-sided p = {p:.4g})")


def _stragglers(
    groups: Sequence[list[RunRecord]], metric: str, chance: float, unpaired: bool = False
) -> tuple[str, str]:
    """(summary, note) naming the runs that ended at chance beside runs that learned."""
    at = [sum(at_chance_run(r, metric, chance) for r in g) for g in groups]
    total = sum(len(g) for g in groups)
    if not any(at) or sum(at) == total:
        return "", ""
    names = NAMES if len(groups) == 2 else ("",)
    parts = [
        f"{k} of {len(g)} {name + ' ' if name else ''}run(s)"
        for k, g, name in zip(at, groups, names)
        if k
    ]
    summary = f"{' and '.join(parts)} ended at chance beside runs that learned"
    if unpaired:
        return summary, (
            f"{' and '.join(parts)} ended at chance (never learned, died or diverged) while "
            "other seeds learned: the means and the t interval include them, and a spread with "
            "two modes is not what the t test assumes; more seeds (or a recipe that trains "
            "every seed) would decide it better"
        )
    return summary, (
        f"{' and '.join(parts)} ended at chance (stalled or diverged; judged by a binomial "
        "test at each run's evaluation count) while others learned: the cell means include "
        "them under 'chance', and 'exclude' drops them"
    )


def _pooled_conditions(groups: Sequence[list[RunRecord]]) -> str:
    """A note naming the run fields besides the seed that vary within a group: an unpaired
    test reads a group's runs as replicates of one condition."""
    parts = []
    for name, runs in zip(NAMES, groups):
        varying = varying_fields(runs, exclude=("seed",))
        if varying:
            parts.append(f"the {name} group's runs differ in {', '.join(varying)}")
    if not parts:
        return ""
    return (
        f"{' and '.join(parts)}, not only in seed: the test reads them as replicates of one "
        "condition, so it compares the groups' averages over those conditions and counts "
        "their differences as noise (a paired test over matched conditions asks it sharper)"
    )


# --- families ------------------------------------------------------------------------------


def look_key(r: ClaimResult) -> str:
    """A claim's name in a sequential study's looks: its id, and its stratum if any."""
    return f"{r.id} [{r.stratum}]" if r.stratum else r.id


def claim_id(key: str) -> str:
    """The claim id of a :func:`look_key` (or of :func:`reader`'s key)."""
    return key.split(" [")[0]


def apply_holm(
    results: list[ClaimResult],
    nominal: Callable[[np.ndarray], np.ndarray] | None = None,
    frozen: Mapping[tuple[str, str], str] | None = None,
    absent: Mapping[str, int] | None = None,
) -> None:
    """Holm within each (family, rule), twice: over the support p-values and over the
    contradiction p-values; each tested claim is re-read at its two steps' levels (its
    interval and its verdict agree). Untested claims take no part, except the ``absent``
    ones: per family, claims that another part of a sequential study decides, counted here
    as never rejected.

    At a look of a sequential study, ``nominal`` maps the steps' levels to the look's
    (``sequential.at_look``) and ``frozen`` holds the verdicts of earlier looks by
    (:func:`look_key`, rule): a claim supported earlier keeps its rejection at the head of the
    support steps (its level passes on to the others, as Holm's does), one contradicted earlier
    at the head of the contradiction steps; neither is read again."""
    frozen = frozen or {}
    families: dict[tuple[str, str], list[ClaimResult]] = {}
    for r in results:
        if r.design is not None and r.p is not None:
            families.setdefault((r.family, r.rule), []).append(r)
    for members in families.values():
        alpha = min(m.alpha for m in members)
        done = {id(m): frozen.get((look_key(m), m.rule)) for m in members}
        live = [m for m in members if done[id(m)] is None]
        for m in members:
            if done[id(m)] is not None:
                m.outcome = str(done[id(m)])

        # the claims another part decides trail, as frozen ones not rejected do
        left_out = (absent or {}).get(members[0].family, 0)
        words = [done[id(m)] for m in members] + [None] * left_out
        support_ps = [float(m.p if m.p is not None else 1.0) for m in live]
        contra_ps = [1.0 if m.p_contra is None else float(m.p_contra) for m in live]
        levels = _steps(words, SUPPORTED, support_ps, alpha, nominal)
        contra = _steps(words, CONTRADICTED, contra_ps, alpha, nominal)
        for r, p_adj, level, con in zip(live, holm(support_ps), levels, contra, strict=True):
            r.p_holm = p_adj if not frozen else None  # a look's p is not Holm's over the study
            finalize(r, level, con)


def _steps(
    frozen: list[str | None],
    word: str,
    live_ps: list[float],
    alpha: float,
    nominal: Callable[[np.ndarray], np.ndarray] | None,
) -> list[float]:
    """The Holm levels of a family's live claims: those frozen at ``word`` lead (rejected),
    the others frozen trail (never rejected again)."""
    head = sum(w == word for w in frozen)
    tail = len(frozen) - len(live_ps) - head
    ps = [0.0] * head + live_ps + [1.0] * tail
    return [float(x) for x in holm_levels(ps, alpha, nominal)[0][head : head + len(live_ps)]]


def evaluate_claims(
    claims: list[tuple[ClaimSpec, list[RunRecord], list[RunRecord], str]],
    chance: float = 10.0,
    bootstrap: bool = True,
    nominal: Callable[[np.ndarray], np.ndarray] | None = None,
    frozen: Mapping[tuple[str, str], str] | None = None,
    absent: Mapping[str, int] | None = None,
) -> list[ClaimResult]:
    """Evaluate (claim, runs, sources, caveat) under both rules, Holm-adjusted per family
    (at a sequential study's look: ``nominal``, ``frozen`` and ``absent``, see
    :func:`apply_holm`)."""
    results = [
        res
        for rule in RULES
        for claim, runs, sources, caveat in claims
        for res in evaluate_claim(claim, runs, rule, chance, sources, caveat)
    ]
    apply_holm(results, nominal, frozen, absent)
    if bootstrap:
        bootstrap_all(results)
    return results


def analyze_published(
    studies: list[tuple[str, list[ClaimSpec], list[str]]], chance: float = 10.0
) -> list[ClaimResult]:
    """Decide each study's claims on its published tables, under both divergence rules.

    ``studies`` holds (study name, its claims, the published tables it reproduces).
    """
    todo: list[tuple[ClaimSpec, list[RunRecord], list[RunRecord], str]] = []
    unpublished: set[str] = set()
    for _name, claims, tables in studies:
        runs = [r for t in tables for r in published_runs(t)]
        todo += [(c, runs, [], "") for c in claims]
        if not tables:
            unpublished |= {c.id for c in claims}
    results = evaluate_claims(todo, chance)
    for r in results:
        if r.id in unpublished:
            r.reason = "the study published no per-run numbers for it (only a figure)"
    return results
