"""Error rates of squeezelab's verdicts, measured by simulating whole studies.

For each claim type (paired, Welch, non-inferiority, correlation, a Holm family of three
paired claims, and equivalence to published cells as the forensic study declares it) it
simulates studies with a known true effect and decides each with the very
functions the report uses (``analysis.verdicts``: Holm over the support and the contradiction
p-values, the pivot's bounds at those levels, ``decide``, ``guard``), and counts:

  false_supported       "supported" when the true effect is 0 (non-inferiority: the true
                        difference sits on -margin); for a family, any claim supported when
                        every claim's effect is 0 (the family-wise rate)
  false_contradicted    "contradicted" when the true effect is exactly min_effect
                        (non-inferiority: exactly on -margin); a family: any claim
  power                 "supported" when the true effect is 1.5 x min_effect (from the null)

An equivalence claim (five published cells, two seeds each, the seed SD pooled over the
cells, each published figure one run of the same spread) is wrongly supported, and wrongly
contradicted, when the true deviation sits exactly on the margin; its power is "supported"
at no deviation. Its cells form one Holm family, so its rates are family-wise (any cell).
Stalled runs are not simulated for it.

Per-seed outcomes: a condition effect (between conditions), seed noise within, and, with
probability ``stall``, a run that ends at chance (it counts at 10% under the 'chance' rule and
is dropped under 'exclude'). Setups: ``parametric`` (no stalls: the textbook null), and
``store`` (the spreads and stall rate a store has recorded, with ``--db``; otherwise an assumed
10% stall rate, said so in the JSON). Target: false_supported and false_contradicted at most
alpha + 1 point for every type (the ``within_target`` field). Unpaired claims whose seeds
straggle, and any claim whose runs at chance sit beside runs that learned under 'chance', are
not contradicted (``verdicts.guard``, applied here as in the report).

The sequential design (``setups.*.sequential``): a Welch claim run as a fixed design (the
seeds for 80% power at min_effect) and as a group-sequential one at equal power, both error
rates and the expected seeds at no effect, at min_effect and at 1.5 x min_effect. Without
stalls also: the same design told the seed SD (an oracle: what estimating it costs), two
curtailed designs (a claim given up when a decision is out of reach), and the least expected
seeds any procedure with the fixed design's decision rates could use (an information bound).

Prints one JSON object. Usage:
  python benchmarks/verdict_calibration.py [--sims 10000] [--seed 0] [--db STORE] [--seed-sd 1.5]
      [--first-seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import norm

from squeezelab.analysis.sequential import SPENDING, SequentialDesign, at_look, boundaries
from squeezelab.analysis.verdicts import (
    CONTRADICTED,
    EQUIVALENCE,
    SUPPORTED,
    Pivot,
    bounds_at,
    contradiction_p,
    decide,
    guard,
    holm_levels,
    smallest,
    support_p,
    welch_power,
)
from squeezelab.declared import ALPHA  # a claim's default level

CHANCE = 10.0
BASE = 60.0  # a learned run's mean accuracy (points); only stalls' distance from it matters
MIN_EFFECT = {"paired": 2.0, "welch": 2.0, "noninferiority": 2.0, "correlation": 0.3}
MARGIN = 2.0
EQ_MARGIN, EQ_CELLS, EQ_SEEDS = 5.0, 5, 2  # the forensic study's equivalence claims


def _accuracy(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    mean: np.ndarray | float,
    seed_sd: float,
    stall: float,
    rule: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed accuracies (stalled runs at chance under 'chance', NaN, dropped, under
    'exclude') and which runs stalled."""
    values = mean + rng.normal(0.0, seed_sd, shape)
    stalled = rng.random(shape) < stall
    return np.where(stalled, CHANCE if rule == "chance" else np.nan, values), stalled


def _mixed(*stalled: np.ndarray) -> np.ndarray:
    """Per study (the leading axes): some runs stalled beside runs that learned."""
    flat = np.concatenate([s.reshape(*s.shape[: s.ndim - 2], -1) if s.ndim > 2 else s
                           for s in stalled], axis=-1)  # fmt: skip
    return flat.any(-1) & ~flat.all(-1)


def _mean_se_df(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: mean, standard error and df of the non-NaN values (n - 1)."""
    n = np.sum(~np.isnan(d), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a study left with 0 or 1 values
        mean = np.nanmean(d, axis=-1)
        sd = np.nanstd(d, axis=-1, ddof=1)
        return mean, sd / np.sqrt(n), n - 1.0


def paired_pivots(rng: np.random.Generator, sims: int, m: int, effect: float,
                  setup: dict[str, float], rule: str) -> tuple[Pivot, Any]:  # fmt: skip
    """``m`` independent paired claims per simulated study (9 conditions x 3 seeds)."""
    conditions, seeds = 9, 3
    cond = rng.normal(0.0, setup["cond_sd"], (sims, m, conditions, 1))
    effect_c = effect + rng.normal(0.0, setup["effect_sd"], (sims, m, conditions, 1))
    treat, st = _accuracy(rng, (sims, m, conditions, seeds), BASE + cond + effect_c,
                          setup["seed_sd"], setup["stall"], rule)  # fmt: skip
    ctrl, sc = _accuracy(rng, (sims, m, conditions, seeds), BASE + cond, setup["seed_sd"],
                         setup["stall"], rule)  # fmt: skip
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a condition whose seeds all stalled
        d = np.nanmean(treat, axis=-1) - np.nanmean(ctrl, axis=-1)
    mean, se, df = _mean_se_df(d)
    return Pivot(mean, se, np.maximum(df, 1.0)), _mixed(st, sc)


def welch_pivot(rng: np.random.Generator, sims: int, effect: float, setup: dict[str, float],
                rule: str) -> tuple[Pivot, Any]:  # fmt: skip
    """Two groups of 5 seeds each, one condition."""
    n = 5
    a, sa_ = _accuracy(rng, (sims, n), BASE + effect, setup["seed_sd"], setup["stall"], rule)
    b, sb_ = _accuracy(rng, (sims, n), BASE, setup["seed_sd"], setup["stall"], rule)
    return _welch(a, b), _mixed(sa_, sb_)


def _welch(a: np.ndarray, b: np.ndarray) -> Pivot:
    """Welch's pivot per row of two groups' accuracies (NaN: a run dropped)."""
    ma, sa, _ = _mean_se_df(a)
    mb, sb, _ = _mean_se_df(b)
    na, nb = np.sum(~np.isnan(a), -1), np.sum(~np.isnan(b), -1)
    va, vb = sa**2, sb**2
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return Pivot(ma - mb, np.sqrt(va + vb), np.maximum(np.nan_to_num(df, nan=1.0), 1.0))


def correlation_pivot(rng: np.random.Generator, sims: int, rho: float,
                      setup: dict[str, float], rule: str) -> tuple[Pivot, Any]:  # fmt: skip
    """36 points (9 conditions x fire_delta -1..3 but 0), y relative to each condition's
    baseline, with a true correlation ``rho`` between x and the points' noise-free y."""
    xs = np.tile(np.array([-1.0, 1.0, 2.0, 3.0]), 9)
    noise_sd = math.sqrt(setup["cond_sd"] ** 2 + setup["seed_sd"] ** 2)
    slope = rho * noise_sd / (xs.std() * math.sqrt(1 - rho**2))
    y = slope * xs + rng.normal(0.0, noise_sd, (sims, xs.size))
    stalled = rng.random((sims, xs.size)) < setup["stall"]
    y = np.where(stalled, CHANCE - BASE if rule == "chance" else np.nan, y)
    ok = ~np.isnan(y)
    n = ok.sum(-1)
    x = np.where(ok, xs, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = x - np.nanmean(x, -1, keepdims=True)
        yc = y - np.nanmean(y, -1, keepdims=True)
        r = np.nansum(xc * yc, -1) / np.sqrt(np.nansum(xc**2, -1) * np.nansum(yc**2, -1))
    r = np.clip(np.nan_to_num(r), -0.999999, 0.999999)
    return Pivot(r, 1 / np.sqrt(np.maximum(n - 3, 1)), None, fisher=True), _mixed(stalled)


def equivalence_pivots(rng: np.random.Generator, sims: int, effect: float,
                       setup: dict[str, float], rule: str) -> tuple[Pivot, Any]:  # fmt: skip
    """Per cell: our seeds' mean minus one published run, the seed SD pooled over the cells
    (df = cells x (seeds - 1)), the published run's own noise in the standard error."""
    sd = setup["seed_sd"]
    ours = rng.normal(effect, sd, (sims, EQ_CELLS, EQ_SEEDS))
    published = rng.normal(0.0, sd, (sims, EQ_CELLS))
    pooled = ours.var(-1, ddof=1).mean(-1, keepdims=True)  # equal seeds per cell
    se = np.broadcast_to(np.sqrt(pooled * (1 / EQ_SEEDS + 1)), published.shape)
    pivot = Pivot(ours.mean(-1) - published, se, float(EQ_CELLS * (EQ_SEEDS - 1)))
    return pivot, np.zeros(published.shape, bool)


def verdicts(tested: tuple[Pivot, np.ndarray], direction: str, null: float,
             min_effect: float | None, rule: str) -> np.ndarray:  # fmt: skip
    """The report's rule, vectorized: Holm levels over the last axis (support and
    contradiction apart), the bounds at them, decide, and the guard against contradictions
    that stalled runs decide under 'chance'."""
    pivot, mixed = tested
    est = np.asarray(pivot.estimate)

    def levels(p: np.ndarray) -> np.ndarray:
        rows = p.reshape(-1, est.shape[-1]) if est.ndim > 1 else p[:, None]
        return holm_levels(rows, ALPHA).reshape(est.shape)

    support = levels(support_p(pivot, direction, null, min_effect))
    contra = levels(contradiction_p(pivot, direction, null, min_effect))
    low, high, tost = bounds_at(pivot, support, contra, direction)
    return np.asarray(guard(decide(low, high, direction, null, min_effect, tost), mixed, rule))


def rate(outcomes: np.ndarray, word: str) -> float:
    hit = outcomes == word
    return float(hit.any(axis=-1).mean() if hit.ndim > 1 else hit.mean())


# Per claim type: (simulate, null, min_effect used by decide, the true effects of the three
# scenarios: no effect / exactly min_effect / 1.5 x min_effect from the null).
Simulate = Callable[[np.random.Generator, int, float, dict[str, float], str], tuple[Pivot, Any]]


def _paired_family(m: int) -> Simulate:
    def simulate(rng: np.random.Generator, sims: int, effect: float, setup: dict[str, float],
                 rule: str) -> tuple[Pivot, Any]:  # fmt: skip
        return paired_pivots(rng, sims, m, effect, setup, rule)

    return simulate


def _types() -> dict[str, tuple[Simulate, float, float | None, tuple[float, float, float], str]]:
    me, mw, mc = MIN_EFFECT["paired"], MIN_EFFECT["welch"], MIN_EFFECT["correlation"]
    return {
        "paired": (_paired_family(1), 0.0, me, (0.0, me, 1.5 * me), "greater"),
        "paired_holm_family_of_3": (_paired_family(3), 0.0, me, (0.0, me, 1.5 * me), "greater"),
        "welch": (welch_pivot, 0.0, mw, (0.0, mw, 1.5 * mw), "greater"),
        # Non-inferiority: both errors sit on the margin; power 1.5 margins above it.
        "noninferiority": (
            welch_pivot,
            -MARGIN,
            None,
            (-MARGIN, -MARGIN, 0.5 * MARGIN),
            "greater",
        ),
        "correlation": (correlation_pivot, 0.0, mc, (0.0, mc, 1.5 * mc), "greater"),
        # Equivalence: both errors on the margin; power at no deviation at all.
        "equivalence_5_cells_2_seeds": (
            equivalence_pivots,
            0.0,
            EQ_MARGIN,
            (EQ_MARGIN, EQ_MARGIN, 0.0),
            EQUIVALENCE,
        ),
    }


def calibrate(sims: int, seed: int, setup: dict[str, float]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rule in ("chance", "exclude"):
        rng = np.random.default_rng(seed)
        for name, (simulate, null, min_effect, (zero, edge, strong), way) in _types().items():

            def outcome(effect: float, simulate: Simulate = simulate, null: float = null,
                        min_effect: float | None = min_effect, rule: str = rule,
                        rng: np.random.Generator = rng, way: str = way) -> np.ndarray:  # fmt: skip
                tested = simulate(rng, sims, effect, setup, rule)
                return verdicts(tested, way, null, min_effect, rule)

            figures: dict[str, Any] = {
                "false_supported": rate(outcome(zero), SUPPORTED),
                "false_contradicted": rate(outcome(edge), CONTRADICTED),
                "power_at_1.5x": rate(outcome(strong), SUPPORTED),
            }
            if way == EQUIVALENCE:  # the reading's own verdict: every cell supported
                figures["every_cell_supported_at_0"] = float(
                    (outcome(0.0) == SUPPORTED).all(-1).mean()
                )
            figures["within_target"] = (
                figures["false_supported"] <= ALPHA + 0.01
                and figures["false_contradicted"] <= ALPHA + 0.01
            )
            out[f"{name} [{rule}]"] = figures
    return out


# --- the sequential design --------------------------------------------------------------------
# A Welch claim (two models over seeds, as modern-compare declares them), min_effect 2 points:
# the fixed design runs the seeds that give 80% power at min_effect; the sequential one looks
# first at FIRST_SEEDS seeds per group, adds one per look, and stops at a decision. Its most
# seeds are the fewest whose power at min_effect reaches the fixed design's (equal power).
FIRST_SEEDS = 3
CASES = {"null": 0.0, "min_effect": 1.0, "1.5x": 1.5}  # true effects, in units of min_effect
CURTAIL = 0.2  # a curtailed design gives a claim up below this conditional power


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a simulated sequential study decides. ``known_sd``: the seed SD is known rather
    than estimated from the seeds (an oracle no study has: it measures what estimating the SD
    costs). ``curtail``: a claim is given up (inconclusive) at a look where its conditional
    power, under the effect that would decide it, is below ``CURTAIL``: ``"support"`` when
    "supported" is out of reach, ``"either"`` when both decisions are (stochastic curtailment;
    it only removes decisions, so it cannot raise either error rate)."""

    known_sd: bool = False
    curtail: str | None = None


def _conditional_power(z: np.ndarray, t: float, drift: np.ndarray, final: float) -> np.ndarray:
    """P(the z statistic ends above ``final`` at full information | ``z`` at fraction ``t``),
    for a score process with ``drift`` (the z statistic's mean at full information)."""
    return norm.cdf((z * math.sqrt(t) + drift * (1 - t) - final) / math.sqrt(1 - t))


def run_design(rng: np.random.Generator, sims: int, effect: float, setup: dict[str, float],
               rule: str, design: SequentialDesign,
               variant: Variant = Variant()) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each simulated study's verdict and the seeds per group it used, deciding at every look
    with the library's own rule: the looks' nominal levels (``sequential.at_look``) in Holm's
    place, the bounds at them, ``decide`` and ``guard``."""
    most, me, sd = design.most, MIN_EFFECT["welch"], setup["seed_sd"]
    a, sa = _accuracy(rng, (sims, most), BASE + effect, sd, setup["stall"], rule)
    b, sb = _accuracy(rng, (sims, most), BASE, sd, setup["stall"], rule)
    verdict = np.full(sims, "inconclusive", dtype=object)
    used = np.full(sims, most)
    open_ = np.ones(sims, bool)
    fractions: list[float] = []
    planned = [design.fraction(n) for n in design.schedule]
    final = boundaries(ALPHA, planned, design.spending)[-1]
    for n in design.schedule:
        fractions.append(design.fraction(n))
        t = fractions[-1]
        level = float(at_look(fractions, design.spending)(np.array([ALPHA]))[0])
        pivot = _welch(a[:, :n], b[:, :n])
        if variant.known_sd:
            pivot = Pivot(pivot.estimate, np.full(sims, sd * math.sqrt(2 / n)), None)
        low, high, _ = bounds_at(pivot, level, level, "greater")
        now = guard(decide(low, high, "greater", 0.0, me), _mixed(sa[:, :n], sb[:, :n]), rule)
        newly = open_ & (np.asarray(now) != "inconclusive")
        verdict[newly], used[newly] = np.asarray(now)[newly], n
        open_ &= ~newly
        if variant.curtail and t < 1:
            se, est = np.asarray(pivot.se), np.asarray(pivot.estimate)
            drift = me / (se * math.sqrt(t))  # at full information, when the effect is me
            with np.errstate(invalid="ignore", divide="ignore"):
                support = _conditional_power(est / se, t, drift, final) < CURTAIL
                contra = _conditional_power((me - est) / se, t, drift, final) < CURTAIL
            give_up = support if variant.curtail == "support" else support & contra
            give_up = open_ & np.nan_to_num(give_up, nan=False).astype(bool)
            used[give_up] = n
            open_ &= ~give_up
    return verdict, used


Verdicts = dict[str, np.ndarray]  # per case: each simulated study's verdict


def least_seeds(outcomes: Verdicts, seed_sd: float) -> dict[str, float]:
    """The fewest expected seeds per group with which *any* sequential procedure could reach
    these decision rates (verdicts per case), even knowing the seed SD and looking after every
    seed, as long as its rates do not depend on the two groups' common level: by Wald's
    identity the expected log-likelihood ratio between two true effects at the stop is
    E[N] (d_a - d_b)^2 / (4 sd^2) (the least-favourable common level shifts each group by half
    the difference), and it is at least the Kullback-Leibler divergence between the two cases'
    verdict distributions (data processing). The largest bound over the other cases holds.
    Rates smoothed by (k + 0.5) / (n + 1.5); Gaussian seeds, no stalls."""
    me = MIN_EFFECT["welch"]
    words = (SUPPORTED, CONTRADICTED, "inconclusive")
    p = {c: np.array([((v == w).sum() + 0.5) / (v.size + 1.5) for w in words])
         for c, v in outcomes.items()}  # fmt: skip
    out = {}
    for c in outcomes:
        out[c] = max(
            4
            * seed_sd**2
            * float(np.sum(p[c] * np.log(p[c] / p[o])))
            / ((CASES[c] - CASES[o]) * me) ** 2
            for o in outcomes
            if o != c
        )
    return out


def _cases(sims: int, seed: int, setup: dict[str, float], rule: str, design: SequentialDesign,
           variant: Variant = Variant()) -> tuple[dict[str, Any], Verdicts]:  # fmt: skip
    """One design's figures at the three true effects, and its verdicts per case."""
    me = MIN_EFFECT["welch"]
    row: dict[str, Any] = {"seeds_per_group_most": design.most, "looks": len(design.schedule)}
    verdicts: dict[str, np.ndarray] = {}
    for case, k in CASES.items():
        rng = np.random.default_rng(seed + 1)
        verdict, used = run_design(rng, sims, k * me, setup, rule, design, variant)
        verdicts[case] = verdict
        row[f"seeds_used_at_{case}"] = round(float(used.mean()), 3)
    row["false_supported"] = float((verdicts["null"] == SUPPORTED).mean())
    row["contradicted_at_null"] = float((verdicts["null"] == CONTRADICTED).mean())
    row["false_contradicted"] = float((verdicts["min_effect"] == CONTRADICTED).mean())
    row["power_at_min_effect"] = float((verdicts["min_effect"] == SUPPORTED).mean())
    row["power_at_1.5x"] = float((verdicts["1.5x"] == SUPPORTED).mean())
    row["within_target"] = (
        row["false_supported"] <= ALPHA + 0.01 and row["false_contradicted"] <= ALPHA + 0.01
    )
    return row, verdicts


def _share(seeds: dict[str, float], fixed: int) -> dict[str, float]:
    """Expected seeds per case as a share of the fixed design's, and their mean."""
    share = {c: round(seeds[c] / fixed, 3) for c in CASES}
    return {**share, "mean": round(float(np.mean(list(share.values()))), 3)}


def sequential_calibration(sims: int, seed: int, setup: dict[str, float], spending: str,
                           first: int = FIRST_SEEDS) -> dict[str, Any]:  # fmt: skip
    """Fixed vs sequential at equal power: both error rates and the expected seeds (so
    run-epochs) at no effect, at min_effect and at 1.5 x min_effect. Without stalls also: the
    same design with the seed SD known, two curtailed designs, and the least any procedure
    with the fixed design's decision rates could use."""
    me, sd = MIN_EFFECT["welch"], setup["seed_sd"]
    fixed_n = smallest(lambda n: welch_power(me, sd, n, ALPHA, False)) or 2
    fixed = SequentialDesign(first=fixed_n, max_seeds=fixed_n)

    def power(design: SequentialDesign, rule: str, variant: Variant) -> float:
        rng = np.random.default_rng(seed)
        verdict, _ = run_design(rng, sims, me, setup, rule, design, variant)
        return float((verdict == SUPPORTED).mean())

    def equal_power(rule: str, variant: Variant, target: float) -> SequentialDesign:
        """The fewest most-seeds at the fixed design's power (the same simulated seeds)."""
        most = max(fixed_n, first)
        while True:
            design = SequentialDesign(first, most, 1, spending=spending)
            if power(design, rule, variant) >= target - 0.005 or most >= 3 * fixed_n:
                return design
            most += 1

    variants = {"sequential": Variant()}
    if not setup["stall"]:  # the oracle and the bound assume Gaussian seeds
        variants |= {
            "sequential_known_sd": Variant(known_sd=True),
            "curtailed_support": Variant(curtail="support"),
            "curtailed_either": Variant(curtail="either"),
        }
    out: dict[str, Any] = {"spending": spending, "first_seeds": first}
    for rule in ("chance", "exclude"):
        target = power(fixed, rule, Variant())
        rows: dict[str, Any] = {}
        rows["fixed"], fixed_verdicts = _cases(sims, seed, setup, rule, fixed)
        compute: dict[str, Any] = {}
        for name, variant in variants.items():
            design = equal_power(rule, variant, target)
            rows[name], _ = _cases(sims, seed, setup, rule, design, variant)
            seeds = {c: rows[name][f"seeds_used_at_{c}"] for c in CASES}
            compute[name] = _share(seeds, fixed_n)
        if not setup["stall"]:
            least = least_seeds(fixed_verdicts, sd)
            rows["least_possible"] = {f"seeds_used_at_{c}": round(v, 3) for c, v in least.items()}
            compute["least_possible"] = _share(least, fixed_n)
        rows["compute_vs_fixed"] = compute["sequential"]
        rows["compute_vs_fixed_all"] = compute
        out[rule] = rows
    return out


def store_setup(db: str) -> dict[str, Any]:
    """Seed and condition spreads and the stall rate a store's finished runs recorded."""
    from squeezelab.analysis.evaluate import at_chance_run
    from squeezelab.analysis.variance import components
    from squeezelab.results import Store

    with Store(db) as store:
        runs = [r for s in store.studies() for r in store.runs(s) if r.finished_ok]
    if not runs:
        raise SystemExit(f"verdict_calibration: {db} holds no finished runs")
    stalls = sum(at_chance_run(r, "test_acc", CHANCE) for r in runs) / len(runs)
    cells: dict[str, list[float]] = {}
    for r in runs:
        if not at_chance_run(r, "test_acc", CHANCE) and r.result.test_acc is not None:
            key = json.dumps({k: v for k, v in r.config.items() if k != "seed"}, sort_keys=True,
                             default=str)  # fmt: skip
            cells.setdefault(key, []).append(r.result.test_acc)
    parts = components([{0: v} for v in cells.values()])
    means = [float(np.mean(v)) for v in cells.values()]
    return {
        "seed_sd": parts.seed_sd or 1.5,
        "cond_sd": float(np.std(means, ddof=1)) if len(means) > 1 else 3.0,
        "effect_sd": 2.0,  # how the effect varies between conditions: not in a store; assumed
        "stall": stalls,
        "source": f"{db}: {len(runs)} finished runs, {len(cells)} conditions",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10_000, help="simulated studies per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", help="a store whose recorded spreads and stall rate to use")
    parser.add_argument(
        "--first-seeds",
        type=int,
        default=FIRST_SEEDS,
        help="seeds per group at the sequential design's first look",
    )
    parser.add_argument(
        "--seed-sd", type=float, default=1.5, help="the assumed seed SD in points (no --db)"
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    setups: dict[str, dict[str, Any]] = {
        "parametric": {
            "seed_sd": args.seed_sd,
            "cond_sd": 3.0,
            "effect_sd": 2.0,
            "stall": 0.0,
            "source": "assumed: no stalls (the textbook null)",
        },
        "store": store_setup(args.db)
        if args.db
        else {
            "seed_sd": args.seed_sd,
            "cond_sd": 3.0,
            "effect_sd": 2.0,
            "stall": 0.1,
            "source": "assumed (no --db): a 10% stall rate",
        },
    }
    results = {}
    for name, setup in setups.items():
        numbers = {k: v for k, v in setup.items() if k != "source"}
        results[name] = {"setup": setup, "claims": calibrate(args.sims, args.seed, numbers)}
        results[name]["sequential"] = {
            s: sequential_calibration(args.sims, args.seed, numbers, s, args.first_seeds)
            for s in SPENDING
        }
    within = all(c["within_target"] for r in results.values() for c in r["claims"].values())
    within = within and all(
        d["within_target"]
        for r in results.values()
        for s in r["sequential"].values()
        for rule in ("chance", "exclude")
        for d in (s[rule]["fixed"], s[rule]["sequential"])
    )
    print(
        json.dumps(
            {
                "alpha": ALPHA,
                "sims": args.sims,
                "seed": args.seed,
                "min_effect": MIN_EFFECT,
                "margin": MARGIN,
                "equivalence": {"margin": EQ_MARGIN, "cells": EQ_CELLS, "seeds": EQ_SEEDS},
                "setups": results,
                "all_within_target": within,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
