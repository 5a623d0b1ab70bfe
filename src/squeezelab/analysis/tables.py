"""The study's tables regenerated from the store (Tables A1-A4, Table 3) and the paper's.

A :class:`Table` is plain data (columns and rows of values); the report renders it as
Markdown, HTML and CSV. Accuracies are means over seeds of the final test accuracy.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.registry import model_info
from ..results.records import RunRecord

DIVERGED = "†"
CUT = "‡"  # a confidence interval cut at the values an accuracy can take
CUT_NOTE = (
    f"{CUT} the t interval ran past 0 or 100% (seeds too unlike for its normal spread) and is "
    "cut there."
)


@dataclass
class Table:
    """A titled table of values; ``None`` renders as an empty cell."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    formats: dict[str, str] = field(default_factory=dict)

    def cell(self, column: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return self.formats.get(column, "{:.2f}").format(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return self.formats.get(column, "{}").format(value)
        return str(value)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        def esc(text: str) -> str:  # a "|" in a cell would end it
            return text.replace("|", "\\|")

        head = "| " + " | ".join(map(esc, self.columns)) + " |"
        lines = [head, "|" + "".join("---:|" if self._numeric(i) else "---|"
                                     for i in range(len(self.columns)))]  # fmt: skip
        for row in self.rows:
            cells = (esc(self.cell(c, v)) for c, v in zip(self.columns, row))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _numeric(self, index: int) -> bool:
        """Whether a column holds numbers (and blanks) only: those align right."""
        values = [row[index] for row in self.rows if index < len(row) and row[index] is not None]
        return bool(values) and all(_is_number(v) for v in values)

    def to_html(self) -> str:
        """The table as HTML, every header and cell escaped: claim statements, data paths and
        study names come from files a user may not have written."""
        numeric = [self._numeric(i) for i in range(len(self.columns))]
        head = "".join(
            f"<th{' class=num' if n else ''}>{html.escape(str(c))}</th>"
            for c, n in zip(self.columns, numeric)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td{' class=num' if _is_number(v) else ''}>{html.escape(self.cell(c, v))}</td>"
                for c, v in zip(self.columns, row)
            )
            + "</tr>"
            for row in self.rows
        )
        # a wide table scrolls inside its own box instead of widening the page
        return (
            f"<div class=scroll><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
        )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def label(model: str) -> str:
    """A model's display label, as its family registered it."""
    return model_info(model).label


def finished(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.finished_ok]


def unique(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """One record per run. The store lists a run once per study that holds it (a grid run
    is also the macro and batch-norm studies' plain cell), so a count or a summary over
    several studies' runs must take each run once."""
    return list({r.key: r for r in runs}.values())


def group(runs: Iterable[RunRecord], keys: Sequence[str]) -> dict[tuple, list[RunRecord]]:
    """Group runs by the values of config ``keys`` (seeds fall into the same cell)."""
    cells: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        cells.setdefault(tuple(r.config[k] for k in keys), []).append(r)
    return dict(sorted(cells.items(), key=lambda kv: tuple(_sortable(v) for v in kv[0])))


def _sortable(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def mean_acc(runs: list[RunRecord], metric: str = "test_acc") -> float | None:
    values = [getattr(r.result, metric) for r in runs if getattr(r.result, metric) is not None]
    return sum(values) / len(values) if values else None


def fire_label(delta: int) -> str:
    if delta == 0:
        return "plain"
    word = "module" if abs(delta) == 1 else "modules"
    return f"{abs(delta)} Fire {word} {'removed' if delta < 0 else 'added'}"


def condition_value(field_name: str, value: Any) -> Any:
    """A field's value as tables group and match it: ``init`` is scratch or pretrained, whatever
    the source (ImageNet, a local .pth, a source model pretrained here)."""
    if field_name == "init":
        return "scratch" if value is None else "pretrained"
    return value


def value_label(field_name: str, value: Any) -> str:
    """A readable label for one value of a run field (``init``: scratch or pretrained)."""
    if field_name == "model":
        return label(value)
    if field_name == "init":
        return condition_value(field_name, value)
    if field_name == "fire_delta":
        return fire_label(value)
    if isinstance(value, bool):
        return f"{field_name}={'yes' if value else 'no'}"
    return f"{field_name}={value:g}" if isinstance(value, float) else f"{field_name}={value}"


def relative_points(
    runs: list[RunRecord], x: str, base_value: Any, metric: str = "test_acc"
) -> list[dict[str, Any]]:
    """Each run's metric minus the run at ``x = base_value`` under the same condition and seed."""

    def cond(r: RunRecord) -> str:
        return json.dumps({k: v for k, v in r.config.items() if k != x}, sort_keys=True)

    done = finished(runs)
    base = {cond(r): getattr(r.result, metric) for r in done if r.config[x] == base_value}
    return [
        {"run": r, "x": r.config[x], "rel": getattr(r.result, metric) - base[cond(r)]}
        for r in done
        if r.config[x] != base_value
        and cond(r) in base
        and getattr(r.result, metric) is not None
        and base[cond(r)] is not None
    ]
