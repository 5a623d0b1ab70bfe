"""Choosing a study's best point per group: on validation accuracy, one tie rule everywhere.

Both the runner (``[best_of]``: the compare study's training points) and the report's
best-point table call :func:`select_best`, so they always agree. A cell's score is the mean
validation accuracy over its seeds, a diverged seed counting 0; ties go to the cell that
sorts first (smallest batch size, then learning rate, ...). Test accuracy is never read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from ..results.records import RunRecord

CHANCE_BAND = 1.0  # accuracy points around chance that count as "learned nothing"

SELECTION_METRIC = "val_acc"


def _sortable(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def select_best(
    runs: list[RunRecord], group_by: Sequence[str], fields: Sequence[str]
) -> list[tuple[dict[str, Any], float, list[RunRecord]]]:
    """Return (point, mean validation accuracy, its runs) of the best cell of each group."""
    cells: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        if r.status not in ("done", "diverged"):
            continue
        cells.setdefault(tuple(r.config[k] for k in (*group_by, *fields)), []).append(r)
    winners: dict[tuple, tuple[float, tuple]] = {}
    order = sorted(cells, key=lambda c: tuple(_sortable(v) for v in c))
    for cell in order:
        members = cells[cell]
        score = sum(
            0.0
            if r.status == "diverged" or getattr(r.result, SELECTION_METRIC) is None
            else getattr(r.result, SELECTION_METRIC)
            for r in members
        ) / len(members)
        group = cell[: len(group_by)]
        if group not in winners or score > winners[group][0]:  # strict: the first cell wins ties
            winners[group] = (score, cell)
    keys = (*group_by, *fields)
    return [
        (dict(zip(keys, cell)), score, cells[cell])
        for group, (score, cell) in sorted(
            winners.items(), key=lambda kv: tuple(_sortable(v) for v in kv[0])
        )
    ]


def varying_fields(runs: list[RunRecord], exclude: Sequence[str] = ("model", "seed")) -> list:
    """The config fields whose values differ between ``runs`` (the study's conditions)."""
    if not runs:
        return []
    first = runs[0].config
    return sorted(
        {k for r in runs for k, v in r.config.items() if v != first.get(k)} - set(exclude)
    )


def best_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Every run (each seed) of each model's best cell, chosen on validation accuracy."""
    return [
        r for _, _, members in select_best(runs, ["model"], varying_fields(runs)) for r in members
    ]


def num_classes_of(recipes: Iterable[dict[str, Any] | None]) -> int:
    """The class count most runs' recipes record (10 when none does)."""
    counts = Counter(r.get("num_classes", 10) for r in recipes if r)
    return counts.most_common(1)[0][0] if counts else 10


def left_chance(score: float, chance: float) -> bool:
    """Whether a selection score is above chance: a best cell at chance is no winner."""
    return score > chance + CHANCE_BAND
