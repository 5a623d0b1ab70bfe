"""Replay a study's finished runs in seed order as if it had been run sequentially.

Seeds are taken in increasing order: the first look reads the first ``--first`` seeds of every
condition, each later look one seed more for the conditions an open claim reads, deciding
every claim with the library's own look (``studies.sequential.decide_look``: Holm's steps at
the look's Lan-DeMets nominal levels, decided claims kept). It prints one JSON object: each
look (seeds, information, each claim's verdict, p and level), the final verdicts beside those
of the fixed design on every seed, and the run-epochs the sequential design used against the
fixed design's. A part of a study (``study run --only ... --until-decided``) is replayed with
the claims its recorded looks decided; the others it left to other parts count in their
family's Holm steps as never rejected, as its own looks count them.

Usage:
  python benchmarks/sequential_replay.py --db STORE --study NAME [--first 3] [--spending pocock]
  python benchmarks/sequential_replay.py --recorded modern-compare   # the README's per-seed table
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from squeezelab.analysis.evaluate import claim_id, evaluate_claims, look_key, reader
from squeezelab.analysis.sequential import SPENDING, SequentialDesign
from squeezelab.declared import ClaimSpec, DeclaredStudy
from squeezelab.results import RunRecord, Store
from squeezelab.studies.sequential import decide_look, verdict_of


def condition(r: RunRecord) -> str:
    return json.dumps({k: v for k, v in r.config.items() if k != "seed"}, sort_keys=True,
                      default=str)  # fmt: skip


def looked_at(
    claims: list[ClaimSpec], looks: list[dict[str, Any]]
) -> tuple[list[ClaimSpec], Counter[str]]:
    """The claims a sequential study's recorded looks decided, and per family how many it left
    to other parts; a study without looks (a fixed one) decides them all."""
    if not looks:
        return claims, Counter()
    ids = {claim_id(r["claim"]) for r in looks}
    return [c for c in claims if c.id in ids], Counter(c.family for c in claims if c.id not in ids)


def replay(claims: list[ClaimSpec], runs: list[RunRecord], first: int, spending: str,
           rule_of: dict[str, str], absent: Counter[str] | None = None
           ) -> dict[str, Any]:  # fmt: skip
    seeds = sorted({int(r.config["seed"]) for r in runs})
    design = SequentialDesign(first=min(first, len(seeds)), max_seeds=len(seeds), spending=spending)
    limit = {condition(r): design.first for r in runs}  # seeds each condition has run
    fixed = evaluate_claims([(c, runs, [], "") for c in claims], bootstrap=False, absent=absent)
    frozen: dict[tuple[str, str], str] = {}
    fractions: list[float] = []
    looks = []
    final: dict[str, str] = {}
    for n in design.schedule:
        fractions.append(design.fraction(n))
        used = [r for r in runs if seeds.index(int(r.config["seed"])) < limit[condition(r)]]
        results = decide_look(claims, used, fractions, spending, frozen, absent)
        row: dict[str, Any] = {"seeds": n, "information": round(fractions[-1], 3), "claims": {}}
        open_keys = set()
        for r in results:
            verdict, decided = verdict_of(r, frozen)
            if decided:
                frozen[(look_key(r), r.rule)] = verdict
            if r.rule != rule_of[r.id]:
                continue
            final[look_key(r)] = verdict
            row["claims"][look_key(r)] = {
                "verdict": verdict,
                "p": r.p,
                "level": r.level,
                "p_contra": r.p_contra,
            }
            if verdict == "inconclusive":
                open_keys.add(look_key(r))
        looks.append(row)
        if not open_keys:
            break
        nxt = design.next_seeds(n)
        if nxt is None:
            break
        for r in runs:  # the next seed goes to the conditions an open claim reads
            if any(reader(c, r.config) in open_keys for c in claims):
                limit[condition(r)] = nxt
    used = [r for r in runs if seeds.index(int(r.config["seed"])) < limit[condition(r)]]
    run_epochs = sum(r.config.get("epochs", 1) for r in used)
    fixed_epochs = sum(r.config.get("epochs", 1) for r in runs)
    return {
        "spending": spending,
        "first_seeds": design.first,
        "max_seeds": design.most,
        "looks": looks,
        "verdicts": final,
        "fixed_design_verdicts": {look_key(r): r.verdict for r in fixed if r.rule == rule_of[r.id]},
        "run_epochs": run_epochs,
        "fixed_run_epochs": fixed_epochs,
        "compute_vs_fixed": round(run_epochs / fixed_epochs, 3) if fixed_epochs else None,
    }


def recorded(name: str) -> tuple[list[ClaimSpec], list[RunRecord]]:
    """A study's runs rebuilt from per-seed accuracies kept outside a store."""
    if name != "modern-compare":
        raise SystemExit(f"sequential_replay: no recorded runs of {name!r} (only modern-compare)")
    sys.path.insert(0, str(Path(__file__).parent))
    from modern_compare_reanalysis import recorded_runs

    spec, runs = recorded_runs()
    return list(spec.claims), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="the store")
    parser.add_argument("--study", help="the study whose runs to replay")
    parser.add_argument("--recorded", help="replay a study's recorded per-seed table instead")
    parser.add_argument("--first", type=int, default=3, help="seeds at the first look (3)")
    parser.add_argument("--spending", choices=SPENDING, default="obrien-fleming")
    args = parser.parse_args()
    absent: Counter[str] = Counter()
    if args.recorded:
        claims, runs = recorded(args.recorded)
        source = f"recorded per-seed accuracies of {args.recorded}"
    else:
        if not (args.db and args.study):
            parser.error("give --db and --study, or --recorded NAME")
        with Store(args.db) as store:
            spec = DeclaredStudy.from_stored(args.study, store.study_spec(args.study))
            runs = [r for r in store.runs(args.study) if r.status in ("done", "diverged")]
            looks = store.looks(args.study)
        claims, absent = looked_at(list(spec.claims), looks)
        source = f"{args.db}: study {args.study}"
    if not claims or not runs:
        raise SystemExit("sequential_replay: the study has no declared claims or no finished runs")
    rule_of = {c.id: c.diverged for c in claims}
    out = replay(claims, runs, args.first, args.spending, rule_of, absent)
    print(json.dumps({"source": source, "runs": len(runs), **out}))


if __name__ == "__main__":
    main()
