"""Run a study until its claims are decided: seeds added look by look where claims are open.

The declared seeds are the first look. At each look every claim is decided at the look's
nominal levels (``analysis.sequential``: Lan-DeMets spending of each Holm step's level, for
"supported" and for "contradicted" alike); a claim decided stays decided (``frozen``). The next
look adds ``seeds_per_look`` seeds to the conditions that a claim still open reads, and only
to those. The study stops when every claim is decided, at its last planned look, or when the
next look would pass its budget.

Each look is recorded in the store, whole, once it is taken (``Store.record_look``): killing
the command between looks and running it again goes on from the last recorded look, and a
look whose runs were interrupted is taken when they have finished. Runs already in the store
count, so a study can be extended later by raising ``max_seeds``.

``only`` runs a part of the study as a sequential study of its own (one model pair at a time):
the claims whose runs all lie in the selection are decided, under the name
``study[field=value;...]`` so that its looks and another part's never mix. The other claims
(some or none of their runs selected) are left to other parts, and count in their family's
Holm steps as claims never rejected (p = 1): each part spends no more than its share of the
family's level, so the parts together reject no more than one study that ran them all would.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..analysis.evaluate import ClaimResult, claim_id, evaluate_claims, look_key, reader
from ..analysis.selection import num_classes_of
from ..analysis.sequential import SequentialDesign, at_look, look_fractions, spent
from ..analysis.verdicts import INCONCLUSIVE
from ..declared import ClaimSpec
from ..results import RunRecord, Store
from ..training.config import ConfigError, RunConfig
from .runner import Log, run_key, run_study
from .spec import Filters, StudySpec, select_runs, selected


@dataclasses.dataclass
class SequentialOutcome:
    name: str  # the study's (a part's: "study[field=value]")
    looks: int  # looks taken in all (this call and earlier ones)
    stopped: str  # "decided", "last look", "budget", "failed runs"
    verdicts: dict[str, str]  # look key -> verdict under the claim's own rule
    run_epochs: float  # the study's run-epochs in all
    fixed_run_epochs: float  # a fixed design at max_seeds for every condition
    counts: dict[str, int]


def run_until_decided(
    spec: StudySpec,
    db: str | Path,
    design: SequentialDesign | None = None,
    log: Log | None = None,
    only: Filters | None = None,
    **run: Any,
) -> SequentialOutcome:
    """Run ``spec`` look by look under ``design`` (default: its ``[sequential]`` section);
    ``only`` (field -> values, no seeds) decides the part of the study it selects (see the
    module's text); ``run`` goes to :func:`run_study` (executor, workers, runs_dir, ...)."""
    design = design or spec.sequential
    if design is None:
        raise ConfigError(
            f"{spec.name}: --until-decided needs a [sequential] section in the study file "
            "(max_seeds at least)"
        )
    if not spec.claims:
        raise ConfigError(f"{spec.name}: --until-decided needs declared [[claims]] to decide")
    if design.first != len(spec.seeds):
        design = dataclasses.replace(design, first=len(spec.seeds))
    part = Part.of(spec, only or {})
    spec = part.spec
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    rule_of = {c.id: c.diverged for c in spec.claims}
    with Store(db) as store:
        recorded = store.looks(spec.name)
    taken = sorted({r["look"] for r in recorded})
    fractions = look_fractions(recorded)
    frozen = {(r["claim"], r["rule"]): r["verdict"] for r in recorded if r["decided"]}
    last = {(r["claim"], r["rule"]): r["verdict"] for r in recorded if r["look"] == taken[-1]}
    open_keys = (
        {c for (c, rule), v in last.items() if rule == rule_of[claim_id(c)] and v == INCONCLUSIVE}
        if taken else None
    )  # fmt: skip
    seeds_now = max((r["seeds"] for r in recorded), default=0)
    counts: dict[str, int] = {}
    stopped = "last look"
    last_results: list[ClaimResult] = []
    while True:
        seeds = design.first if not taken else design.next_seeds(seeds_now)
        if taken and not open_keys:
            stopped = "decided"
            break
        if seeds is None:
            break
        if fractions and design.fraction(seeds) <= fractions[-1]:
            raise ConfigError(
                f"{spec.name}: its looks so far reached {fractions[-1]:.0%} of the information "
                f"of max_seeds {seeds_now if fractions[-1] >= 1 else '(as declared then)'}; a "
                f"look at {seeds} of {design.most} seeds would go back to "
                f"{design.fraction(seeds):.0%}: the level already spent cannot be spent again. "
                "Run the larger design as a study of its own (another file name)"
            )
        looked = {"seeds": list(spec.seeds_up_to(seeds)), "sequential": False}
        plan = spec.with_overrides(looked, "sequential look")
        with Store(db) as store:
            held = set(store.statuses(spec.name))  # the runs earlier looks registered
        keep = _keep(spec, plan, part, held, seeds_now, open_keys)
        if taken and _over_budget(design, spec, plan, held, keep, t0, log):
            stopped = "budget"
            for r in last_results:  # what each open claim would need, from the last look
                if look_key(r) in (open_keys or ()) and r.rule == rule_of[r.id]:
                    need = r.advice or r.reason or "more seeds"
                    log(f"{spec.name}: open: {look_key(r)}: {need}")
            break
        log(
            f"{spec.name}: look {len(taken) + 1}: {seeds} seed(s) per condition"
            + (f" for {len(open_keys or ())} open claim(s)" if taken else "")
        )
        counts = run_study(plan, db, log=log, keep=keep, **run)
        if counts.get("failed") or counts.get("left") or counts.get("interrupted"):
            stopped = "failed runs"
            log(
                f"{spec.name}: look {len(taken) + 1} not taken: {counts['failed']} run(s) "
                "failed and the look needs them all (re-run to retry them)"
            )
            break
        fraction = design.fraction(seeds)
        with Store(db) as store:
            runs = store.runs(spec.name)
            results = decide_look(part.claims(plan), runs, [*fractions, fraction],
                                  design.spending, frozen, part.absent)  # fmt: skip
            last_results = results
            rows = _rows(results, seeds, fraction, design, frozen, runs)
            store.record_look(spec.name, len(taken) + 1, rows)
        taken.append(len(taken) + 1)
        fractions.append(fraction)
        seeds_now = seeds
        for row in rows:
            if row["decided"]:
                frozen[(row["claim"], row["rule"])] = row["verdict"]
        own = [r for r in rows if r["rule"] == rule_of[claim_id(r["claim"])]]
        open_keys = {r["claim"] for r in own if r["verdict"] == INCONCLUSIVE}
        decided = ", ".join(f"{r['claim']}: {r['verdict']}" for r in own if r["decided"])
        log(
            f"{spec.name}: look {len(taken)} at {seeds} seed(s) (information {fraction:.0%}): "
            f"{len(own) - len(open_keys)} of {len(own)} claim(s) decided"
            + (f"; now decided: {decided}" if decided else "")
        )
    with Store(db) as store:
        recorded = store.looks(spec.name)
        final = {
            r["claim"]: r["verdict"] for r in recorded if r["rule"] == rule_of[claim_id(r["claim"])]
        }  # the last look's verdict per claim (rows are in look order)
        runs = store.runs(spec.name)
        counts = store.status_counts(spec.name)
    spent_epochs = float(sum(r.config.epochs for r in runs))
    return SequentialOutcome(
        name=spec.name,
        looks=len(taken),
        stopped=stopped,
        verdicts=final,
        run_epochs=spent_epochs,
        fixed_run_epochs=_fixed_cost(spec, design, part),
        counts=counts,
    )


@dataclasses.dataclass(frozen=True)
class Part:
    """The part of a study that a sequential call decides: the whole study, or what ``only``
    selects (its own name, the claims whose runs all lie in it, and how many of each family's
    claims it leaves to other parts)."""

    spec: StudySpec
    only: Filters
    ids: frozenset[str]
    absent: Mapping[str, int]

    @classmethod
    def of(cls, spec: StudySpec, only: Filters) -> Part:
        ids = frozenset(c.id for c in spec.claims)
        if not only:
            return cls(spec, only, ids, {})
        if "seed" in only:
            raise ConfigError(
                f"{spec.name}: --until-decided chooses the seeds look by look: --only seed=... "
                "does not go with it (select conditions: model=..., batch_norm=...)"
            )
        runs = spec.expand()
        inside = {run_key(c) for c in select_runs(runs, only, spec.name)}
        kept: set[str] = set()
        absent: Counter[str] = Counter()
        short = []
        for claim in spec.claims:
            read = [c for c in runs if reader(claim, c.to_dict()) is not None]
            held = sum(run_key(c) in inside for c in read)
            if read and held == len(read):
                kept.add(claim.id)
            else:  # another part decides it (a part that holds all its runs)
                absent[claim.family] += 1
                short.append(f"{claim.id} ({held} of its {len(read)} runs)")
        if not kept:
            raise ConfigError(
                f"{spec.name}: --only {_label(only)} holds every run of none of its claims: "
                f"nothing to decide ({', '.join(short)}); a part decides whole claims"
            )
        named = dataclasses.replace(spec, name=f"{spec.name}[{_label(only)}]")
        return cls(named, only, frozenset(kept), dict(absent))

    def claims(self, plan: StudySpec) -> list[ClaimSpec]:
        return [c for c in plan.claims if c.id in self.ids]

    def holds(self, config: RunConfig) -> bool:
        return selected(config, self.only)


def _label(only: Filters) -> str:
    return ";".join(f"{k}={','.join(map(str, vs))}" for k, vs in sorted(only.items()))


def _keep(
    spec: StudySpec,
    plan: StudySpec,
    part: Part,
    held: set[str],
    seeds_now: int,
    open_keys: set[str] | None,
) -> Callable[[RunConfig], bool] | None:
    """Which runs a look declares: at the first, all (of the part); later, those of earlier
    looks (``held``) and the new seeds of the conditions an open claim reads."""
    if open_keys is None:
        return part.holds if part.only else None
    earlier = set(spec.seeds_up_to(seeds_now))
    claims = part.claims(plan)

    def keep(config: RunConfig) -> bool:
        if config.seed in earlier:
            return run_key(config) in held
        values = config.to_dict()
        return part.holds(config) and any(reader(c, values) in open_keys for c in claims)

    return keep


def decide_look(
    claims: Sequence[ClaimSpec],
    runs: list[RunRecord],
    fractions: Sequence[float],
    spending: str,
    frozen: Mapping[tuple[str, str], str],
    absent: Mapping[str, int] | None = None,
) -> list[ClaimResult]:
    """Every claim at a look: Holm's steps at the look's nominal levels (the information
    ``fractions`` of this look and the earlier ones), claims decided earlier kept; ``absent``
    counts each family's claims left to other parts of the study (never rejected here)."""
    chance = 100.0 / num_classes_of(r.provenance for r in runs)
    none: list[RunRecord] = []
    nominal = at_look(fractions, spending)
    return evaluate_claims(
        [(c, runs, none, "") for c in claims],
        chance,
        False,
        nominal=nominal,
        frozen=frozen,
        absent=absent,
    )


def verdict_of(r: ClaimResult, frozen: Mapping[tuple[str, str], str]) -> tuple[str, bool]:
    """A claim's verdict at a look and whether this look decided it."""
    was = frozen.get((look_key(r), r.rule))
    verdict = was or (INCONCLUSIVE if r.reason else (r.outcome or INCONCLUSIVE))
    return verdict, was is None and verdict != INCONCLUSIVE


def _rows(
    results: list[ClaimResult],
    seeds: int,
    fraction: float,
    design: SequentialDesign,
    frozen: dict[tuple[str, str], str],
    runs: list[RunRecord],
) -> list[dict[str, Any]]:
    run_epochs = float(sum(x.config.epochs for x in runs))
    rows = []
    for r in results:
        verdict, decided = verdict_of(r, frozen)
        was = frozen.get((look_key(r), r.rule))
        rows.append(
            {
                "taken": time.time(),
                "seeds": seeds,
                "fraction": fraction,
                "spending": design.spending,
                "claim": look_key(r),
                "rule": r.rule,
                "estimate": r.estimate,
                "p": r.p,
                # a claim decided earlier is not tested again: no level at this look
                "level": None if was else r.level,
                "p_contra": r.p_contra,
                "contra_level": None if was else r.contra_level,
                "alpha_spent": spent(r.alpha, fraction, design.spending),
                "verdict": verdict,
                "decided": int(decided),
                "runs": r.n,
                "run_epochs": run_epochs,
            }
        )
    return rows


def _over_budget(
    design: SequentialDesign,
    spec: StudySpec,
    plan: StudySpec,
    held: set[str],
    keep: Callable[[RunConfig], bool] | None,
    t0: float,
    log: Log,
) -> bool:
    """Whether the next look would pass the budget (run-epochs in all, or this call's hours)."""
    if design.budget_hours is not None and time.perf_counter() - t0 > design.budget_hours * 3600:
        log(f"{spec.name}: budget of {design.budget_hours:g} h spent; the open claims stay open")
        return True
    if design.budget is None:
        return False
    chosen = [c for c in plan.expand() if keep is None or keep(c)]
    after = sum(c.epochs for c in chosen)
    new = sum(c.epochs for c in chosen if run_key(c) not in held)
    if after > design.budget:
        log(
            f"{spec.name}: the next look needs {new:g} more run-epochs ({after:g} in all), past "
            f"the budget of {design.budget:g}; the open claims stay open"
        )
        return True
    return False


def _fixed_cost(spec: StudySpec, design: SequentialDesign, part: Part) -> float:
    """Run-epochs of the fixed design that runs every condition (of the part) at the most
    seeds."""
    runs = [c for c in spec.expand() if part.holds(c)]
    return sum(c.epochs for c in runs) / len(spec.seeds) * design.most
