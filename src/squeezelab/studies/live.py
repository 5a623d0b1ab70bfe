"""A live view of running studies: one self-contained HTML page, rewritten while they run.

The page needs no server: open the file and it reloads itself. It shows each study's progress
(done / running / failed / stalled, k of N, an ETA), each run's validation curve so far (a
running run's from its own ``metrics.jsonl``, so the curve moves epoch by epoch), the grid so
far as a heatmap, and each declared claim's interim estimate, interval and verdict. It is
written atomically (a reader never sees half a page) and at most every few seconds, from the
driver only, by a thread with its own read-only connection: the study's processes never wait
for it. ``squeezelab study run ... --live PATH`` keeps it while a study runs;
``squeezelab watch --db STORE`` keeps it for studies started elsewhere.
"""

from __future__ import annotations

import html
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis.evaluate import evaluate_claims
from ..analysis.selection import num_classes_of, varying_fields
from ..declared import DeclaredStudy
from ..fileio import write_text
from ..results import RunRecord, Store, StoreError
from ..results.records import FINISHED
from ..storage import join, read_text
from ..training.layout import METRICS_FILE
from .progress import run_label

EVERY_S = 5.0  # the page's refresh and the writer's period
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:middle}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;height:14px;width:100%;max-width:600px;border:1px solid #ccc}
.bar span{display:block;height:100%}.done{background:#4c9f70}.running{background:#e0b040}
.failed{background:#c0504d}.stalled{background:#999}.left{background:#f3f3f3}
.interim{color:#a06000}.scroll{overflow-x:auto}.muted{color:#777}
"""


def _varying(runs: list[RunRecord]) -> list[str]:
    """The fields that tell a study's runs apart, the seed last."""
    seeds = len({r.config.get("seed") for r in runs}) > 1
    return varying_fields(runs, exclude=("seed",)) + (["seed"] if seeds else [])


def _curve(run: RunRecord) -> list[float]:
    """Validation accuracy per epoch: the store's for a finished run, the run directory's
    ``metrics.jsonl`` for one still training (the store has it only at the end; a run in
    storage, ``s3://.../KEY``, is read there: its node copies it every epoch)."""
    rows: list[dict[str, Any]] = list(run.history)
    if not rows and run.run_dir:
        try:
            text = read_text(join(run.run_dir, METRICS_FILE))
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, ValueError):
            rows = []  # not started yet, or a line being written
    return [float(r["val_acc"]) for r in rows if r.get("val_acc") is not None]


def sparkline(values: list[float], epochs: int, width: int = 160, height: int = 28) -> str:
    """An inline SVG of a curve on a 0-100% scale over the run's epochs."""
    if not values:
        return ""
    step = width / max(epochs - 1, 1)
    xy = [(i * step, height - v / 100 * height) for i, v in enumerate(values)]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    x, y = xy[-1]
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="validation accuracy per epoch">'
        f'<rect width="{width}" height="{height}" fill="#fafafa"/>'
        f'<polyline fill="none" stroke="#2b6cb0" stroke-width="1.5" points="{points}"/>'
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#2b6cb0"/></svg>'
    )


def _heatmap(runs: list[RunRecord], fields: list[str]) -> str:
    """The first two varying fields as rows and columns, the mean validation accuracy of the
    finished runs in each cell, coloured; empty cells wait for their runs."""
    axes = [f for f in fields if f != "seed"]
    if len(axes) < 2:
        return ""
    row_f, col_f = axes[0], axes[1]
    rows = sorted({str(r.config.get(row_f)) for r in runs})
    cols = sorted({str(r.config.get(col_f)) for r in runs})
    cells: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        if r.status in FINISHED and r.result.val_acc is not None:
            key = (str(r.config.get(row_f)), str(r.config.get(col_f)))
            cells.setdefault(key, []).append(float(r.result.val_acc))
    head = "".join(f"<th>{html.escape(col_f)}={html.escape(c)}</th>" for c in cols)
    body = []
    for rv in rows:
        tds = []
        for c in cols:
            values = cells.get((rv, c))
            if not values:
                tds.append('<td class="num muted">&middot;</td>')
                continue
            mean = statistics.fmean(values)
            shade = int(255 - min(max(mean, 0.0), 100.0) * 1.6)
            tds.append(
                f'<td class="num" style="background:rgb({shade},{min(255, shade + 60)},255)">'
                f"{mean:.1f}</td>"
            )
        body.append(f"<tr><th>{html.escape(row_f)}={html.escape(rv)}</th>{''.join(tds)}</tr>")
    return (
        f"<p>Mean validation accuracy (%) of the finished runs, by {html.escape(row_f)} and "
        f'{html.escape(col_f)}.</p><div class="scroll"><table><tr><th></th>{head}</tr>'
        f"{''.join(body)}</table></div>"
    )


def _claims(store: Store, name: str, runs: list[RunRecord], left: int) -> str:
    spec = DeclaredStudy.from_stored(name, store.study_spec(name))
    if not spec.claims:
        return ""
    finished = [r for r in runs if r.status in FINISHED]
    chance = 100.0 / num_classes_of(r.provenance for r in finished)
    none: list[RunRecord] = []
    results = evaluate_claims([(c, finished, none, "") for c in spec.claims], chance, False)
    rule_of = {c.id: c.diverged for c in spec.claims}
    rows = []
    for r in results:
        if r.rule != rule_of.get(r.id):
            continue
        interval = (
            f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
            if r.ci_low is not None and r.ci_high is not None
            else ""
        )
        estimate = f"{r.estimate:+.2f}" if r.estimate is not None else ""
        mark = " (interim)" if left else ""
        rows.append(
            f"<tr><td>{html.escape(r.label)}</td><td class='num'>{r.n}</td>"
            f"<td class='num'>{estimate}</td><td class='num'>{interval}</td>"
            f"<td class='interim'>{html.escape(r.verdict)}{mark}</td>"
            f"<td class='muted'>{html.escape(r.reason)}</td></tr>"
        )
    note = (
        f"Interim: {left} run(s) of the study have not finished; the declared test is the whole "
        "study's, and a verdict read now may still move."
        if left
        else "Every run has finished: these are the study's verdicts (the report has them all)."
    )
    return (
        f"<p>{note}</p><div class='scroll'><table><tr><th>Claim</th><th>n</th>"
        f"<th>Estimate</th><th>Interval</th><th>Verdict</th><th>Why, if undecided</th></tr>"
        f"{''.join(rows)}</table></div>"
    )


def _eta(runs: list[RunRecord], running: int, left: int) -> str:
    times = [r.result.train_s for r in runs if r.status in FINISHED and r.result.train_s]
    if not times or not (running or left):
        return ""
    per_run = statistics.median(times)
    parallel = max(running, 1)
    seconds = per_run * (left + running / 2) / parallel
    minutes = round(seconds / 60)
    return f"; about {minutes // 60}h{minutes % 60:02d}m left at the median run's time"


def _study(store: Store, name: str, stalled_of: Callable[[RunRecord], bool]) -> str:
    runs = store.runs(name, role="run")
    counts = store.status_counts(name)
    stalled = sum(1 for r in runs if r.status == "done" and stalled_of(r))
    total = len(runs)
    done = counts["done"] + counts["diverged"]
    running, failed, left = counts["running"], counts["failed"], counts["left"]
    left += counts["interrupted"]
    parts = [
        ("done", counts["done"] - stalled + counts["diverged"]),
        ("stalled", stalled),
        ("running", running),
        ("failed", failed),
        ("left", left),
    ]
    bar = "".join(
        f'<span class="{cls}" style="width:{100 * n / max(total, 1):.2f}%" title="{cls}: {n}">'
        "</span>"
        for cls, n in parts
        if n
    )
    fields = _varying(runs)
    rows = []
    for r in sorted(runs, key=lambda r: (r.status not in ("running",), r.key)):
        curve = _curve(r)
        epochs = int(r.config.get("epochs") or 1)
        ran = r.result.epochs if r.status in FINISHED and r.result.epochs else len(curve)
        last = f"{curve[-1]:.1f}" if curve else ""
        state = "stalled" if r.status == "done" and stalled_of(r) else r.status
        rows.append(
            f"<tr><td>{html.escape(run_label(r.config, fields) or 'run')}</td><td>{state}</td>"
            f"<td class='num'>{ran}/{epochs}</td><td class='num'>{last}</td>"
            f"<td>{sparkline(curve, epochs)}</td></tr>"
        )
    heatmap = _heatmap(runs, fields)
    summary = (
        f"{done} of {total} runs finished ({counts['diverged']} diverged, {stalled} stalled at "
        f"chance), {running} running, {failed} failed, {left} left{_eta(runs, running, left)}."
    )
    return (
        f"<h2>{html.escape(name)}</h2><p>{summary}</p><div class='bar'>{bar}</div>"
        f"<h3>Claims</h3>{_claims(store, name, runs, total - done) or '<p>None declared.</p>'}"
        f"{'<h3>The grid so far</h3>' + heatmap if heatmap else ''}"
        f"<h3>Runs</h3><div class='scroll'><table><tr><th>Run</th><th>State</th>"
        f"<th>Epochs</th><th>Val. acc. (%)</th><th>Curve so far</th></tr>{''.join(rows)}"
        "</table></div>"
    )


def render(db: str | Path, studies: list[str] | None = None, every: float = EVERY_S) -> str:
    """The live page of ``studies`` (default: every study in the store)."""
    with Store(db, readonly=True) as store:
        names = [n for n in (studies or store.studies()) if n in store.studies()]
        finished = [r for n in names for r in store.runs(n) if r.status in FINISHED]
        chance = 100.0 / num_classes_of(r.provenance for r in finished)

        def stalled_of(r: RunRecord) -> bool:
            return r.stalled("val_acc", chance)

        body = "".join(_study(store, n, stalled_of) for n in names) or "<p>No study yet.</p>"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{max(1, round(every))}'>"
        f"<title>squeezelab live: {html.escape(', '.join(names) or str(db))}</title>"
        f"<style>{STYLE}</style></head><body><h1>squeezelab live view</h1>"
        f"<p class='muted'>Store {html.escape(str(db))}; updated {stamp}; this page reloads "
        f"itself every {every:g} s. The report (<code>squeezelab report --db "
        f"{html.escape(str(db))}</code>) has the full analysis.</p>{body}</body></html>"
    )


class LiveView:
    """Keeps the live page of ``studies`` at ``path``: a thread rewrites it every ``every``
    seconds with its own read-only connection; ``poke`` asks for a write soon (a run ended)."""

    def __init__(
        self, db: str | Path, path: str | Path, studies: list[str] | None = None,
        every: float = EVERY_S,
    ) -> None:  # fmt: skip
        self.db, self.path, self.studies, self.every = Path(db), Path(path), studies, every
        self.writes, self.seconds = 0, 0.0  # what it cost, for the overhead measurement
        self._wake, self._stop = threading.Event(), threading.Event()
        self.error: str | None = None
        self.write()
        self._thread = threading.Thread(target=self._run, name="squeezelab-live", daemon=True)
        self._thread.start()

    def write(self) -> None:
        t0 = time.perf_counter()
        try:
            write_text(self.path, render(self.db, self.studies, self.every))
        except (StoreError, OSError) as err:  # the study goes on; the page says nothing new
            self.error = str(err)
        self.writes += 1
        self.seconds += time.perf_counter() - t0

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            if not self._stop.is_set():
                self.write()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.write()  # the final state
