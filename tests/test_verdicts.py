"""Decisive verdicts: supported, contradicted or inconclusive, from intervals at Holm levels;
the binomial chance rule; variance by source; the calibration benchmark."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from squeezelab.analysis.evaluate import ClaimResult, apply_holm, evaluate_claim
from squeezelab.analysis.variance import components, hierarchical_bootstrap, paired_statistic
from squeezelab.analysis.verdicts import Pivot, decide, holm_levels
from squeezelab.declared import ClaimSpec
from squeezelab.results import RunRecord
from squeezelab.results.records import at_chance
from squeezelab.training import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def _run(acc: float | None, status: str = "done", seed: int = 0, images: int | None = None,
         **cfg: object) -> RunRecord:  # fmt: skip
    config = {**RunConfig(seed=seed).to_dict(), **cfg}
    prov = {"test_images": images, "val_images": images} if images else None
    return RunRecord.of(str(id(config)), config, status, test_acc=acc, val_acc=acc, provenance=prov)


LRS = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002)


def _paired_runs(effects: list[float], seeds: int = 3, base: float = 60.0) -> list[RunRecord]:
    """One condition per learning rate; treatment = control + that condition's effect."""
    rng = np.random.default_rng(0)
    runs = []
    for lr, effect in zip(LRS, effects):
        for seed in range(seeds):
            noise = rng.normal(0, 0.3, 2)
            runs.append(_run(base + effect + noise[0], seed=seed, lr=lr, batch_norm=True))
            runs.append(_run(base + noise[1], seed=seed, lr=lr, batch_norm=False))
    return runs


def _decided(claim: ClaimSpec, runs: list[RunRecord]) -> ClaimResult:
    (res,) = evaluate_claim(claim, runs, "chance")
    apply_holm([res])
    return res


PAIRED = ClaimSpec("bn", "BN helps", "paired", field="batch_norm", treatment=True,
                   control=False, min_effect=2.0)  # fmt: skip


@pytest.mark.parametrize(
    ("effects", "verdict", "qualifier"),
    [
        ([5.0, 6.0, 5.5, 6.5, 5.2, 6.1], "supported", "at least the smallest effect"),
        ([0.1, -0.2, 0.3, 0.0, -0.1, 0.2], "contradicted", "absent"),
        ([-5.0, -6.0, -5.5, -6.5, -5.2, -6.1], "contradicted", "reversed"),
        ([0.5, 1.2, 0.8, 1.0, 0.7, 1.1], "supported", "smaller than the smallest effect"),
    ],
)
def test_paired_verdicts_from_intervals(effects: list, verdict: str, qualifier: str) -> None:
    res = _decided(PAIRED, _paired_runs(effects))
    assert res.verdict == verdict and res.qualifier.startswith(qualifier)
    # The interval decides: supported when its lower bound clears 0, contradicted when its
    # upper bound falls below min_effect.
    if verdict == "supported":
        assert res.ci_low > 0
    else:
        assert res.ci_high < 2.0


def test_too_little_paired_data_is_inconclusive_with_seeds_to_add() -> None:
    # Two conditions, noisy seeds: the interval straddles both 0 and min_effect.
    rng = np.random.default_rng(1)
    runs = []
    for lr in LRS[:3]:
        for seed in range(2):
            runs.append(_run(61 + rng.normal(0, 3), seed=seed, lr=lr, batch_norm=True))
            runs.append(_run(60 + rng.normal(0, 3), seed=seed, lr=lr, batch_norm=False))
    res = _decided(PAIRED, runs)
    assert res.verdict == "inconclusive"
    assert res.lever == "seeds per condition" and res.n_needed and res.n_needed > 2
    assert f"about {res.n_needed} seeds per condition (now 2)" in res.advice
    assert res.ci_low < 0 < 2.0 < res.ci_high


def test_a_spread_between_conditions_no_seed_count_can_decide() -> None:
    # The effect swings by +-6 points between conditions, seeds agree to 0.3: seeds cannot help.
    runs = _paired_runs([7.0, -5.0, 6.0, -4.0, 8.0, -6.0], seeds=3)
    res = _decided(PAIRED, runs)
    assert res.verdict == "inconclusive"
    assert res.advice.startswith("no number of seeds decides it: the spread is between")
    assert res.lever == "conditions"


@pytest.mark.parametrize(
    ("shift", "verdict", "qualifier"),
    [(6.0, "supported", "at least"), (0.0, "contradicted", "absent"), (-6.0, "contradicted",
     "reversed")],
)  # fmt: skip
def test_welch_verdicts(shift: float, verdict: str, qualifier: str) -> None:
    claim = ClaimSpec("w", "bn", "welch", field="batch_norm", treatment=True, control=False,
                      min_effect=2.0)  # fmt: skip
    noise = (0.3, -0.4, 0.5, -0.2, 0.1, 0.0)
    runs = [_run(70 + shift + n, seed=i, batch_norm=True) for i, n in enumerate(noise)]
    runs += [_run(70 - n, seed=i) for i, n in enumerate(noise)]
    res = _decided(claim, runs)
    assert res.verdict == verdict and res.qualifier.startswith(qualifier)
    assert res.df is not None and res.lever == "runs per group"


@pytest.mark.parametrize(
    ("shift", "verdict"), [(0.0, "supported"), (-6.0, "contradicted"), (-2.0, "inconclusive")]
)
def test_noninferiority_verdicts(shift: float, verdict: str) -> None:
    claim = ClaimSpec("ni", "sq ~ alex", "noninferiority", field="model",
                      treatment="squeezenet1_0", control="alexnet", margin=2.0,
                      margin_reason="r")  # fmt: skip
    noise = (0.3, -0.4, 0.8, -0.2)
    runs = [_run(60 + n, seed=i, model="alexnet") for i, n in enumerate(noise)]
    runs += [_run(60 + shift - n, seed=i) for i, n in enumerate(noise)]
    res = _decided(claim, runs)
    assert res.verdict == verdict
    if verdict == "contradicted":
        assert res.qualifier.startswith("inferior") and res.ci_high < -2.0
    if verdict == "inconclusive":  # on the margin: the lever is seeds per group
        assert "runs (seeds) per group" in res.advice


@pytest.mark.parametrize(
    ("slope", "verdict", "qualifier"),
    [(3.0, "supported", ""), (0.0, "contradicted", "absent"), (-3.0, "contradicted", "reversed")],
)
def test_correlation_verdicts(slope: float, verdict: str, qualifier: str) -> None:
    claim = ClaimSpec("c", "size", "correlation", x="fire_delta", relative_to=0, min_effect=0.3)
    rng = np.random.default_rng(3)
    runs = []
    for lr in LRS * 2:
        for d in (-1, 0, 1, 2, 3):
            acc = 50 + slope * d + rng.normal(0, 1.0)
            runs.append(_run(acc, fire_delta=d, lr=lr, momentum=0.9 if len(runs) < 30 else 0.5))
    res = _decided(claim, runs)
    assert res.verdict == verdict and res.qualifier.startswith(qualifier)
    assert -1 <= res.ci_low <= res.estimate <= res.ci_high <= 1


def test_intervals_and_verdicts_agree_under_holm() -> None:
    """A family of three: a claim is supported exactly when its Holm p is below alpha and
    exactly when its bound at its Holm level clears 0; levels are alpha / 3, / 2, / 1."""
    claims, results = [], []
    for i, effects in enumerate(([4.0] * 6, [0.6, 0.4, 1.2, 0.1, 0.9, 0.8], [0.3, -0.2] * 3)):
        claim = ClaimSpec(f"c{i}", "c", "paired", field="batch_norm", treatment=True,
                          control=False, family="f", min_effect=2.0)  # fmt: skip
        claims.append(claim)
        results += evaluate_claim(claim, _paired_runs(effects), "chance")
    apply_holm(results)
    for r in results:
        assert (r.p_holm < r.alpha) == (r.verdict == "supported") == (r.ci_low > 0)
    assert sorted(r.level for r in results)[0] == pytest.approx(0.05 / 3)
    # the helper itself: p = (0.001, 0.04, 0.02) at 0.05: steps 0.0167, 0.025, then 0.05
    levels = holm_levels([0.001, 0.04, 0.02], 0.05)[0]
    assert levels == pytest.approx([0.05 / 3, 0.05, 0.025])
    stopped = holm_levels([0.001, 0.04, 0.03], 0.05)[0]  # step 2 fails: 0.03 >= 0.025
    assert stopped == pytest.approx([0.05 / 3, 0.025, 0.025])


def test_decide_reads_each_direction_and_two_sided_claims() -> None:
    assert decide(0.5, 3.0, "greater", 0.0, 2.0) == "supported"
    assert decide(-0.5, 1.5, "greater", 0.0, 2.0) == "contradicted"
    assert decide(-0.5, 3.0, "greater", 0.0, 2.0) == "inconclusive"
    assert decide(-3.0, -0.5, "less", 0.0, 2.0) == "supported"
    assert decide(-1.5, 0.5, "less", 0.0, 2.0) == "contradicted"
    assert decide(-1.0, 1.0, "two-sided", 0.0, 2.0) == "contradicted"
    assert decide(-1.0, 1.0, "two-sided", 0.0, None) == "inconclusive"
    assert decide(-1.5, 0.5, "greater", -2.0, None) == "supported"  # non-inferiority
    assert list(decide(np.array([0.5, -0.5]), np.array([3, 1.5]), "greater", 0.0, 2.0)) == [
        "supported",
        "contradicted",
    ]
    pivot = Pivot(1.0, 0.5, 10.0)
    low, high = pivot.bounds(0.05)
    assert pivot.p(low, "greater") == pytest.approx(0.05)  # a bound is where p = its level
    assert pivot.p(high, "less") == pytest.approx(0.05)


# --- chance from the evaluation size ----------------------------------------------------------


def test_at_chance_is_a_binomial_test_at_the_evaluation_count() -> None:
    # 20% of 60 validation images: 12 right where 6 are expected, p = 0.015: learned.
    assert not at_chance(20.0, 10.0, 60)
    assert at_chance(15.0, 10.0, 60)  # 9 of 60: p = 0.13, could be luck
    # 10.6% of 10,000 test images is above chance; 10.3% is not (p = 0.16).
    assert not at_chance(10.6, 10.0, 10_000) and at_chance(10.3, 10.0, 10_000)
    # Without a count, the old band of 1 point around chance.
    assert at_chance(10.9, 10.0) and not at_chance(11.1, 10.0)
    assert at_chance(None, 10.0)


def test_stalled_runs_are_named_in_a_paired_claim_and_dropped_under_exclude() -> None:
    runs = _paired_runs([5.0, 6.0, 5.5, 6.5, 5.2, 6.1])
    # Two control seeds of two conditions finish at chance on 500 images (not diverged).
    stalled = {(0.1, 0), (0.05, 1)}
    runs = [
        _run(10.2, seed=r.config.seed, lr=r.config.lr, images=500)
        if not r.config.batch_norm and (r.config.lr, r.config.seed) in stalled
        else r
        for r in runs
    ]
    (chance,) = evaluate_claim(PAIRED, runs, "chance")
    (excluded,) = evaluate_claim(PAIRED, runs, "exclude")
    assert "2 of 18 control run(s) ended at chance" in chance.note
    assert "stalled or diverged" in chance.note
    assert excluded.n_excluded == 2 and excluded.n == 6  # each condition keeps other seeds
    assert chance.estimate > excluded.estimate  # the stalled controls pulled 'chance' up


# --- variance by source ----------------------------------------------------------------------


def test_components_and_bootstrap_recover_known_spreads() -> None:
    """Conditions differ (SD 4) and seeds within them (SD 1): the estimates come back near."""
    rng = np.random.default_rng(5)
    clusters = []
    diffs = []
    for _ in range(40):
        shift = rng.normal(0, 4.0)  # the effect varies between conditions
        t = list(65 + shift + rng.normal(0, 1.0, 4))
        c = list(60 + rng.normal(0, 1.0, 4))
        clusters.append({True: t, False: c})
        diffs.append(np.mean(t) - np.mean(c))
    parts = components(clusters, diffs)
    assert parts.seed_sd == pytest.approx(1.0, abs=0.15)
    assert parts.cond_sd == pytest.approx(4.0, abs=1.2)
    boot = hierarchical_bootstrap(clusters, paired_statistic(lambda g: g is True, False),
                                  reps=400, seed=0)  # fmt: skip
    assert boot is not None and boot.reps == 400
    # The conditions' spread dominates: the 95% interval's half-width is near 1.96 * 4 / sqrt(40)
    half = (boot.high - boot.low) / 2
    assert half == pytest.approx(1.96 * math.sqrt(4.0**2 + 0.5) / math.sqrt(40), rel=0.35)
    assert boot.low < np.mean(diffs) < boot.high
    one_seed = components([{True: [1.0], False: [2.0]}, {True: [3.0], False: [1.0]}])
    assert one_seed.seed_sd is None and "one seed" in one_seed.describe()


def test_a_claim_reports_its_bootstrap_and_spread() -> None:
    from squeezelab.analysis.evaluate import bootstrap_all

    res = _decided(PAIRED, _paired_runs([5.0, 6.0, 5.5, 6.5, 5.2, 6.1]))
    bootstrap_all([res])
    assert res.boot_reps == 2000 and res.boot_low < res.estimate < res.boot_high
    assert res.spread.startswith("seed-to-seed SD")


# --- the calibration benchmark ---------------------------------------------------------------


def test_calibration_benchmark_prints_rates_for_every_claim_type() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "verdict_calibration.py"), "--sims", "400",
         "--first-seeds", "2", "--seed-sd", "2.0"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    data = json.loads(out.stdout)
    assert data["sims"] == 400 and set(data["setups"]) == {"parametric", "store"}
    assert data["setups"]["parametric"]["setup"]["seed_sd"] == 2.0
    for name, designs in (("parametric", {"sequential", "sequential_known_sd", "curtailed_support",
                                          "curtailed_either", "least_possible"}),
                          ("store", {"sequential"})):  # fmt: skip
        for seq in data["setups"][name]["sequential"].values():
            assert seq["first_seeds"] == 2
            compute = seq["chance"]["compute_vs_fixed_all"]
            assert set(compute) == designs  # the oracle and the bound only without stalls
            assert 0 < compute["sequential"]["mean"] <= 1.5
            if "least_possible" in compute:  # the bound sits below what the design used
                assert compute["least_possible"]["mean"] < compute["sequential"]["mean"]
    claims = data["setups"]["parametric"]["claims"]
    names = {k.split(" [")[0] for k in claims}
    assert names == {"paired", "paired_holm_family_of_3", "welch", "noninferiority",
                     "correlation", "equivalence_5_cells_2_seeds"}  # fmt: skip
    for name, figures in claims.items():
        extra = {"every_cell_supported_at_0"} if name.startswith("equivalence") else set()
        assert set(figures) == {"false_supported", "false_contradicted", "power_at_1.5x",
                                "within_target"} | extra  # fmt: skip
        assert 0 <= figures["false_supported"] <= 0.15  # 400 studies: loose bounds
        assert figures["power_at_1.5x"] > figures["false_supported"]
