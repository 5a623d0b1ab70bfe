"""The report's read-only context: what every section reads, read once from the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ...declared import DeclaredStudy
from ...results import RunRecord, Store
from ..selection import num_classes_of
from ..tables import unique

PLAIN_EPOCHS, PLAIN_IMAGES = 10, 45_000  # the study's grid: 10 epochs over 45,000 images


def complexity_of(config: Mapping[str, Any], num_classes: int = 10) -> tuple[int, int]:
    """(params, MACs) of the model a run config describes (torch is imported on first use)."""
    from ...models.complexity import complexity_of as measure_config

    return measure_config(config, num_classes)


@dataclass(frozen=True)
class ReportContext:
    """Every run and source (once each), which are a study's own runs, their provenance, the
    class count and chance, and each study's declaration. Sections read it; none writes it."""

    out: Path
    every_run: tuple[RunRecord, ...]
    run_keys: frozenset[str]
    provenance: Mapping[str, dict[str, Any]]
    num_classes: int
    specs: Mapping[str, DeclaredStudy]

    @classmethod
    def read(cls, store: Store, out: Path) -> ReportContext:
        memberships = store.runs(role=None)  # every run and source, read once
        every_run = tuple(unique(memberships))
        provenance = {r.key: r.provenance for r in every_run if r.provenance}
        return cls(
            out=out,
            every_run=every_run,
            run_keys=frozenset(r.key for r in memberships if r.role == "run"),
            provenance=MappingProxyType(provenance),
            num_classes=num_classes_of(provenance.values()),
            specs=MappingProxyType(
                {n: DeclaredStudy.from_stored(n, store.study_spec(n)) for n in store.studies()}
            ),
        )

    @property
    def chance(self) -> float:
        return 100.0 / self.num_classes

    def params_of(self, config: Mapping[str, Any]) -> int:
        return complexity_of(config, self.num_classes)[0]
