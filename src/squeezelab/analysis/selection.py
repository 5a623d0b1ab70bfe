"""Choosing a study's best point per group: on validation accuracy, one tie rule everywhere.

Both the runner (``[best_of]``: the compare study's training points) and the report's
best-point table call :func:`select_best`, so they always agree. A cell's score is the mean
validation accuracy over its seeds, a diverged seed counting 0; ties go to the cell that
sorts first (smallest batch size, then learning rate, ...). Test accuracy is never read.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..results.records import RunRecord
from .stats import least_significant_difference

SELECTION_METRIC = "val_acc"


def _sortable(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def _run_score(r: RunRecord) -> float:
    value = getattr(r.result, SELECTION_METRIC)
    return 0.0 if r.status == "diverged" or value is None else float(value)


def _ranked(
    runs: list[RunRecord], group_by: Sequence[str], fields: Sequence[str]
) -> dict[tuple, list[tuple[float, tuple, list[RunRecord]]]]:
    """Every cell of each group as (score, cell, runs), best first; ties in sorted order."""
    cells: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        if not r.finished_ok:
            continue
        cells.setdefault(tuple(r.config[k] for k in (*group_by, *fields)), []).append(r)
    ranked: dict[tuple, list[tuple[float, tuple, list[RunRecord]]]] = {}
    for cell in sorted(cells, key=lambda c: tuple(_sortable(v) for v in c)):
        members = cells[cell]
        score = sum(_run_score(r) for r in members) / len(members)
        ranked.setdefault(cell[: len(group_by)], []).append((score, cell, members))
    for entries in ranked.values():
        entries.sort(key=lambda e: -e[0])  # stable: the first cell wins ties
    return dict(sorted(ranked.items(), key=lambda kv: tuple(_sortable(v) for v in kv[0])))


def select_best(
    runs: list[RunRecord], group_by: Sequence[str], fields: Sequence[str]
) -> list[tuple[dict[str, Any], float, list[RunRecord]]]:
    """Return (point, mean validation accuracy, its runs) of the best cell of each group."""
    keys = (*group_by, *fields)
    return [
        (dict(zip(keys, cell)), score, members)
        for (score, cell, members), *_ in _ranked(runs, group_by, fields).values()
    ]


@dataclass(frozen=True)
class Spread:
    """A cell's seed count and the SD of its seeds' validation accuracy (None: one seed)."""

    n: int
    sd: float | None

    @classmethod
    def of(cls, scores: Sequence[float]) -> Spread:
        return cls(len(scores), statistics.stdev(scores) if len(scores) > 1 else None)


@dataclass(frozen=True)
class Margin:
    """How far a group's best cell stands above the next best, against the seeds' spread."""

    runner_up: dict[str, Any] | None  # None: the group has one cell
    runner_up_score: float | None
    margin: float | None  # best minus runner-up, mean validation accuracy (points)
    lsd: float | None  # 95% least significant difference; None: one seed per cell
    spread: tuple[Spread, Spread | None]  # the chosen cell's seeds, the runner-up's (or None)

    @property
    def verdict(self) -> str:
        if self.runner_up is None or self.margin is None:
            return "only cell"
        if self.lsd is None:
            return "undecidable: one seed per cell, so no measured spread"
        if self.margin > self.lsd:
            return "decided"
        return "within seed noise"


def selection_margins(
    runs: list[RunRecord], group_by: Sequence[str], fields: Sequence[str]
) -> list[Margin]:
    """For each group (in :func:`select_best`'s order), the winner's margin over the runner-up.

    The least significant difference pools the seed-to-seed variance of every cell in the
    group; a margin inside it means the choice could flip with other seeds. It is not
    corrected for picking the largest of several cells, so "decided" is the weaker claim.
    Pooling assumes the cells are about as steady as each other; each margin also carries the
    two cells' own spreads, so a reader sees when one is far less steady than the other.
    """
    keys = (*group_by, *fields)
    out = []
    for entries in _ranked(runs, group_by, fields).values():
        scores = [[_run_score(r) for r in members] for _, _, members in entries]
        own = Spread.of(scores[0])
        if len(entries) < 2:
            out.append(Margin(None, None, None, None, (own, None)))
            continue
        (best, _, first), (second, cell, other) = entries[0], entries[1]
        lsd = least_significant_difference(scores, len(first), len(other))
        spread = (own, Spread.of(scores[1]))
        out.append(Margin(dict(zip(keys, cell)), second, best - second, lsd, spread))
    return out


def varying_fields(runs: list[RunRecord], exclude: Sequence[str] = ("model", "seed")) -> list:
    """The config fields whose values differ between ``runs`` (the study's conditions)."""
    if not runs:
        return []
    first = runs[0].config
    return sorted(
        {k for r in runs for k, v in r.config.items() if v != first.get(k)} - set(exclude)
    )


def equal_seeds(groups: Sequence[list[RunRecord]]) -> tuple[list[list[RunRecord]], int]:
    """Each group's cells cut to the same number of seeds, so that best cells compare like
    with like: the best of cells averaging one seed is the luckiest seed, and set beside a
    best cell of three seeds it wins on luck. k is the smallest, over groups, of a group's
    largest seed count; each cell keeps its k lowest seeds and cells with fewer are left out.
    Returns (the groups' kept runs, k)."""
    cells = []
    for runs in groups:
        fields = varying_fields(runs, exclude=("seed",))
        by_cell: dict[tuple, list[RunRecord]] = {}
        for r in runs:
            by_cell.setdefault(tuple(repr(r.config.get(f)) for f in fields), []).append(r)
        cells.append(list(by_cell.values()))
    sizes = [max((len(c) for c in group), default=0) for group in cells]
    k = min((n for n in sizes if n), default=0)
    kept = [
        [r for c in group if len(c) >= k for r in sorted(c, key=lambda r: r.config["seed"])[:k]]
        for group in cells
    ]
    return kept, k


def best_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Every run (each seed) of each model's best cell, chosen on validation accuracy."""
    return [
        r for _, _, members in select_best(runs, ["model"], varying_fields(runs)) for r in members
    ]


def num_classes_of(recipes: Iterable[dict[str, Any] | None]) -> int:
    """The class count most runs' recipes record (10 when none does)."""
    counts = Counter(r.get("num_classes", 10) for r in recipes if r)
    return counts.most_common(1)[0][0] if counts else 10
