"""Claims declared in study files, and the tests that decide them.

A study file states its hypotheses before any run (``[[claims]]``): the statement, the
metric, the two groups (or a correlation's x), the test, its direction, alpha, the Holm
family and how diverged runs count. :func:`evaluate_claim` decides one claim from a study's
runs (plain dictionaries, as the store returns them) under one divergence rule:

- ``chance``: a diverged run counts at chance accuracy (the study's rule: "nan" = 10%);
- ``exclude``: diverged runs are dropped, and with them the pairs they belong to.

Seeds are replicates, not conditions: paired tests and correlations first average the seeds
of each condition, so n counts conditions. Unpaired tests (Welch, non-inferiority) compare
the runs of two groups, whose seeds are the independent units. A claim whose runs cannot
decide it (too few units, every run at chance, no spread, a source model that learned
nothing) is *inconclusive*, with the reason, never a verdict and never ``nan``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from ..errors import SqueezelabError
from ..results.records import CHANCE_BAND, RunRecord, precision_mix
from .selection import varying_fields
from .stats import (
    ALPHA,
    correlation_n_needed,
    correlation_power,
    holm,
    one_sided_ci,
    paired_test,
    pearson,
    t_power,
    t_units_needed,
    welch_test,
)

TESTS = ("paired", "welch", "noninferiority", "correlation")
DIRECTIONS = ("greater", "less", "two-sided")
RULES = ("chance", "exclude")
METRICS = ("test_acc", "val_acc")
ANY = "*"  # a treatment value matching every value but the control's
POWER = 0.8


class ClaimError(SqueezelabError, ValueError):
    """A ``[[claims]]`` or ``[report]`` entry of a study file is malformed."""


@dataclass(frozen=True)
class ClaimSpec:
    """One pre-registered claim of a study file."""

    id: str
    statement: str
    test: str
    metric: str = "test_acc"
    field: str | None = None  # the run field whose value defines the two groups
    treatment: Any = None
    control: Any = None
    x: str | None = None  # correlation: the run field on the x axis
    relative_to: Any = None  # correlation: y is the metric minus the run at x = this value
    direction: str = "greater"
    where: dict[str, list[Any]] = dc_field(default_factory=dict)
    by: tuple[str, ...] = ()
    margin: float | None = None
    margin_reason: str = ""
    alpha: float = ALPHA
    family: str = "claims"
    diverged: str = "chance"
    min_effect: float | None = None  # smallest effect of interest, for the power analysis
    published: str = ""  # the study's own figure, shown beside ours

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hypothesis(self) -> str:
        """The tested hypothesis in words."""
        sign = {"greater": ">", "less": "<", "two-sided": "!="}[self.direction]
        if self.test == "correlation":
            y = f"{self.metric} - {self.metric}[{self.x}={self.relative_to}]"
            if self.relative_to is None:
                y = self.metric
            return f"r({self.x}, {y}) {sign} 0"
        groups = f"{self.field}={_show(self.treatment)} vs {self.field}={_show(self.control)}"
        if self.test == "noninferiority":
            return f"{groups}: difference > -{self.margin:g} points"
        return f"{groups}: difference {sign} 0"


def _show(value: Any) -> str:
    return "none" if value is None else "any other" if value == ANY else str(value)


_KEYS = set(ClaimSpec.__dataclass_fields__)


def parse_claim(
    raw: Any, where: str, coerce: Callable[[str, Any], Any], fields: Sequence[str]
) -> ClaimSpec:
    """Validate one ``[[claims]]`` table; ``coerce(field, value)`` types run-field values."""
    if not isinstance(raw, dict):
        raise ClaimError(f"{where}: each [[claims]] entry must be a table, got {raw!r}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ClaimError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("id", "statement", "test"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ClaimError(f"{where}: {key!r} is required (a non-empty string)")
    where = f"{where} claim {raw['id']!r}"
    _one_of(where, "test", raw["test"], TESTS)
    _one_of(where, "metric", raw.get("metric", "test_acc"), METRICS)
    _one_of(where, "direction", raw.get("direction", "greater"), DIRECTIONS)
    _one_of(where, "diverged", raw.get("diverged", "chance"), RULES)
    values = dict(raw)

    def run_field(key: str) -> str:
        name = raw.get(key)
        if not isinstance(name, str) or name not in fields:
            raise ClaimError(f"{where}: {key!r} must name a run field, got {name!r}")
        return name

    def typed(name: str, value: Any) -> Any:
        if value == ANY or (name == "init" and value == "none"):
            return None if value == "none" else ANY
        try:
            return coerce(name, value)
        except ValueError as err:
            raise ClaimError(f"{where}: {err}") from None

    if raw["test"] == "correlation":
        values["x"] = run_field("x")
        if "relative_to" in raw:
            values["relative_to"] = typed(values["x"], raw["relative_to"])
    else:
        name = values["field"] = run_field("field")
        for key in ("treatment", "control"):
            if key not in raw:
                raise ClaimError(f"{where}: {key!r} is required for a {raw['test']} test")
            values[key] = typed(name, raw[key])
        if values["control"] == ANY:
            raise ClaimError(f"{where}: 'control' must be one value, not {ANY!r}")
    if raw["test"] == "noninferiority":
        margin = raw.get("margin")
        if not _finite(margin) or margin <= 0:
            raise ClaimError(f"{where}: a non-inferiority test needs 'margin' > 0 (points)")
        if not str(raw.get("margin_reason", "")).strip():
            raise ClaimError(f"{where}: state why the margin is {margin} ('margin_reason')")
        if raw.get("direction", "greater") != "greater":
            raise ClaimError(f"{where}: a non-inferiority test is one-sided: direction 'greater'")
        values["margin"] = float(margin)
    filt = raw.get("where", {})
    if not isinstance(filt, dict):
        raise ClaimError(f"{where}: 'where' must be a table of run field = [values]")
    values["where"] = {}
    for name, allowed in filt.items():
        if name not in fields:
            raise ClaimError(f"{where}: 'where' names unknown run field {name!r}")
        allowed = allowed if isinstance(allowed, list) else [allowed]
        values["where"][name] = [typed(name, v) for v in allowed]
    by = raw.get("by", [])
    if not isinstance(by, list) or any(b not in fields for b in by):
        raise ClaimError(f"{where}: 'by' must be a list of run fields, got {by!r}")
    values["by"] = tuple(by)
    alpha = raw.get("alpha", ALPHA)
    if not _finite(alpha) or not 0 < alpha < 1:
        raise ClaimError(f"{where}: 'alpha' must lie in (0, 1), got {alpha!r}")
    min_effect = raw.get("min_effect")
    if min_effect is not None and (not _finite(min_effect) or min_effect <= 0):
        raise ClaimError(f"{where}: 'min_effect' must be a positive number, got {min_effect!r}")
    for key in ("family", "published", "margin_reason"):
        if key in raw and not isinstance(raw[key], str):
            raise ClaimError(f"{where}: {key!r} must be a string")
    return ClaimSpec(**values)


def claim_from_dict(values: dict[str, Any]) -> ClaimSpec:
    """Rebuild a claim stored as a dict (as the store keeps a study's spec)."""
    data = {k: v for k, v in values.items() if k in _KEYS}
    data["by"] = tuple(data.get("by", ()))
    return ClaimSpec(**data)


def _one_of(where: str, key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ClaimError(f"{where}: {key!r} must be one of {', '.join(allowed)}; got {value!r}")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- evaluation -----------------------------------------------------------------------------


@dataclass
class ClaimResult:
    """The outcome of one claim (one stratum of it) under one divergence rule."""

    id: str
    statement: str
    rule: str
    test: str
    hypothesis: str
    stratum: str = ""
    n: int = 0
    n_excluded: int = 0  # diverged runs dropped under the "exclude" rule
    estimate: float | None = None  # mean difference (points) or Pearson r
    ci_low: float | None = None
    ci_high: float | None = None
    statistic: str = ""
    value: float | None = None
    df: float | None = None
    p: float | None = None
    p_two_sided: float | None = None
    p_holm: float | None = None
    power: float | None = None
    n_needed: int | None = None
    power_declared: bool = False  # power computed at a declared effect (min_effect, margin)
    alpha: float = ALPHA
    family: str = "claims"
    reason: str = ""  # why the claim is inconclusive
    note: str = ""
    caveat: str = ""  # why the claim was not tested as the study did
    interim: str = ""  # the study's declared runs that have not finished, if any
    published: str = ""
    details: str = ""
    mixed: str = ""  # runs at chance beside runs that learned (unpaired tests), if any

    @property
    def label(self) -> str:
        return f"{self.statement} [{self.stratum}]" if self.stratum else self.statement

    @property
    def verdict(self) -> str:
        if self.reason:
            word = "inconclusive"
        else:
            p = self.p_holm if self.p_holm is not None else self.p
            word = "supported" if p is not None and p < self.alpha else "not supported"
            if self.caveat:
                word += " (not tested as the study did)"
        # Read on part of the declared runs: the declared test is the full study's.
        return f"{word} (interim)" if self.interim else word

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict
        return {k: _json_safe(v) for k, v in out.items()}


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def matches(config: dict[str, Any], where: dict[str, list[Any]]) -> bool:
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


def _condition(config: dict[str, Any], drop: Iterable[str]) -> str:
    drop = {*drop, "seed"}
    return json.dumps({k: v for k, v in config.items() if k not in drop}, sort_keys=True)


def run_value(run: dict[str, Any], metric: str, rule: str, chance: float) -> float | None:
    """A run's metric under a divergence rule; ``None`` when the run does not count."""
    if run.status == "diverged":
        return chance if rule == "chance" else None
    value = getattr(run.result, metric)
    return None if value is None or not math.isfinite(value) else float(value)


def evaluate_claim(
    claim: ClaimSpec,
    runs: list[RunRecord],
    rule: str,
    chance: float = 10.0,
    sources: list[RunRecord] | None = None,
    caveat: str = "",
) -> list[ClaimResult]:
    """Decide ``claim`` from ``runs`` under divergence ``rule``; one result per ``by`` stratum."""
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
            stratum=label,
            alpha=claim.alpha,
            family=claim.family,
            published=claim.published,
            caveat=caveat,
        )
        res.n_excluded = sum(r.status == "diverged" for r in members) if rule == "exclude" else 0
        if dead:
            res.reason = dead
        elif claim.test == "correlation":
            _correlation(claim, members, rule, chance, res)
        elif claim.test == "paired":
            _paired(claim, members, rule, chance, res)
        else:
            _unpaired(claim, members, rule, chance, res)
        mix = precision_mix(r.precision for r in _compared(claim, members))
        if mix:
            mixed = (
                f"its runs were computed at more than one precision ({mix}: `auto` resolves per "
                "machine), so a difference between groups may include the arithmetic's"
            )
            res.note = f"{res.note}; {mixed}" if res.note else mixed
        results.append(res)
    return results


def _compared(claim: ClaimSpec, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs a claim's test reads: a correlation's every run, else its two groups' runs."""
    if claim.test == "correlation":
        return runs
    return [
        r
        for r in runs
        if (v := r.config.get(claim.field)) == claim.control
        or in_group(v, claim.treatment, claim.control)
    ]


def _dead_source(sources: list[RunRecord], chance: float) -> str:
    accs = [s.result.val_acc for s in sources if s.finished_ok]
    if not accs:
        return ""
    if all(s.status == "diverged" or _at_chance(a, chance) for s, a in zip(sources, accs)):
        shown = ", ".join("diverged" if a is None else f"{a:.1f}%" for a in accs)
        return f"the source model learned nothing (validation accuracy {shown}, chance {chance:g}%)"
    return ""


def _at_chance(value: float | None, chance: float) -> bool:
    return value is None or abs(value - chance) <= CHANCE_BAND


def _cell_means(
    runs: list[RunRecord], claim: ClaimSpec, rule: str, chance: float, drop: Iterable[str]
) -> dict[str, dict[Any, float]]:
    """Mean metric over seeds per (condition, group value); conditions with no value dropped."""
    key_field = claim.x if claim.test == "correlation" else claim.field
    sums: dict[str, dict[Any, list[float]]] = {}
    for r in runs:
        v = run_value(r, claim.metric, rule, chance)
        if v is None:
            continue
        cond = _condition(r.config, drop)
        sums.setdefault(cond, {}).setdefault(_hashable(r.config.get(key_field)), []).append(v)
    return {c: {g: float(np.mean(vs)) for g, vs in d.items()} for c, d in sums.items()}


def _hashable(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _paired(claim: ClaimSpec, runs: list, rule: str, chance: float, res: ClaimResult) -> None:
    cells = _cell_means(runs, claim, rule, chance, (claim.field,))
    a, b = [], []
    for groups in cells.values():
        treated = [v for g, v in groups.items() if in_group(g, claim.treatment, claim.control)]
        control = groups.get(claim.control)
        if treated and control is not None:
            a.append(float(np.mean(treated)))
            b.append(control)
    res.n = len(a)
    res.statistic = "t"
    if len(a) < 2:
        res.reason = f"only {len(a)} matched condition(s) with both groups; a paired test needs 2"
        return
    if _all_at_chance([*a, *b], chance):
        res.reason = f"every run is at chance ({chance:g}% +- {CHANCE_BAND:g}): nothing was learned"
        return
    d = np.subtract(a, b)
    if np.all(d == d[0]):
        res.reason = f"every pair differs by exactly {d[0]:+.2f} points: no spread to test"
        return
    alt = claim.direction
    t = paired_test(a, b, alternative=alt)
    res.estimate, res.value, res.df, res.p = t.mean_diff, t.t, float(t.n - 1), t.p
    res.p_two_sided = paired_test(a, b).p if alt != "two-sided" else t.p
    res.ci_low, res.ci_high = one_sided_ci(d, alt)
    sd = float(d.std(ddof=1))
    effect = claim.min_effect if claim.min_effect is not None else abs(t.mean_diff)
    res.power_declared = claim.min_effect is not None
    res.power = t_power(effect / sd, t.n, claim.alpha, alt)
    res.n_needed = t_units_needed(effect / sd, claim.alpha, POWER, alt)
    res.details = (
        f"Wilcoxon W = {t.wilcoxon_w:.1f}, p = {t.wilcoxon_p:.4g}; Cohen's d_z = {t.cohen_dz:.2f}; "
        f"treatment mean {np.mean(a):.2f}%, control mean {np.mean(b):.2f}%"
    )
    _opposite(res, alt, lambda other: paired_test(a, b, alternative=other).p)


def _unpaired(claim: ClaimSpec, runs: list, rule: str, chance: float, res: ClaimResult) -> None:
    a, b = [], []
    members: tuple[list[RunRecord], list[RunRecord]] = ([], [])
    for r in runs:
        v = run_value(r, claim.metric, rule, chance)
        if v is None:
            continue
        value = r.config.get(claim.field)
        if value == claim.control:
            b.append(v)
            members[1].append(r)
        elif in_group(value, claim.treatment, claim.control):
            a.append(v)
            members[0].append(r)
    res.n = len(a) + len(b)
    res.statistic = "Welch t"
    if len(a) < 2 or len(b) < 2:
        res.reason = (
            f"{len(a)} treatment and {len(b)} control run(s): an unpaired test needs at least 2 "
            "seeds per group"
        )
        return
    if _all_at_chance([*a, *b], chance):
        res.reason = f"every run is at chance ({chance:g}% +- {CHANCE_BAND:g}): nothing was learned"
        return
    if np.std(a) == 0 and np.std(b) == 0:
        res.reason = "both groups are constant across seeds: no spread to test"
        return
    margin = claim.margin or 0.0
    alt = "greater" if claim.test == "noninferiority" else claim.direction
    w = welch_test(a, b, alt, margin)
    res.estimate, res.ci_low, res.ci_high = w.mean_diff, w.ci_low, w.ci_high
    res.value, res.df, res.p = w.t, w.df, w.p
    res.p_two_sided = welch_test(a, b, "two-sided", margin).p if alt != "two-sided" else w.p
    pooled = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    effect = claim.min_effect if claim.min_effect is not None else abs(w.mean_diff + margin)
    if claim.test == "noninferiority" and claim.min_effect is None:
        effect = margin  # power to reject inferiority when the true difference is zero
    res.power_declared = claim.min_effect is not None or claim.test == "noninferiority"
    n_group = min(len(a), len(b))
    if pooled > 0:
        # Two groups of n: the two-sample t's noncentrality is d * sqrt(n / 2).
        res.power = t_power(effect / pooled / math.sqrt(2), n_group, claim.alpha, alt)
        needed = t_units_needed(effect / pooled / math.sqrt(2), claim.alpha, POWER, alt)
        res.n_needed = needed
    bound = f"{w.ci_low:+.2f}" if alt == "greater" else f"{w.ci_high:+.2f}"
    res.details = (
        f"treatment {np.mean(a):.2f}% (n={len(a)}), control {np.mean(b):.2f}% (n={len(b)}); "
        f"df = {w.df:.1f}; Mann-Whitney U = {w.mann_whitney_u:g}, p = {w.mann_whitney_p:.4g} "
        "(ranks: no normal spread assumed; uncorrected, not the declared test)"
        + (
            f"; one-sided 95% lower bound of the difference {bound} vs margin -{margin:g} "
            f"({claim.margin_reason})"
            if claim.test == "noninferiority"
            else ""
        )
    )
    res.mixed, res.note = _stragglers(a, b, chance)
    pooled = _pooled_conditions(members)
    if pooled:
        res.note = f"{res.note}; {pooled}" if res.note else pooled
    if claim.test != "noninferiority":
        _opposite(res, alt, lambda other: welch_test(a, b, other, margin).p)


def _correlation(claim: ClaimSpec, runs: list, rule: str, chance: float, res: ClaimResult) -> None:
    cells = _cell_means(runs, claim, rule, chance, (claim.x,))
    xs, ys, raw = [], [], []
    for groups in cells.values():
        base = groups.get(claim.relative_to) if claim.relative_to is not None else 0.0
        if base is None:
            continue
        for x, v in groups.items():
            if claim.relative_to is not None and x == claim.relative_to:
                continue
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                continue
            xs.append(float(x))
            ys.append(v - base)
            raw.extend([v] + ([base] if claim.relative_to is not None else []))
    res.n = len(xs)
    res.statistic = "r"
    if len(xs) < 3:
        res.reason = f"only {len(xs)} point(s) with a baseline under the same condition; need 3"
        return
    if _all_at_chance(raw, chance):
        res.reason = f"every run is at chance ({chance:g}% +- {CHANCE_BAND:g}): nothing was learned"
        return
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        res.reason = f"{'x' if len(set(xs)) < 2 else 'y'} is constant: r is undefined"
        return
    alt = claim.direction
    c = pearson(xs, ys, alternative=alt)
    res.estimate = res.value = c.r
    res.p, res.df = c.p, float(c.n - 2)
    res.p_two_sided = pearson(xs, ys).p
    res.ci_low, res.ci_high = _fisher_ci(c.r, c.n, alt)
    effect = claim.min_effect if claim.min_effect is not None else c.r
    res.power_declared = claim.min_effect is not None
    res.power = correlation_power(effect, c.n, claim.alpha, alt)
    res.n_needed = correlation_n_needed(effect, claim.alpha, POWER, alt)
    res.details = f"mean y {np.mean(ys):+.2f} points over {len(set(xs))} values of {claim.x}"
    _opposite(res, alt, lambda other: pearson(xs, ys, alternative=other).p)


def _fisher_ci(r: float, n: int, alt: str) -> tuple[float, float]:
    from scipy import stats

    if n < 4 or abs(r) >= 1:
        return -1.0, 1.0
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    if alt == "two-sided":
        q = stats.norm.ppf(0.975)
        return math.tanh(z - q * se), math.tanh(z + q * se)
    q = stats.norm.ppf(0.95)
    return (math.tanh(z - q * se), 1.0) if alt == "greater" else (-1.0, math.tanh(z + q * se))


def _opposite(res: ClaimResult, alt: str, p_of: Callable[[str], float]) -> None:
    if alt == "two-sided":
        return
    other = "less" if alt == "greater" else "greater"
    p = p_of(other)
    if p < res.alpha:
        opposite = f"the opposite effect is significant (one-sided p = {p:.4g})"
        res.note = f"{res.note}; {opposite}" if res.note else opposite


def _stragglers(a: Sequence[float], b: Sequence[float], chance: float) -> tuple[str, str]:
    """(summary, note) naming the seeds that ended at chance beside seeds that learned."""
    at = [sum(_at_chance(v, chance) for v in g) for g in (a, b)]
    if not any(at):
        return "", ""
    parts = [f"{k} of {len(g)} {name} run(s)" for k, g, name in zip(at, (a, b), NAMES) if k]
    summary = f"{' and '.join(parts)} ended at chance beside seeds that learned"
    return summary, (
        f"{' and '.join(parts)} ended at chance (never learned, died or diverged) while other "
        "seeds learned: the means and the t interval include them, and a spread with two "
        "modes is not what the t test assumes; more seeds (or a recipe that trains every seed) "
        "would decide it better"
    )


NAMES = ("treatment", "control")


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


def _all_at_chance(values: Sequence[float], chance: float) -> bool:
    return bool(values) and all(_at_chance(v, chance) for v in values)


def apply_holm(results: list[ClaimResult]) -> None:
    """Holm-adjust p within each (family, rule); inconclusive claims take no part."""
    families: dict[tuple[str, str], list[ClaimResult]] = {}
    for r in results:
        if not r.reason and r.p is not None:
            families.setdefault((r.family, r.rule), []).append(r)
    for members in families.values():
        for r, p in zip(members, holm([m.p for m in members])):
            r.p_holm = p
            _underpowered(r)


def _underpowered(r: ClaimResult) -> None:
    """A non-significant test too weak to detect the declared effect decides nothing."""
    if r.p_holm is None or r.p_holm < r.alpha:
        return
    if r.mixed:  # "no effect" and "some seeds died" look alike to a t test over few seeds
        r.reason = (
            f"not significant (Holm p = {r.p_holm:.3g}) while {r.mixed}: a t test over "
            "so few seeds cannot tell no effect from runs that died"
        )
        return
    if not r.power_declared or r.power is None:
        return
    if math.isfinite(r.power) and r.power < POWER:
        unit = "runs per group" if r.test in ("welch", "noninferiority") else "units"
        needed = f"; about {r.n_needed} {unit} would give {POWER:.0%}" if r.n_needed else ""
        r.reason = (
            f"not significant (Holm p = {r.p_holm:.3g}) and underpowered: power {r.power:.2f} "
            f"to detect the declared smallest effect with n = {r.n}{needed}"
        )


def evaluate_claims(
    claims: list[tuple[ClaimSpec, list[dict], list[dict], str]], chance: float = 10.0
) -> list[ClaimResult]:
    """Evaluate (claim, runs, sources, caveat) under both rules, Holm-adjusted per family."""
    results = [
        res
        for rule in RULES
        for claim, runs, sources, caveat in claims
        for res in evaluate_claim(claim, runs, rule, chance, sources, caveat)
    ]
    apply_holm(results)
    return results


# --- the [report] section ---------------------------------------------------------------------

FIGURES = ("curves", "relative", "design", "heatmap")


@dataclass(frozen=True)
class ReportSpec:
    """How the report shows a study: its table's rows and columns, figures, selection."""

    title: str = ""
    rows: tuple[str, ...] = ()
    columns: str | None = None
    published: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    best_by: tuple[str, ...] = ()  # a best-point table per these fields (validation-selected)
    best_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_report(raw: Any, where: str, fields: Sequence[str], tables: Sequence[str]) -> ReportSpec:
    """Validate a study file's ``[report]`` section."""
    if raw is None:
        return ReportSpec()
    if not isinstance(raw, dict):
        raise ClaimError(f"{where} [report]: must be a table")
    allowed = set(ReportSpec.__dataclass_fields__)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ClaimError(f"{where} [report]: unknown key(s) {unknown}; allowed: {sorted(allowed)}")

    def names(key: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if not isinstance(value, list) or any(v not in choices for v in value):
            raise ClaimError(
                f"{where} [report]: {key!r} must be a list of {what} ({', '.join(choices)}); "
                f"got {value!r}"
            )
        return tuple(value)

    columns = raw.get("columns")
    if columns is not None and columns not in fields:
        raise ClaimError(f"{where} [report]: 'columns' must name a run field, got {columns!r}")
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise ClaimError(f"{where} [report]: 'title' must be a string")
    return ReportSpec(
        title=title,
        rows=names("rows", fields, "run fields"),
        columns=columns,
        published=names("published", tables, "published tables"),
        figures=names("figures", FIGURES, "figures"),
        best_by=names("best_by", fields, "run fields"),
        best_fields=names("best_fields", fields, "run fields"),
    )


def report_from_dict(values: dict[str, Any] | None) -> ReportSpec:
    """Rebuild a stored ``[report]`` section."""
    if not values:
        return ReportSpec()
    return ReportSpec(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in values.items()
            if k in ReportSpec.__dataclass_fields__
        }
    )
