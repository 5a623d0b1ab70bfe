"""Build the report from a store: tables (CSV), figures (PNG), statistics, report.md and .html.

Sections appear only for the studies the store holds. Each of the study's claims is stated
as a sentence with its verdict at alpha 0.05, computed from the data after Holm's correction
across the family of tests.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import Store, StoreError
from . import figures
from .render import render_html, render_markdown
from .stats import ALPHA, holm, paired_test, pearson, summarize, verdict
from .tables import (
    Table,
    design_table,
    finished,
    label,
    paired_table,
    relative_accuracy,
    table_3,
    table_a1,
    table_a2,
)

NONINFERIORITY_MARGIN = 2.0  # accuracy points


@dataclass
class Claim:
    """One claim of the study, the test that decides it and the verdict."""

    text: str
    test: str
    p: float
    effect_ok: bool = True
    p_holm: float | None = None

    @property
    def verdict(self) -> str:
        p = self.p_holm if self.p_holm is not None else self.p
        return verdict(p, ALPHA) if self.effect_ok else "not supported"


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


@functools.cache
def _complexity(model: str, options: str, image_size: int, num_classes: int) -> tuple[int, int]:
    from ..models import get_model
    from ..models.complexity import count_macs, count_params

    net = get_model(model, num_classes=num_classes, **json.loads(options))
    try:
        macs = count_macs(net, image_size)
    except ValueError:
        macs = -1
    return count_params(net), macs


def complexity_of(config: dict[str, Any], num_classes: int = 10) -> tuple[int, int]:
    """(params, MACs) of the model a run config describes."""
    from ..training.config import from_dict

    cfg = from_dict(config)
    options = json.dumps(cfg.model_options(), sort_keys=True)
    return _complexity(cfg.model, options, cfg.image_size, num_classes)


def _pairs(
    runs: list[dict], field_name: str, is_treatment: Callable[[Any], bool]
) -> tuple[list, list]:
    """Match treatment and control runs that agree on every other config field."""

    def key(r: dict) -> str:
        return json.dumps({k: v for k, v in r["config"].items() if k != field_name}, sort_keys=True)

    control = {key(r): r for r in runs if not is_treatment(r["config"][field_name])}
    a, b = [], []
    for r in runs:
        if is_treatment(r["config"][field_name]) and key(r) in control:
            a.append(r["test_acc"])
            b.append(control[key(r)]["test_acc"])
    return a, b


def _test_text(t: Any) -> str:
    return (
        f"paired t = {t.t:.2f}, p = {t.p:.4g} ({t.alternative}); Wilcoxon W = {t.wilcoxon_w:.1f}, "
        f"p = {t.wilcoxon_p:.4g}; mean difference {t.mean_diff:+.2f} points "
        f"(95% CI {t.diff_ci_low:+.2f} to {t.diff_ci_high:+.2f}); "
        f"Cohen's d_z = {t.cohen_dz:.2f}; n = {t.n} pairs"
    )


class ReportBuilder:
    """Collect sections, tables, figures and claims from one store."""

    def __init__(self, store: Store, out: Path) -> None:
        self.store, self.out = store, out
        self.sections: list[Section] = []
        self.tables: list[Table] = []
        self.claims: list[Claim] = []
        self.num_classes = 10

    def add_table(self, section: Section, table: Table) -> None:
        section.table(table)
        self.tables.append(table)

    def runs(self, study: str) -> list[dict]:
        return finished(self.store.runs(study)) if study in self.store.studies() else []

    def params_of(self, config: dict) -> int:
        return complexity_of(config, self.num_classes)[0]

    # --- sections ---------------------------------------------------------------------

    def overview(self) -> None:
        s = Section("Overview")
        names = self.store.studies()
        counts = {n: self.store.status_counts(n) for n in names}
        rows = [
            [n, *(c[k] for k in ("done", "diverged", "failed", "running", "left"))]
            for n, c in counts.items()
        ]
        self.add_table(
            s,
            Table(
                "studies",
                "Studies in the store",
                ["Study", "Done", "Diverged", "Failed", "Running", "Left"],
                rows,
            ),
        )
        recipes = [json.loads(r["recipe"]) for r in self.store.runs(role=None) if r.get("recipe")]
        if recipes:
            self.num_classes = Counter(r.get("num_classes", 10) for r in recipes).most_common(1)[0][
                0
            ]
            env = Counter(
                f"{r['device_name']} ({r['device']}, {r['precision']}, "
                f"torch {r['torch']}, squeezelab {r['squeezelab']})"
                for r in recipes
            )
            s.text(
                "Runs were trained on: " + "; ".join(f"{k}: {v} runs" for k, v in env.items()) + "."
            )
            data = Counter(r["config"]["data"] for r in recipes)
            s.text("Data: " + "; ".join(f"{k} ({v} runs)" for k, v in data.items()) + ".")
        self.sections.append(s)

    def model_sizes(self) -> None:
        runs = finished(self.store.runs())
        if not runs:
            return
        s = Section("Model size and accuracy")
        size = Counter(r["config"]["image_size"] for r in runs).most_common(1)[0][0]
        rows = []
        for model in sorted({r["config"]["model"] for r in runs}):
            plain = {"model": model, "image_size": size}
            params, macs = complexity_of(plain, self.num_classes)
            accs = [
                r["test_acc"]
                for r in runs
                if r["config"]["model"] == model and r["test_acc"] is not None
            ]
            rows.append(
                [label(model), params, params * 4 / 1e6, macs / 1e6, max(accs) if accs else None]
            )
        self.add_table(
            s,
            Table(
                "model_size",
                f"Model size (plain models, {self.num_classes} classes, {size}x{size}) "
                "next to the best test accuracy in the store",
                ["Model", "Parameters", "Size (MB)", "MACs (M)", "Best accuracy (%)"],
                rows,
                formats={"Parameters": "{:,}", "Size (MB)": "{:.2f}", "MACs (M)": "{:.1f}"},
            ),
        )
        by = {r[0]: r for r in rows}
        if "AlexNet" in by and "SqueezeNet 1.0" in by:
            a, q = by["AlexNet"], by["SqueezeNet 1.0"]
            s.text(
                f"SqueezeNet 1.0 has {a[1] / q[1]:.0f}x fewer parameters than AlexNet "
                f"({q[1]:,} vs {a[1]:,}); best accuracies {q[4]:.2f}% vs {a[4]:.2f}%."
            )
        self.sections.append(s)

    def grid(self) -> None:
        runs = self.runs("grid")
        if not runs:
            return
        s = Section("Objective 1: grid search")
        self.add_table(s, table_a1(runs))
        self.add_table(s, table_3(runs))
        self.sections.append(s)

    def compare(self) -> None:
        runs = self.runs("compare")
        if not runs:
            return
        s = Section("Objective 2: SqueezeNet vs AlexNet")
        notes = (self.store.study_spec("compare") or {}).get("notes", {})
        if notes.get("points_from"):
            s.text(f"Training points: {notes['points_from']}.")
        rows = []
        for model in sorted({r["config"]["model"] for r in runs}):
            for sched in sorted({r["config"]["scheduler"] for r in runs}):
                vals = [
                    r["test_acc"]
                    for r in runs
                    if r["config"]["model"] == model
                    and r["config"]["scheduler"] == sched
                    and r["test_acc"] is not None
                ]
                if vals:
                    sm = summarize(vals)
                    rows.append(
                        [
                            label(model),
                            sched,
                            sm.mean,
                            _nan(sm.sd),
                            _nan(sm.ci_low),
                            _nan(sm.ci_high),
                            sm.n,
                        ]
                    )
        self.add_table(
            s,
            Table(
                "compare_summary",
                "Final test accuracy over seeds",
                ["Model", "Scheduler", "Mean (%)", "SD", "95% CI low", "95% CI high", "n"],
                rows,
            ),
        )
        curves = {r["key"]: self.store.metrics(r["key"]) for r in runs}
        path = self.out / "figure_4.png"
        metric = figures.figure_4(runs, curves, path)
        s.figure(path, f"Figure 4: {metric} per epoch, SqueezeNet vs AlexNet.")
        models = {r["config"]["model"] for r in runs}
        sq = next((m for m in ("squeezenet1_0", "squeezenet1_1") if m in models), None)
        if sq and "alexnet" in models:
            # Each model trains at its own best point: pair by scheduler and seed.
            a, b = self._pair_by(runs, sq, "alexnet")
            if len(a) >= 2:
                t = paired_test([x + NONINFERIORITY_MARGIN for x in a], b, alternative="greater")
                s.text(
                    f"Non-inferiority of {label(sq)} vs AlexNet "
                    f"(margin {NONINFERIORITY_MARGIN} points): "
                    + _test_text(t)
                    + ". The difference reported is shifted by the margin."
                )
                self.claims.append(
                    Claim(
                        f"{label(sq)} reaches AlexNet-level accuracy (no more than "
                        f"{NONINFERIORITY_MARGIN:g} points below, paired by scheduler and seed).",
                        _test_text(t),
                        t.p,
                    )
                )
        self.sections.append(s)

    def _pair_by(self, runs: list[dict], treat: str, control: str) -> tuple[list, list]:
        keyed = {}
        for r in runs:
            c = r["config"]
            keyed.setdefault((c["scheduler"], c["seed"]), {})[c["model"]] = r["test_acc"]
        pairs = [(v[treat], v[control]) for v in keyed.values() if treat in v and control in v]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def macro(self) -> None:
        runs = self.runs("macro")
        if not runs:
            return
        s = Section("Objective 3: removing and adding Fire modules")
        self.add_table(s, table_a2(runs, self.params_of))
        rel = relative_accuracy(runs)
        if rel:
            path = self.out / "figure_5.png"
            figures.figure_5(runs, path)
            s.figure(path, "Figure 5: accuracy of each macro variant relative to plain SqueezeNet.")
        if len(rel) >= 3:
            sizes = [self.params_of(i["run"]["config"]) for i in rel]
            c = pearson(sizes, [i["rel"] for i in rel])
            text = (
                f"Pearson r = {c.r:.4f}, p = {c.p:.4g}, n = {c.n} (parameters vs relative accuracy)"
            )
            s.text(text + "; the study found r = -0.1972, p = 0.2489.")
            self.claims.append(
                Claim(
                    "Model size correlates with accuracy relative to plain SqueezeNet "
                    "(the study's hypothesis for Objective 3).",
                    text,
                    c.p,
                )
            )
        self.sections.append(s)

    def paired_section(
        self,
        study: str,
        title: str,
        field_name: str,
        is_treatment: Callable[[Any], bool],
        labels: tuple[str, str],
        claim: str,
        note: str = "",
    ) -> None:
        runs = self.runs(study)
        if not runs:
            return
        s = Section(title)
        if note:
            s.text(note)
        self.add_table(
            s,
            paired_table(
                runs,
                f"table_{study}",
                f"{title}: test accuracy (%)",
                lambda c: is_treatment(c[field_name]),
                labels,
                note=note,
            ),
        )
        a, b = _pairs(runs, field_name, is_treatment)
        if len(a) >= 2:
            t = paired_test(a, b)
            s.text(_test_text(t) + ".")
            self.claims.append(Claim(claim, _test_text(t), t.p, effect_ok=t.mean_diff > 0))
        self.sections.append(s)

    def design(self) -> None:
        for study, axis, title in (
            ("squeeze-ratio", "squeeze_ratio", "Paper: squeeze ratio"),
            ("pct3x3", "pct3x3", "Paper: share of 3x3 filters"),
            ("bypass", "bypass", "Paper: bypass connections"),
        ):
            runs = self.runs(study)
            if not runs:
                continue
            s = Section(title)
            table = design_table(
                runs, axis, f"table_{study}", f"{title}: size and test accuracy", self.params_of
            )
            self.add_table(s, table)
            path = self.out / f"figure_{study}.png"
            figures.design_figure(table.rows, axis, title, path)
            s.figure(path, f"{title}: accuracy and model size.")
            self.sections.append(s)

    def verdicts(self) -> None:
        if not self.claims:
            return
        for claim, p in zip(self.claims, holm([c.p for c in self.claims])):
            claim.p_holm = p
        s = Section("The study's claims, tested")
        rows = [[c.text, f"{c.p:.4g}", f"{c.p_holm:.4g}", c.verdict] for c in self.claims]
        self.add_table(
            s,
            Table(
                "claims",
                f"Verdicts at alpha {ALPHA} (Holm-corrected across {len(self.claims)} tests)",
                ["Claim", "p", "p (Holm)", "Verdict"],
                rows,
            ),
        )
        for c in self.claims:
            s.text(
                f"**{c.verdict.capitalize()}**: {c.text} "
                f"({c.test}; Holm-adjusted p = {c.p_holm:.4g})."
            )
        self.sections.insert(1, s)


def _nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def build_report(db: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write report.md, report.html, tables as CSV and figures as PNG into ``out_dir``."""
    if not Path(db).is_file():
        raise StoreError(f"no store at {db}: run a study first (squeezelab study run ...)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        b = ReportBuilder(store, out)
        if not store.studies() or not finished(store.runs(role=None)):
            empty = Section("Empty store")
            empty.text(
                f"The store {db} holds no finished runs yet. Run a study first, e.g. "
                "`squeezelab study run grid --data synthetic`, or `squeezelab reproduce`."
            )
            b.sections.append(empty)
        else:
            b.overview()
            b.model_sizes()
            b.grid()
            b.compare()
            b.macro()
            b.paired_section(
                "batchnorm",
                "Objective 4: batch norm in Fire modules",
                "batch_norm",
                bool,
                ("With batch norm", "Plain"),
                "Batch norm in the Fire modules improves accuracy (the study: t = 3.14, p < .05).",
            )
            notes = (store.study_spec("transfer") or {}).get("notes", {})
            source = notes.get("transfer_source", "ImageNet")
            b.paired_section(
                "transfer",
                "Objective 5: transfer learning",
                "init",
                lambda v: v is not None,
                ("Pretrained", "Scratch"),
                "Starting from pretrained weights improves accuracy over training from scratch "
                "(the study: t = 2.33, p < .05).",
                note=f"Source weights: {source}.",
            )
            b.design()
            b.verdicts()
    for t in b.tables:
        (out / f"{t.name}.csv").write_text(t.to_csv())
    (out / "report.md").write_text(render_markdown(b.sections, db))
    (out / "report.html").write_text(render_html(b.sections, db))
    return {
        "report": str(out / "report.html"),
        "tables": [t.name for t in b.tables],
        "figures": sorted(p.name for p in out.glob("*.png")),
        "claims": [
            {"claim": c.text, "p": c.p, "p_holm": c.p_holm, "verdict": c.verdict} for c in b.claims
        ],
    }
