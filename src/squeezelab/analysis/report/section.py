"""A report section: text, tables and figures in order; and the one number format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..tables import Table


@dataclass
class Section:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def text(self, s: str) -> None:
        self.blocks.append(("p", s))

    def table(self, t: Table) -> None:
        self.blocks.append(("table", t))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", path, caption))

    def details(self, summary: str, text: str) -> None:
        """A paragraph folded under a one-line summary (HTML ``<details>``)."""
        self.blocks.append(("details", summary, text))


def fmt(x: float | None, spec: str = "{:.2f}") -> str:
    return "n/a" if x is None or not math.isfinite(x) else spec.format(x)
