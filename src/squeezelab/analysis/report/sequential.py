"""A sequential study's looks: each claim's statistic against its boundaries, the level spent,
the verdict and the seeds it took, beside what the fixed design would have run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...results import RunRecord
from .. import figures
from ..evaluate import claim_id
from ..render import file_stem
from ..tables import Table
from .section import Section, fmt


def looks_section(
    name: str,
    looks: list[dict[str, Any]],
    runs: list[RunRecord],
    rule_of: dict[str, str],
    out: Path,
) -> Section:
    """One study's looks (``Store.looks``), under each claim's own divergence rule."""
    own = [r for r in looks if r["rule"] == rule_of.get(claim_id(r["claim"]), "chance")]
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for r in own:
        by_claim.setdefault(r["claim"], []).append(r)
    last = max(r["look"] for r in looks)
    most = round(max(r["seeds"] / r["fraction"] for r in looks))
    spending = looks[0]["spending"]
    conditions = {
        tuple(sorted((k, str(v)) for k, v in r.config.items() if k != "seed")) for r in runs
    }
    used = sum(r.config.get("epochs", 1) for r in runs)
    # conditions hold different numbers of seeds (only open claims' got more): the fixed
    # design runs each at the most seeds, at the study's mean epochs per run
    fixed = used / len(runs) * len(conditions) * most if runs else 0.0
    s = Section(f"Sequential looks: {name}")
    s.text(
        f"{name} ran until its claims were decided: {last} look(s), {spending} spending of each "
        f"claim's level over at most {most} seeds per condition. It used {used:g} run-epochs; "
        f"the fixed design at {most} seeds for every condition would have used {fixed:g} "
        f"({used / fixed:.0%})."
        if fixed
        else ""
    )
    rows = []
    for claim, members in by_claim.items():
        decided = next((r for r in members if r["decided"]), None)
        for r in members:
            rows.append(
                [
                    claim,
                    str(r["look"]),
                    str(r["seeds"]),
                    f"{r['fraction']:.0%}",
                    fmt(r["estimate"]),
                    fmt(r["p"], "{:.4f}"),
                    fmt(r["level"], "{:.4f}"),
                    fmt(r["p_contra"], "{:.4f}"),
                    fmt(r["alpha_spent"], "{:.4f}"),
                    r["verdict"] + (" (decided here)" if r is decided else ""),
                ]
            )
        state = (
            f"decided {decided['verdict']} at look {decided['look']} ({decided['seeds']} seeds)"
            if decided
            else f"still open after {len(members)} look(s): more seeds (a larger max_seeds, "
            "as a study of its own) would decide it"
        )
        s.text(f"- **{claim}**: {state}.")
    s.table(
        Table(
            f"looks_{file_stem(name)}",
            f"{name}: each look, under each claim's own divergence rule",
            [
                "Claim",
                "Look",
                "Seeds",
                "Information",
                "Estimate",
                "p",
                "Level at the look",
                "p (contradiction)",
                "Alpha spent",
                "Verdict",
            ],
            rows,
        )
    )
    path = out / f"{file_stem(name)}_looks.png"
    if figures.looks_figure(by_claim, path, f"{name}: each claim's looks"):
        s.figure(
            path,
            "Each look's support statistic (z of its one-sided p) and contradiction statistic "
            "against the boundaries the spending allows at that look; reaching a boundary "
            "decides the claim.",
        )
    return s
