"""The study's tables regenerated from the store (Tables A1-A4, Table 3) and the paper's.

A :class:`Table` is plain data (columns and rows of values); the report renders it as
Markdown, HTML and CSV. Accuracies are means over seeds of the final test accuracy.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .stats import summarize

MODEL_LABELS = {
    "alexnet": "AlexNet",
    "squeezenet1_0": "SqueezeNet 1.0",
    "squeezenet1_1": "SqueezeNet 1.1",
}
DIVERGED = "†"


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
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for row in self.rows:
            cells = (self.cell(c, v) for c, v in zip(self.columns, row))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_html(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{self.cell(c, v)}</td>" for c, v in zip(self.columns, row))
            + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def finished(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["status"] in ("done", "diverged")]


def group(runs: Iterable[dict[str, Any]], keys: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    """Group runs by the values of config ``keys`` (seeds fall into the same cell)."""
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault(tuple(r["config"][k] for k in keys), []).append(r)
    return dict(sorted(cells.items(), key=lambda kv: tuple(_sortable(v) for v in kv[0])))


def _sortable(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def mean_acc(runs: list[dict[str, Any]], metric: str = "test_acc") -> float | None:
    values = [r[metric] for r in runs if r[metric] is not None]
    return sum(values) / len(values) if values else None


def acc_cell(runs: list[dict[str, Any]]) -> str | float | None:
    """Mean accuracy over seeds; marked with a dagger when any seed diverged."""
    value = mean_acc(runs)
    if value is None:
        return None
    return f"{value:.2f}{DIVERGED}" if any(r["status"] == "diverged" for r in runs) else value


GRID_KEYS = ("batch_size", "lr", "momentum", "weight_decay")
GRID_COLUMNS = ["Batch size", "Learning rate", "Momentum", "Weight decay"]


def table_a1(runs: list[dict[str, Any]]) -> Table:
    """Table A1: every grid point's accuracy, one column per model."""
    runs = finished(runs)
    models = sorted({r["config"]["model"] for r in runs})
    rows = []
    for cell, members in group(runs, GRID_KEYS).items():
        by_model = group(members, ("model",))
        rows.append([*cell, *(acc_cell(by_model.get((m,), [])) for m in models)])
    return Table(
        "table_a1_grid",
        "Table A1: grid search, test accuracy (%) per batch size x learning rate x momentum "
        "x weight decay",
        GRID_COLUMNS + [f"{label(m)} accuracy (%)" for m in models],
        rows,
        f"{DIVERGED} diverged (non-finite loss; accuracy at chance, as the study's tables).",
        {"Learning rate": "{:g}", "Momentum": "{:g}", "Weight decay": "{:g}"},
    )


def table_3(runs: list[dict[str, Any]]) -> Table:
    """Table 3: the best grid point per model (mean test accuracy over seeds)."""
    rows = []
    for (model,), members in group(finished(runs), ("model",)).items():
        cells = group(members, GRID_KEYS)
        best_cell, best_runs = max(cells.items(), key=lambda kv: mean_acc(kv[1]) or -1.0)
        rows.append([label(model), *best_cell, mean_acc(best_runs), len(best_runs)])
    return Table(
        "table_3_best",
        "Table 3: best grid point per model",
        ["Model", *GRID_COLUMNS, "Accuracy (%)", "Seeds"],
        rows,
        formats={"Learning rate": "{:g}", "Momentum": "{:g}", "Weight decay": "{:g}"},
    )


def fire_label(delta: int) -> str:
    if delta == 0:
        return "plain"
    word = "module" if abs(delta) == 1 else "modules"
    return f"{abs(delta)} Fire {word} {'removed' if delta < 0 else 'added'}"


def relative_accuracy(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each macro variant's accuracy minus plain SqueezeNet's under the same condition."""
    cond = ("lr", "momentum", "batch_size", "weight_decay", "seed")
    base = {
        tuple(r["config"][k] for k in cond): r["test_acc"]
        for r in finished(runs)
        if r["config"]["fire_delta"] == 0
    }
    out = []
    for r in finished(runs):
        key = tuple(r["config"][k] for k in cond)
        if r["config"]["fire_delta"] != 0 and key in base and r["test_acc"] is not None:
            out.append(
                {"run": r, "delta": r["config"]["fire_delta"], "rel": r["test_acc"] - base[key]}
            )
    return out


def table_a2(runs: list[dict[str, Any]], params_of: Callable[[dict], int]) -> Table:
    """Table A2: macro ablations, accuracy and accuracy relative to plain SqueezeNet."""
    rel = {}
    for item in relative_accuracy(runs):
        c = item["run"]["config"]
        rel.setdefault((c["fire_delta"], c["lr"], c["momentum"]), []).append(item["rel"])
    rows = []
    for (delta, lr, m), members in group(finished(runs), ("fire_delta", "lr", "momentum")).items():
        diffs = rel.get((delta, lr, m))
        rows.append(
            [
                fire_label(delta),
                params_of(members[0]["config"]),
                lr,
                m,
                acc_cell(members),
                sum(diffs) / len(diffs) if diffs else None,
            ]
        )
    return Table(
        "table_a2_macro",
        "Table A2: SqueezeNet with Fire modules removed or added (test accuracy, %)",
        ["Version", "Parameters", "Learning rate", "Momentum", "Accuracy (%)", "Relative (points)"],
        rows,
        f"Relative: variant minus plain SqueezeNet under the same condition. {DIVERGED} diverged.",
        {"Parameters": "{:,}", "Learning rate": "{:g}", "Momentum": "{:g}"},
    )


def paired_table(
    runs: list[dict[str, Any]],
    name: str,
    title: str,
    treatment: Callable[[dict], bool],
    labels: tuple[str, str],
    cond: Sequence[str] = ("lr", "momentum"),
    note: str = "",
) -> Table:
    """A treatment-vs-control table per condition (Tables A3 and A4)."""
    rows = []
    for cell, members in group(finished(runs), cond).items():
        a = [r for r in members if treatment(r["config"])]
        b = [r for r in members if not treatment(r["config"])]
        ma, mb = mean_acc(a), mean_acc(b)
        diff = ma - mb if ma is not None and mb is not None else None
        rows.append([*cell, acc_cell(a), acc_cell(b), diff, len(a)])
    return Table(
        name,
        title,
        [
            "Learning rate",
            "Momentum",
            f"{labels[0]} (%)",
            f"{labels[1]} (%)",
            "Difference (points)",
            "Seeds",
        ],
        rows,
        note,
        {"Learning rate": "{:g}", "Momentum": "{:g}"},
    )


def design_table(
    runs: list[dict[str, Any]], axis: str, name: str, title: str, params_of: Callable[[dict], int]
) -> Table:
    """A design-space table (squeeze ratio, pct3x3, bypass): size and accuracy per value."""
    rows = []
    for (value,), members in group(finished(runs), (axis,)).items():
        params = params_of(members[0]["config"])
        values = [r["test_acc"] for r in members if r["test_acc"] is not None]
        s = summarize(values) if values else None
        rows.append(
            [
                value,
                params,
                params * 4 / 1e6,
                acc_cell(members),
                s.sd if s and s.n > 1 else None,
                len(members),
            ]
        )
    return Table(
        name,
        title,
        [axis, "Parameters", "Size (MB)", "Accuracy (%)", "SD", "Seeds"],
        rows,
        formats={axis: "{:g}", "Parameters": "{:,}", "Size (MB)": "{:.2f}"},
    )
