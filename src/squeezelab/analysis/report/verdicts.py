"""The report's verdict sections, as functions of the decided claims: the declared claims
(one row and one paragraph each) and the study's own data re-analysed."""

from __future__ import annotations

import math

from ...declared import RULES
from ..evaluate import ClaimResult
from ..tables import Table
from .section import Section, fmt

VERDICT_RULE = (
    "Each claim is read at its Holm step's level (alpha / m, alpha / (m - 1), ... in order of "
    "p within its family and rule), so its interval and its verdict agree. Supported: the "
    "bound in the claimed direction clears 0 (a non-inferiority claim: the margin). "
    "Contradicted: the other bound falls short of the smallest effect of interest (absent), "
    "or of 0 (reversed); a non-inferiority claim's upper bound below the margin (inferior). "
    "Inconclusive: neither, with what would decide it. One-sided claims show both one-sided "
    "bounds as one two-sided interval. n counts conditions (seeds averaged) for paired tests "
    "and correlations, runs for unpaired ones. Power is at the declared smallest effect, for "
    "the design as run; the bootstrap resamples conditions, then seeds within them (2,000 "
    "seeded replicates, percentile interval)."
)


def _bound(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-inf" if x is not None and x < 0 else "+inf"
    return f"{x:+.2f}"


def estimate_text(r: ClaimResult) -> str:
    """'+3.14 pts [+0.20, +6.10] (90% two-sided (each bound one-sided 95%))'."""
    if r.estimate is None:
        return ""
    unit = "" if r.test == "correlation" else " pts"
    if r.ci_low is None and r.ci_high is None:
        return f"{r.estimate:+.2f}{unit} (no interval)"
    level = f" ({r.confidence})" if r.confidence else ""
    return f"{r.estimate:+.2f}{unit} [{_bound(r.ci_low)}, {_bound(r.ci_high)}]{level}"


def bootstrap_text(r: ClaimResult) -> str:
    if not r.boot_reps or r.boot_low is None or r.boot_high is None:
        return ""
    return f"[{r.boot_low:+.2f}, {r.boot_high:+.2f}] ({r.boot_reps:,} replicates)"


def verdict_text(r: ClaimResult) -> str:
    """The verdict with its qualifier and the rule it rests on."""
    text = r.verdict + (f", {r.qualifier}" if r.qualifier else "")
    return f"{text} ({r.rule})"


def decide_text(r: ClaimResult) -> str:
    power = "" if r.power is None or not math.isfinite(r.power) else f"power {r.power:.2f}"
    if r.advice:
        return f"{power}; {r.advice}" if power else r.advice
    return power


def claims_section(results: list[ClaimResult], rule_of: dict[str, str]) -> Section:
    """The claims, tested: one table row per claim (stratum) under its declared rule, beside
    the other rule's verdict, then one paragraph each."""
    other = {r: next(o for o in RULES if o != r) for r in RULES}
    by_key = {(r.id, r.stratum, r.rule): r for r in results}
    declared = [r for r in results if r.rule == rule_of[r.id]]
    s = Section("The claims, tested")
    rows = []
    for r in declared:
        alt = by_key.get((r.id, r.stratum, other[r.rule]))
        rows.append(
            [
                r.label,
                f"{r.test}: {r.hypothesis}",
                r.n,
                estimate_text(r),
                fmt(r.p_holm, "{:.4g}") if r.p_holm is not None else "",
                bootstrap_text(r),
                verdict_text(r),
                verdict_text(alt) if alt else "",
                decide_text(r),
                r.published,
            ]
        )
    s.table(
        Table(
            "claims",
            "Verdicts from intervals at each claim's Holm level: supported, contradicted "
            "or inconclusive",
            [
                "Claim",
                "Test",
                "n",
                "Estimate [interval at the Holm level]",
                "p (Holm)",
                "Bootstrap 95%",
                "Verdict (declared rule)",
                "Verdict (other rule)",
                "Power / what would decide it",
                "The study",
            ],
            rows,
            VERDICT_RULE,
        )
    )
    for r in declared:
        s.details(
            f"**{r.verdict.capitalize()}**: {r.label}"
            + (f" ({r.qualifier})" if r.qualifier else ""),
            claim_text(r, by_key.get((r.id, r.stratum, other[r.rule]))),
        )
    return s


def claim_text(r: ClaimResult, alt: ClaimResult | None = None) -> str:
    """One claim's paragraph: the verdict and the rule it rests on, the numbers behind it,
    what would decide it, and the other rule's verdict."""
    head = f"**{r.verdict.capitalize()}**: {r.label} (rests on the '{r.rule}' rule)."
    if r.qualifier:
        head = head[:-1] + f"; {r.qualifier}."
    if r.reason and r.p is None:
        text = f"{head} Inconclusive because {r.reason}."
    else:
        if r.reason:
            head += f" Inconclusive because {r.reason}."
        text = (
            f"{head} Estimate {estimate_text(r)}; {r.statistic} = {fmt(r.value, '{:.3f}')} "
            f"(df {fmt(r.df, '{:.1f}')}), p = {r.p:.4g}, Holm p = {fmt(r.p_holm, '{:.4g}')}, "
            f"n = {r.n}; {r.details}."
        )
        if r.boot_reps:
            text += f" Hierarchical bootstrap: {bootstrap_text(r)}."
        if r.spread:
            text += f" Spread: {r.spread}."
        if r.advice:
            text += f" What would decide it: {r.advice}."
    if alt is not None:
        text += f" Under the '{alt.rule}' rule: {verdict_text(alt)}"
        text += f" ({estimate_text(alt)})." if alt.estimate is not None else "."
    if r.note:
        text += f" Note: {r.note}."
    if r.caveat:
        text += f" Not tested as the study did: {r.caveat}."
    if r.interim:
        text += (
            f" Interim: {r.interim} (`squeezelab study status`); the declared test is the "
            "full study's, and a verdict read again each time runs come in is read more "
            "than once (each look is another chance of a false positive)."
        )
    if r.published:
        text += f" The study: {r.published}."
    return text


def reading_verdict(cells: list[ClaimResult]) -> str:
    """A reading's verdict from its cells' (an intersection-union test): supported when every
    cell is, contradicted when any cell is, else inconclusive."""
    words = [c.verdict.split(" ")[0] for c in cells]
    if words and all(w == "supported" for w in words):
        return "supported"
    return "contradicted" if "contradicted" in words else "inconclusive"


def readings_section(results: list[ClaimResult], rule_of: dict[str, str]) -> Section | None:
    """Equivalence claims (a reading of the protocol held to the published cells), one row
    per reading: how far its cells land from the study's, and what that decides."""
    readings: dict[str, list[ClaimResult]] = {}
    for r in results:
        if r.test == "equivalence" and r.rule == rule_of.get(r.id, "chance"):
            readings.setdefault(r.id, []).append(r)
    if not readings:
        return None
    s = Section("Which reading reproduces the study")
    rows = []
    for cells in readings.values():
        tested = [c for c in cells if c.estimate is not None]
        deviations = [float(c.estimate) for c in tested if c.estimate is not None]
        counts = {w: sum(c.verdict.startswith(w) for c in cells)
                  for w in ("supported", "contradicted", "inconclusive")}  # fmt: skip
        span = f"{min(deviations):+.1f} to {max(deviations):+.1f}" if deviations else ""
        rows.append(
            [
                cells[0].statement,
                sum(1 for c in cells if c.stratum),  # cells with a finished run
                span,
                "; ".join(f"{c.stratum}: {estimate_text(c)}" for c in tested),
                ", ".join(f"{v} {w}" for w, v in counts.items() if v),
                reading_verdict(cells) + (" (interim)" if any(c.interim for c in cells) else ""),
                next((c.advice for c in cells if c.advice), "")
                or next((c.reason for c in cells if c.reason), ""),
            ]
        )
    s.table(
        Table(
            "readings",
            "Each reading of the protocol against the study's published cells",
            [
                "Reading",
                "Cells",
                "Ours - study (points, cell means)",
                "Per cell: ours - study [interval at the Holm level]",
                "Cell verdicts",
                "Reading",
                "What would decide it",
            ],
            rows,
            "A cell's deviation is our seeds' mean minus the study's one published run; its "
            "standard error counts both (our seeds' spread, pooled over the reading's cells "
            "that learned, and the published run's own seed noise, taken as ours). A cell is "
            "supported when its whole interval lies inside the margin (TOST), contradicted when "
            "it lies beyond it. A reading is supported when every cell is (an intersection-"
            "union test), contradicted when any cell is.",
        )
    )
    return s


def published_section(results: list[ClaimResult]) -> Section:
    """The study's own statistics, recomputed from its published tables, decided by the
    same rules, under both divergence rules."""
    s = Section("The study's own data, re-analysed")
    rows = [
        [
            r.label,
            r.rule,
            r.n,
            "" if r.value is None else f"{r.statistic} = {r.value:.4f}",
            fmt(r.p_two_sided, "{:.4g}") if r.p is not None else "",
            fmt(r.p, "{:.4g}") if r.p is not None else "",
            fmt(r.p_holm, "{:.4g}") if r.p_holm is not None else "",
            estimate_text(r),
            verdict_text(r) + "".join(f"; {x}" for x in (r.reason, r.note) if x),
            r.published,
        ]
        for r in results
    ]
    s.table(
        Table(
            "published_claims",
            "The study's tables A1-A4 under the declared tests and both divergence rules",
            [
                "Claim",
                "Diverged runs",
                "n",
                "Statistic",
                "p (two-sided)",
                "p (declared)",
                "p (Holm)",
                "Estimate [interval at the Holm level]",
                "Verdict",
                "The study printed",
            ],
            rows,
            "Rule 'chance' counts each 'nan' as 10% (it recovers the study's r and t exactly); "
            "'exclude' drops those cells, the cells at chance on the study's 10,000 test "
            f"images (binomial test), and their pairs. {VERDICT_RULE}",
        )
    )
    for rule in RULES:
        lines = [
            f"{r.label}: **{verdict_text(r)}**"
            + (f" ({estimate_text(r)})" if r.estimate is not None else "")
            for r in results
            if r.rule == rule
        ]
        s.text(f"Under the '{rule}' rule: " + "; ".join(lines) + ".")
    return s
