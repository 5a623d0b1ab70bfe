"""Build the report from a store: tables (CSV), figures (PNG), statistics, report.md and .html.

Nothing here knows a study by name: every section comes from what a study file declared and
the store keeps with it, its ``[report]`` (table rows and columns, published tables to set
beside ours, figures, a best-point table) and its ``[[claims]]`` (the tests, decided under
both divergence rules, Holm-corrected within each family). Built-in and user studies alike.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...declared import ClaimSpec, DeclaredStudy, ReportSpec
from ...fileio import write_text
from ...models import variant_of
from ...results import RunRecord, Store, StoreError
from ...results.records import left_chance, machine_of, precision_mix
from .. import figures
from ..evaluate import ClaimResult, analyze_published, evaluate_claims, finalize, look_key
from ..published import published_runs, published_value
from ..render import file_stem, render_html, render_markdown
from ..selection import (
    best_runs,
    select_best,
    selection_margins,
    varying_fields,
)
from ..sequential import at_look, look_fractions
from ..tables import (
    DIVERGED,
    Table,
    condition_value,
    finished,
    group,
    mean_acc,
    value_label,
)
from .context import PLAIN_EPOCHS, PLAIN_IMAGES, ReportContext
from .section import Section
from .sequential import looks_section
from .store_sections import (
    acc_cells,
    cut_note,
    failed_section,
    model_size_section,
    timing_section,
)
from .verdicts import claims_section, published_section, readings_section

# The question of the study the built-in studies start from, in one sentence.
STUDY_QUESTION = (
    "The question: does SqueezeNet, with about 50 times fewer parameters than AlexNet, train "
    "to AlexNet's accuracy on CIFAR-10 under the same protocol, and which of its design and "
    'training choices decide that? ("Size isn\'t everything", SqueezeNet vs AlexNet)'
)
FORENSIC_QUESTION = (
    "The question: which reading of the study's protocol (\"randomly cropped, resized to "
    '64x64, and randomly flipped horizontally before each use") reproduces its published '
    "accuracies?"
)
SEEDS_SHOWN = 6  # a study table lists each seed's accuracy when no row has more
# Run fields that make a recipe, named in each study section when all its runs share them.
TRAINING_FIELDS = (
    "recipe",
    "epochs",
    "batch_size",
    "image_size",
    "scheduler",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "label_smoothing",
    "ema_decay",
    "tta_flip",
)


class ReportBuilder:
    """Collect sections, tables, figures and claims from one store."""

    def __init__(self, store: Store, out: Path) -> None:
        self.store, self.out = store, out
        self.sections: list[Section] = []
        self.tables: list[Table] = []
        self.results: list[ClaimResult] = []
        self.claims: list[ClaimSpec] = []
        self.pending: list[tuple] = []  # (claim, runs, sources, caveat) to decide together
        self.pending_study: list[str] = []  # the study of each pending claim
        self.interim: dict[str, str] = {}  # claim id -> its study's runs not yet finished
        # What every section reads, read once; the builder only adds sections and claims.
        self.ctx = ReportContext.read(store, out)

    def add_table(self, section: Section, table: Table) -> None:
        section.table(table)
        self.tables.append(table)

    def params_of(self, config: Mapping[str, Any]) -> int:
        return self.ctx.params_of(config)

    # --- what the results can show --------------------------------------------------------

    def header(self) -> None:
        s = Section("What these results are")
        runs = finished(self.ctx.every_run)
        names = sorted(
            {sp.protocol.get("name", "custom") for sp in self.ctx.specs.values()} - {"custom"}
        )
        data = Counter(r.config["data"] for r in runs)
        epochs = sorted({r.config["epochs"] for r in runs})
        counts = (
            self.ctx.provenance.get(r.key, {}).get("train_images") or r.config.get("train_subset")
            for r in runs
        )
        images = Counter(int(n) for n in counts if n is not None)
        s.text(
            f"Preset: {', '.join(names) or 'none (study files run directly)'}. "
            f"Data: {'; '.join(f'{k} ({v} runs)' for k, v in data.items()) or 'none'}. "
            f"Epochs per run: {', '.join(map(str, epochs)) or 'n/a'}. "
            "Training images per run: "
            + (", ".join(f"{k:,}" for k in sorted(images)) if images else "not recorded")
            + f". {len(runs)} finished runs; chance accuracy {self.ctx.chance:g}%."
        )
        machines = Counter(machine_of(self.ctx.provenance.get(r.key)) for r in runs)
        if machines:
            s.text(
                "Computed on: "
                + "; ".join(f"{m} ({n} runs)" for m, n in sorted(machines.items()))
                + "."
            )
        synthetic = any(str(d).startswith("synthetic") for d in data)
        limits = []
        if epochs:
            most_epochs, most_images = max(epochs), (max(images) if images else None)
            share = (most_epochs / PLAIN_EPOCHS) * ((most_images or PLAIN_IMAGES) / PLAIN_IMAGES)
            budget = (
                f"at most {most_epochs} epochs on "
                + (f"{most_images:,}" if most_images else "an unrecorded number of")
                + f" images, {share:.0%} of its grid's 10 epochs on 45,000 (and its comparison "
                "ran 50 epochs)"
            )
            if share < 1:
                limits.append(
                    f"these runs are {'far ' if share < 0.5 else ''}shorter than the study's: "
                    f"{budget}, so their verdicts speak about this budget, not about the "
                    "study's question"
                )
            elif most_images and most_images < PLAIN_IMAGES:
                limits.append(
                    f"these runs train on fewer images than the study's, for longer: {budget}, "
                    "so their accuracies are not the study's to compare one for one"
                )
        if synthetic:
            limits.append(
                "synthetic data is not CIFAR-10: it exercises the machinery and the tests, "
                "and says nothing about CIFAR-10 accuracy"
            )
        if limits:
            s.text("What they cannot show: " + "; ".join(limits) + ".")
        else:
            s.text("The runs match the study's budget; the verdicts below address its question.")
        self.sections.append(s)

    def question(self) -> str:
        """The report's first sentence: the question its runs answer. The study's own when a
        study here follows a preset or compares with its published tables; the forensic one
        when every study holds its readings to those tables; else each study's description."""
        specs = list(self.ctx.specs.values())
        if not specs:
            return ""

        def forensic(spec: DeclaredStudy) -> bool:
            return bool(spec.claims) and all(c.test == "equivalence" for c in spec.claims)

        if all(forensic(sp) for sp in specs):
            return FORENSIC_QUESTION
        if any(sp.protocol.get("name") or sp.report.published for sp in specs):
            return STUDY_QUESTION
        described = [f"{sp.name}: {sp.description}" for sp in specs if sp.description]
        return "The questions these studies ask: " + "; ".join(described) if described else ""

    def protocol(self, reference: dict[str, dict[str, Any]]) -> None:
        protocols = {}
        for spec in self.ctx.specs.values():
            p = spec.protocol
            if p:
                protocols[p.get("name", "custom")] = p
        used = set(protocols)
        for name, p in reference.items():
            protocols.setdefault(name, p)
        claims = [(n, c) for n, sp in self.ctx.specs.items() for c in sp.claims]
        if not protocols and not claims:
            return
        s = Section("Protocol, as declared before the runs")
        for name, p in protocols.items():
            role = "these runs" if name in used else "for reference, not run here"
            s.text(f"**Preset {name}** ({role}). {p.get('summary', '')}")
            if p.get("selection"):
                s.text(f"Selection: {p['selection']}")
            if p.get("seeds"):
                s.text(f"Seeds: {p['seeds']}")
            for d in p.get("deviations", []):
                s.text(f"Deviation from the study: {d}")
            if p.get("reading"):
                s.text(f"Reading of the study's augmentation: {p['reading']}")
        if claims:
            rows = [
                [
                    study,
                    c.id,
                    c.statement,
                    c.hypothesis,
                    c.test + (f" (margin {c.margin:g}: {c.margin_reason})" if c.margin else ""),
                    c.metric,
                    ", ".join(f"{k} in {v}" for k, v in c.where.items()) or "all runs",
                    c.alpha,
                    c.family,
                    c.diverged,
                ]
                for study, c in claims
            ]
            self.add_table(
                s,
                Table(
                    "protocol_claims",
                    "Declared claims",
                    [
                        "Study",
                        "Id",
                        "Claim",
                        "Hypothesis",
                        "Test",
                        "Metric",
                        "Runs",
                        "Alpha",
                        "Holm family",
                        "Diverged runs",
                    ],
                    rows,
                    "Diverged runs count at chance under the 'chance' rule (the study's) and are "
                    "dropped under 'exclude'; every claim is decided under both (sensitivity). "
                    "Seeds are averaged within a condition before paired tests and correlations.",
                ),
            )
        self.sections.append(s)

    # --- one section per study ----------------------------------------------------------

    def study(self, name: str) -> None:
        every = self.store.runs(name)
        if not finished(every):
            return
        spec = self.ctx.specs.get(name) or DeclaredStudy(name)
        settings = protocol_groups(every, spec)
        for setting, members in settings.items():  # one section per budget the study ran at
            runs = finished(members)
            if runs:
                tag = setting if len(settings) > 1 else ""
                self._study_section(name, spec, runs, tag, len(members))

    def _study_section(
        self, name: str, spec: DeclaredStudy, runs: list[RunRecord], setting: str, declared: int
    ) -> None:
        report = spec.report
        tag = f"{name}_{_slug(setting)}" if setting else name  # file names stay apart
        title = report.title or spec.description or name
        s = Section(f"{title} ({setting})" if setting else title)
        left = declared - len(runs)
        unfinished = (
            f"{left} of the {declared} runs registered for {name} have not finished" if left else ""
        )
        if spec.description:
            s.text(self._description(spec, runs, unfinished))
        common = _common_training_fields(runs)
        if common:
            s.text("Every run here: " + ", ".join(f"{k} {v}" for k, v in common.items()) + ".")
        mix = precision_mix(r.precision for r in runs)
        if mix:
            s.text(
                f"Computed at more than one precision ({mix}): `auto` resolves to bf16 on a GPU "
                "or a CPU with AMX and to fp32 elsewhere, so these runs come from machines that "
                "computed differently; the same run at the two differs numerically."
            )
        if setting:
            s.text(
                f"This store holds {name} run at several settings; this section is the runs "
                f"with {setting}, apart from the others (their tables, best points and claims "
                "are each their own)."
            )
        notes = spec.notes
        for key, text in (
            ("points_from", "Training points"),
            ("transfer_source", "Source weights"),
        ):
            if notes.get(key):
                s.text(f"{text}: {notes[key]}.")
        published = [r for t in report.published for r in published_runs(t)]
        self.add_table(s, self._study_table(tag, runs, report, spec, published))
        if report.best_by:
            self._best(s, tag, runs, report, published, unfinished)
        self._figures(s, tag, runs, report, spec)
        if "curves" not in report.figures:
            self._best_curves(s, tag, runs, report.title or name)
        self._collect_claims(name, spec, runs, setting, unfinished)
        self.sections.append(s)

    def _description(self, spec: DeclaredStudy, runs: list[RunRecord], unfinished: str) -> str:
        epochs = sorted({r.config["epochs"] for r in runs})
        per_cell = [len(m) for m in group(runs, varying_fields(runs, exclude=("seed",))).values()]
        fewest, most = min(per_cell), max(per_cell)
        seeds = f"{fewest}" if fewest == most else f"{fewest} to {most}"
        return (
            f"{spec.description}. As run: {len(runs)} runs, "
            f"{'/'.join(map(str, epochs))} epochs, {seeds} seed(s) per cell"
            + (
                f"; {unfinished} (`squeezelab study status`), so this section shows part of "
                "the study."
                if unfinished
                else "."
            )
        )

    def _study_table(
        self,
        name: str,
        runs: list[RunRecord],
        report: ReportSpec,
        spec: DeclaredStudy,
        published: list[RunRecord],
    ) -> Table:
        axes = [k for k in spec.axes if k != report.columns]
        rows_by = list(report.rows) or axes or ["model"]
        column = report.columns
        shown: dict[Any, Any] = {None: None}  # grouped value -> a raw value, for its label
        if column:
            shown = {}
            for r in runs:
                shown.setdefault(condition_value(column, r.config[column]), r.config[column])
        col_values = sorted(shown, key=str)
        cells = group(runs, rows_by)
        per_row = _per_row_fields(cells.values(), [*rows_by, column, "seed"])
        cols = [*rows_by, *per_row]
        for cv in col_values:
            head = f"{value_label(column, shown[cv])}: " if column else ""
            cols += [f"{head}test acc (%)", f"{head}SD", f"{head}95% CI", f"{head}n"]
            if published:
                cols += [f"{head}study (%)", f"{head}ours - study"]
        # A few seeds per row: each seed's figure, so a mean over one stalled seed and three
        # good ones reads as that, not as a middling model.
        seeds = [len(m) for m in cells.values()]
        each_seed = column is None and 1 < max(seeds) <= SEEDS_SHOWN
        if each_seed:
            cols.append("test acc per seed")
        rows = []
        for cell, members in cells.items():
            row: list[Any] = [*cell, *(members[0].config[f] for f in per_row)]
            for cv in col_values:
                sub = [
                    r
                    for r in members
                    if column is None or condition_value(column, r.config[column]) == cv
                ]
                row += acc_cells(sub)
                if published:
                    theirs = published_value(published, sub[0].config) if sub else None
                    ours = mean_acc(sub, "test_acc") if sub else None
                    diff = ours - theirs if isinstance(theirs, float) and ours is not None else None
                    row += [theirs, diff]
            if each_seed:
                row.append(_per_seed(members))
            rows.append(row)
        return Table(
            f"table_{file_stem(name)}",
            f"{report.title or name}: test accuracy (%), mean over seeds",
            cols,
            rows,
            (
                f"{DIVERGED} at least one seed diverged (counted at chance, {self.ctx.chance:g}%). "
                if any(r.status == "diverged" for r in runs)
                else ""
            )
            + "SD: the seeds' sample standard deviation; CI: 95% t interval over seeds (n > 1)."
            + cut_note(rows)
            + (
                f" {', '.join(per_row)}: set per row (by the study file's points or by a recipe), "
                "the same for every seed of a row."
                if per_row
                else ""
            )
            + (
                " study: the published value after 10 epochs on 45,000 images ('nan' = diverged "
                f"in the study); these runs trained {_epochs(runs)} epochs."
                if published
                else ""
            ),
            {c: "{:g}" for c in [*rows_by, *per_row]},  # 0.999 is not "1.00"
        )

    def _best(
        self,
        s: Section,
        name: str,
        runs: list[RunRecord],
        report: ReportSpec,
        published: list[RunRecord],
        unfinished: str = "",
    ) -> None:
        """The best point per group on validation accuracy, and what test selection adds.

        While ``unfinished`` says some registered runs have not finished, each choice reads
        "(interim)": a cell whose seeds have not all run (or not at all) could still change it.
        """
        fields = list(report.best_fields)
        by = list(report.best_by)
        val_best = select_best(runs, by, fields)
        margins = selection_margins(runs, by, fields)
        rows = []
        for (point, val_score, members), margin in zip(val_best, margins, strict=True):
            own, other = margin.spread
            grp = tuple(point[k] for k in by)
            same = [r for r in runs if tuple(r.config[k] for k in by) == grp]
            cells = group(same, fields)
            test_cell, test_runs = max(cells.items(), key=lambda kv: mean_acc(kv[1]) or -1.0)
            val_test = mean_acc(members)
            test_test = mean_acc(test_runs)
            theirs = [r for r in published if all(r.config.get(k) == v for k, v in zip(by, grp))]
            t3 = max(theirs, key=lambda r: r.result.test_acc or -1.0) if theirs else None
            chosen = ", ".join(f"{k}={point[k]}" for k in fields)
            if not left_chance(val_score, self.ctx.chance):  # a tie among cells at chance
                chosen = f"none: no cell left chance (first cell {chosen})"
            rows.append(
                [
                    *(value_label(k, v) if k == "model" else v for k, v in zip(by, grp)),
                    chosen,
                    val_score,
                    own.sd,
                    margin.runner_up_score,
                    other.sd if other else None,
                    f"{own.n} / {other.n}" if other else own.n,
                    margin.margin,
                    margin.lsd,
                    f"{margin.verdict} (interim)" if unfinished else margin.verdict,
                    val_test,
                    ", ".join(f"{k}={v}" for k, v in zip(fields, test_cell)),
                    test_test,
                    (test_test - val_test)
                    if test_test is not None and val_test is not None
                    else None,
                    *(
                        (
                            ", ".join(f"{k}={t3.config[k]}" for k in fields) if t3 else None,
                            t3.result.test_acc if t3 else None,
                        )
                        if published
                        else ()
                    ),
                ]
            )
        # Against the study's published grid: its Table 3, chosen on its test set. Elsewhere
        # (the modern searches) no one chose on test data: the column measures what would.
        title, theirs_cols = (
            (
                "Best point per group (Table 3): chosen on validation accuracy; the test-set "
                "choice the study made is shown only to measure how much it flatters",
                ["the study's point (test-selected)", "study's test acc (%)"],
            )
            if published
            else (
                "Best point per group: chosen on validation accuracy; the test-selected point "
                "is shown only to measure how much choosing on test data would flatter",
                [],
            )
        )
        self.add_table(
            s,
            Table(
                f"table_{file_stem(name)}_best",
                title,
                [
                    *by,
                    "validation-selected point",
                    "its val acc (%)",
                    "its val SD",
                    "runner-up val acc (%)",
                    "runner-up val SD",
                    "seeds (its / runner-up)",
                    "margin (points)",
                    "95% LSD (points)",
                    "choice",
                    "its test acc (%)",
                    "test-selected point",
                    "its test acc (%)",
                    "flattery (points)",
                    *theirs_cols,
                ],
                rows,
                "flattery: test accuracy of the test-selected point minus that of the "
                "validation-selected point, i.e. the optimism of choosing on the test set. "
                "margin: the chosen cell's mean validation accuracy minus the runner-up's; "
                "LSD: the least significant difference at 95% from the seed-to-seed variance "
                "pooled over the group's cells (not corrected for choosing the largest of "
                "several); a margin inside it is within seed noise: other seeds could choose "
                "differently. The SD columns are each cell's own seed-to-seed spread: pooling "
                "assumes the cells are about as steady as each other, and where one is far "
                "less steady (a seed that stalls) the means alone cannot say which is "
                "better. "
                + (
                    f"interim: {unfinished}; a cell not yet run, or not over all its seeds, "
                    "could change the choice. "
                    if unfinished
                    else ""
                )
                + "Ties go to the first cell in sorted order, in this table and in the runner.",
            ),
        )

    def _figures(
        self, s: Section, name: str, runs: list[RunRecord], report: ReportSpec, spec: DeclaredStudy
    ) -> None:
        title = report.title or name
        for kind in report.figures:
            path = self.out / f"{file_stem(name)}_{kind}.png"
            if kind == "curves":
                curves = {r.key: list(r.history) for r in runs}
                metric = figures.curves_figure(runs, curves, path, title)
                s.figure(path, f"{title}: {metric} per epoch.")
            elif kind == "relative":
                rel = [c for c in spec.claims if c.relative_to is not None and c.x]
                if rel and rel[0].x:
                    x, base = rel[0].x, rel[0].relative_to
                    if figures.relative_figure(runs, x, base, path, title):
                        s.figure(
                            path,
                            f"{title}: accuracy relative to {value_label(x, base)}, same "
                            "condition.",
                        )
            elif kind == "design" and report.rows:
                axis = report.rows[0]
                params = {
                    v: self.params_of(m[0].config) for (v,), m in group(runs, (axis,)).items()
                }
                figures.design_figure(runs, axis, params, path, title)
                s.figure(path, f"{title}: accuracy and model size.")
            elif kind == "heatmap":
                figures.heatmap_figure(runs, report.rows, report.columns, path, title)
                s.figure(path, f"{title}: mean test accuracy per cell.")

    def _best_curves(self, s: Section, name: str, runs: list[RunRecord], title: str) -> None:
        """Learning curves of each model's best cell (validation-selected), every seed."""
        best = best_runs(runs)
        curves = {r.key: list(r.history) for r in best}
        if not any(len(c) > 1 for c in curves.values()):
            return
        path = self.out / f"{file_stem(name)}_best_curves.png"
        metric = figures.curves_figure(best, curves, path, f"{title}: each model's best cell")
        s.figure(path, f"{title}: {metric} per epoch of each model's best cell (by validation).")

    def _collect_claims(
        self, name: str, spec: DeclaredStudy, runs: list[RunRecord], setting: str, unfinished: str
    ) -> None:
        claims = list(spec.claims)
        if not claims:
            return
        if setting:  # each setting is its own experiment: its own claims and Holm family
            claims = [
                dataclasses.replace(
                    c,
                    id=f"{c.id} [{setting}]",
                    statement=f"{c.statement} [{setting}]",
                    family=f"{c.family} [{setting}]",
                )
                for c in claims
            ]
        sources = finished(self.store.runs(name, role="source"))
        src = spec.notes.get("transfer_source", "")
        for c in claims:
            caveat = ""
            if src and not src.startswith("ImageNet") and "init" in (c.field, c.x):
                caveat = f"source weights {src}, not ImageNet as the study used"
            self.claims.append(c)
            self.pending.append((c, runs, sources if "init" in (c.field, c.x) else [], caveat))
            self.pending_study.append(name)
            if unfinished:
                self.interim[c.id] = unfinished

    # --- claims -----------------------------------------------------------------------------

    def verdicts(self) -> None:
        if not self.pending:
            return
        looks = {n: self.store.looks(n) for n in set(self.pending_study)}
        looks = {n: rows for n, rows in looks.items() if rows}
        fixed = [p for p, n in zip(self.pending, self.pending_study) if n not in looks]
        self.results = evaluate_claims(fixed, self.ctx.chance)
        for name, rows in looks.items():  # a sequential study: read as its last look was
            mine = [p for p, n in zip(self.pending, self.pending_study) if n == name]
            self.results += _as_looked(mine, rows, self.ctx.chance)
        for r in self.results:
            r.interim = self.interim.get(r.id, "")
        # Holm ties a family together: a claim whose own runs are all in still moves when a
        # family member's study finishes, so its verdict is interim too.
        waiting = {r.family: r.interim for r in self.results if r.interim}
        for r in self.results:
            if not r.interim and r.family in waiting:
                r.interim = f"its Holm family '{r.family}' holds a claim whose {waiting[r.family]}"
        rule_of = {c.id: c.diverged for c in self.claims}
        self.add_section(claims_section(self.results, rule_of), 1)
        for name, rows in sorted(looks.items()):
            runs = finished(self.store.runs(name))
            self.add_section(looks_section(name, rows, runs, rule_of, self.out), 2)
        readings = readings_section(self.results, rule_of)
        if readings is not None:
            self.add_section(readings, 1)

    def published(self) -> None:
        """The study's own statistics, recomputed from its published tables, for comparison."""
        todo = []
        for spec in self.ctx.specs.values():
            # an equivalence claim holds our runs to these very tables: nothing to re-analyse
            claims = [c for c in spec.claims if c.test != "equivalence"]
            if claims and spec.report.published:
                todo.append((spec.name, claims, list(spec.report.published)))
        if todo:
            self.add_section(published_section(analyze_published(todo)))

    def add_section(self, section: Section, at: int | None = None) -> None:
        """Place a section built by a section function, and register its tables."""
        self.tables += [b[1] for b in section.blocks if b[0] == "table"]
        if at is None:
            self.sections.append(section)
        else:
            self.sections.insert(at, section)

    # --- whole-store tables ---------------------------------------------------------------


def _per_seed(runs: list[RunRecord]) -> str:
    """Each seed's test accuracy, by seed: '0: 80.34, 1: 50.02' († a diverged seed)."""
    return ", ".join(
        f"{r.config['seed']}: "
        + (f"{r.result.test_acc:.2f}" if r.result.test_acc is not None else "none")
        + (DIVERGED if r.status == "diverged" else "")
        for r in sorted(runs, key=lambda r: r.config["seed"])
    )


# Fields that set a run's budget or protocol rather than the condition a study compares: a
# store holding one study run at two of these (``--set epochs=10``, then the declared 30)
# holds two experiments, which one table must not average together.
PROTOCOL_FIELDS = (
    "data",
    "epochs",
    "train_subset",
    "image_size",
    "split_seed",
    "val_fraction",
    "test_fraction",
    "precision",
    "recipe",
)


def _recipe_settings(runs: list[Any]) -> Callable[[Any], str]:
    """Each run's recipe as a protocol setting. Versions are per model, so one experiment at a
    recipe's current version holds ``modern@1`` runs of the models it left alone beside
    ``modern@2`` runs of the one it changed: a run's setting is the recipe's name while its
    version is the newest the study's runs of its model hold, and its whole label (a setting
    of its own) once a newer version of that model's fields has run."""

    def parts(r: Any) -> tuple[tuple, int]:
        base, _, version = str(r.config.get("recipe")).partition("@")
        model = (base, variant_of(str(r.config.get("model")), r.config))
        return model, int(version) if version.isdigit() else 0

    newest: dict[tuple, int] = {}
    for r in runs:
        model, version = parts(r)
        newest[model] = max(newest.get(model, version), version)

    def setting(r: Any) -> str:
        model, version = parts(r)
        return model[0] if version == newest[model] else str(r.config.get("recipe"))

    return setting


def protocol_groups(runs: list[Any], spec: DeclaredStudy) -> dict[str, list[Any]]:
    """The study's runs per setting of the protocol fields it does not itself vary.

    One group (named "") when every run shares them; else one per setting, named by the
    fields that differ (``epochs=10``), in sorted order.
    """
    best_of = spec.best_of
    designed = {
        *spec.axes,
        *(k for point in (*spec.points, *spec.variants) for k in point),
        *best_of.get("group_by", ()),
        *best_of.get("fields", ()),
    }
    recipe = _recipe_settings(runs)

    def setting(r: Any, f: str) -> Any:
        return recipe(r) if f == "recipe" else r.config.get(f)

    fields = [
        f
        for f in PROTOCOL_FIELDS
        if f not in designed and len({repr(setting(r, f)) for r in runs}) > 1
    ]
    if not fields:
        return {"": runs}
    groups: dict[tuple, list[Any]] = {}
    for r in runs:
        groups.setdefault(tuple(setting(r, f) for f in fields), []).append(r)
    return {
        ", ".join(f"{f}={v}" for f, v in zip(fields, values)): members
        for values, members in sorted(groups.items(), key=lambda kv: repr(kv[0]))
    }


def _common_training_fields(runs: list[RunRecord]) -> dict[str, Any]:
    """The training fields every run shares (by :data:`TRAINING_FIELDS`), to say what ran."""
    varying, first = varying_fields(runs, exclude=()), runs[0].config
    return {f: first[f] for f in TRAINING_FIELDS if f not in varying and first.get(f) is not None}


def _per_row_fields(cells: Any, shown: list[str | None]) -> list[str]:
    """Run fields, beyond ``shown``, that differ between rows but not within one.

    A study's table groups its runs by its row fields; a field its points or a recipe set per
    row (modern-compare's learning rate per model, say) is part of what each row ran, so it is
    shown beside them. A field that also varies within a row is not one row's value.
    """
    cells = list(cells)
    within = {f for members in cells for f in varying_fields(members, exclude=())}
    every = [r for members in cells for r in members]
    return [f for f in varying_fields(every, exclude=()) if f not in within and f not in shown]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _epochs(runs: list[RunRecord]) -> str:
    return "/".join(map(str, sorted({r.config["epochs"] for r in runs})))


def build_report(
    db: str | Path, out_dir: str | Path, protocols: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Write report.md, report.html, tables as CSV and figures as PNG into ``out_dir``.

    ``protocols`` (preset name -> its ``[protocol]``) are described beside the one the runs
    followed, so a reader sees what the faithful and the sound protocol would have done.
    """
    if not Path(db).exists():  # a directory or junk: the store names it
        raise StoreError(f"no store at {db}: run a study first (squeezelab study run ...)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A report cut short must not leave an older, complete-looking page beside new figures:
    # the pages go first and come back last, each written atomically.
    for page in ("report.html", "report.md"):
        (out / page).unlink(missing_ok=True)
    with Store(db, readonly=True) as store:
        b = ReportBuilder(store, out)
        if not store.studies() or not finished(b.ctx.every_run):
            empty = Section("Empty store")
            empty.text(
                f"The store {db} holds no finished runs yet. Run a study first, e.g. "
                "`squeezelab study run grid --data synthetic`, or `squeezelab reproduce`."
            )
            b.sections.append(empty)
        else:
            failed = failed_section(b.ctx)
            if failed is not None:
                b.add_section(failed)
            b.header()
            b.protocol(protocols or {})
            for name in store.studies():
                b.study(name)
            b.verdicts()
            b.published()
            for section in (timing_section(b.ctx), model_size_section(b.ctx)):
                if section is not None:
                    b.add_section(section)
    for t in b.tables:
        write_text(out / f"{t.name}.csv", t.to_csv())
    question = b.question()
    write_text(out / "report.md", render_markdown(b.sections, db, question))
    write_text(out / "report.html", render_html(b.sections, db, question))
    return {
        "report": str(out / "report.html"),
        "tables": [t.name for t in b.tables],
        "figures": sorted(p.name for p in out.glob("*.png")),
        "claims": [r.to_dict() for r in b.results],
    }


def _as_looked(
    pending: list[tuple], rows: list[dict[str, Any]], chance: float
) -> list[ClaimResult]:
    """A sequential study's claims decided as its last recorded look decided them: at that
    look's nominal levels, the claims decided at earlier looks kept."""
    last = max(r["look"] for r in rows)
    fractions = look_fractions(rows)
    earlier = [r for r in rows if r["decided"] and r["look"] < last]
    frozen = {(r["claim"], r["rule"]): r["verdict"] for r in earlier}
    nominal = at_look(fractions, rows[0]["spending"])
    results = evaluate_claims(pending, chance, nominal=nominal, frozen=frozen)
    decided_at = {(r["claim"], r["rule"]): r for r in earlier}
    for r in results:
        row = decided_at.get((look_key(r), r.rule))
        if row is not None and r.design is not None and row["level"] is not None:
            # its interval at the levels of the look that decided it (on the runs now held)
            finalize(r, row["level"], row["contra_level"])
            r.outcome = row["verdict"]
        note = (
            f"sequential: read at the levels of look {last} (a claim decided at an earlier "
            "look keeps its verdict)"
        )
        r.note = f"{r.note}; {note}" if r.note else note
    return results
