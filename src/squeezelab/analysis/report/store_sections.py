"""Whole-store sections, as functions of the report's read-only context: Table 1 (time per
epoch per model and machine) and the model-size table."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from ...results import RunRecord
from ...results.records import machine_of
from ..metrics import METRICS
from ..published import table_1
from ..selection import equal_seeds, select_best, varying_fields
from ..stats import summarize
from ..tables import CUT, CUT_NOTE, DIVERGED, Table, finished, label
from .context import PLAIN_IMAGES, ReportContext, complexity_of
from .section import Section


def acc_cells(runs: list[RunRecord]) -> list[Any]:
    """[mean († a diverged seed), SD, CI (‡ cut at 0 / 100), n] of runs' test accuracy."""
    values = [r.result.test_acc for r in runs if r.result.test_acc is not None]
    if not values:
        return [None, None, None, 0]
    sm, past = METRICS["test_acc"].cut(summarize(values))
    cut = CUT if past else ""
    mean = f"{sm.mean:.2f}{DIVERGED}" if any(r.status == "diverged" for r in runs) else sm.mean
    ci = f"{sm.ci_low:.2f} to {sm.ci_high:.2f}{cut}" if sm.n > 1 else None
    return [mean, sm.sd if sm.n > 1 else None, ci, sm.n]


def cut_note(rows: list[list[Any]]) -> str:
    """The footnote for a table with a confidence interval cut at 0 or 100%, else nothing."""
    return (
        f" {CUT_NOTE}"
        if any(isinstance(c, str) and c.endswith(CUT) for r in rows for c in r)
        else ""
    )


def timing_section(ctx: ReportContext) -> Section | None:
    """Table 1: seconds per epoch per model on this hardware vs the study's Colab GPU."""
    runs = finished(ctx.every_run)
    provenance = ctx.provenance
    theirs = {r["model"]: r["epoch_s"] for r in table_1() if r["dataset"] == "CIFAR-10"}
    rows = []
    # One row per model and machine setting: a store merged from a GPU and a CPU (or runs
    # at one and two threads) holds epoch times that one median must not pool.
    by_setting: dict[tuple[str, str], list[RunRecord]] = {}
    for r in runs:
        by_setting.setdefault((r.config["model"], machine_of(provenance.get(r.key))), []).append(r)
    busy_rows = 0
    for (model, machine), members in sorted(by_setting.items()):
        times, per_image, loads, spare = [], [], [], []
        for r in members:
            prov = provenance.get(r.key, {})
            images = prov.get("train_images") or r.config.get("train_subset")
            for m in r.history:
                if m.get("epoch_s"):
                    times.append(m["epoch_s"])
                    if images:
                        per_image.append(m["epoch_s"] / images)
                    if m.get("load") is not None and prov.get("cores"):
                        loads.append(m["load"])
                        # runnable work beyond this run's own threads: others shared the cores
                        spare.append(m["load"] - (prov.get("threads") or 1) > 0.5)
        if not times:
            continue
        scaled = statistics.median(per_image) * PLAIN_IMAGES if per_image else None
        if loads:
            cores = max(provenance.get(r.key, {}).get("cores") or 0 for r in members)
            busy = sum(spare) > len(spare) / 2
            busy_rows += busy
            load = f"{statistics.median(loads):.1f} on {cores} cores" + (
                " (busy: not this device's speed)" if busy else " (idle)"
            )
        else:
            load = "not recorded"
        rows.append(
            [
                label(model),
                machine,
                len(times),
                statistics.median(times),
                scaled,
                load,
                theirs.get(model),
            ]
        )
    if not rows:
        return None
    s = Section("Table 1: training time")
    s.table(
        Table(
            "table_1_time",
            "Seconds per epoch: this hardware vs the study's Colab GPU (CIFAR-10)",
            [
                "Model",
                "Device",
                "Epochs timed",
                "Median s/epoch (as run)",
                "s per 45,000 images",
                "Machine load while timed",
                "The study (s/epoch)",
            ],
            rows,
            "As run: over each run's own training images (with validation). Scaled: the "
            "median time per image x 45,000, the study's epoch. Load: the median 1-minute load "
            "average at the end of each epoch; 'busy' when, for most epochs, more work was "
            "runnable than the run's own threads (other runs or jobs shared the machine), so "
            "the times are slower than the device alone would be. Time a device only idle: "
            "benchmarks/train_throughput.py.",
        ),
    )
    if busy_rows:
        s.text(
            f"{busy_rows} of these rows were timed on a busy machine: read them as what the "
            "runs took, not as the device's speed."
        )
    return s


def model_size_section(ctx: ReportContext) -> Section | None:
    """Each architecture at its plain configuration beside its best plain cell's accuracy.

    The best cell (a point, its seeds together) is chosen on mean validation accuracy as
    everywhere else, and its seeds' test accuracies are summarized: choosing the luckiest
    single seed on validation would report that seed's luck as the model's accuracy.
    """
    runs = [
        r for r in finished(ctx.every_run) if r.key in ctx.run_keys and r.config.get("init") is None
    ]
    if not runs:
        return None
    size = Counter(r.config["image_size"] for r in runs).most_common(1)[0][0]
    models = sorted({r.config["model"] for r in runs})
    sizes = {m: complexity_of({"model": m, "image_size": size}, ctx.num_classes) for m in models}
    plains = [
        [
            r
            for r in runs
            if r.config["model"] == m
            and r.config["image_size"] == size
            and ctx.params_of(r.config) == sizes[m][0]
        ]
        for m in models
    ]
    # Like with like: every model's best cell averages the same number of seeds.
    kept, seeds = equal_seeds(plains)
    rows = []
    for model, plain, candidates in zip(models, plains, kept):
        params, macs = sizes[model]
        accuracy: list[Any] = [None, None, None, 0, 0]
        if candidates:
            ((_, _, members),) = select_best(candidates, ["model"], varying_fields(candidates))
            mean, sd, ci, n = acc_cells(members)
            accuracy = [mean, sd, ci, n, len(plain)]
        rows.append([label(model), params, params * 4 / 1e6, macs / 1e6, *accuracy])
    s = Section("Model size and accuracy")
    s.table(
        Table(
            "model_size",
            f"Plain architectures ({ctx.num_classes} classes, {size}x{size}, trained from "
            "scratch): size, and the test accuracy of the plain cell (a point, over its "
            "seeds) with the best mean validation accuracy",
            [
                "Model",
                "Parameters",
                "Size (MB)",
                "MACs (M)",
                "Test acc (%)",
                "SD",
                "95% CI",
                "n (seeds)",
                "Plain runs",
            ],
            rows,
            (
                f"{DIVERGED} at least one seed of the cell diverged (counted at chance, "
                f"{ctx.chance:g}%). "
                if any(isinstance(row[4], str) for row in rows)
                else ""
            )
            + "Plain runs: every run of the plain architecture, whatever its training "
            "point; the cell is chosen among them on validation accuracy only, among "
            f"cells of {seeds} seed(s) each for every model (a cell's lowest seeds; cells "
            "with fewer left out), so no model's best is the luckiest of fewer seeds."
            + cut_note(rows),
            formats={"Parameters": "{:,}", "Size (MB)": "{:.2f}", "MACs (M)": "{:.1f}"},
        ),
    )
    return s


def failed_section(ctx: ReportContext) -> Section | None:
    """At the top of the report: how many runs failed, grouped by their error, so a study
    whose runs could not train is not read as a study that ran."""
    failed = [r for r in ctx.every_run if r.status == "failed"]
    if not failed:
        return None
    by_error = Counter((r.error or "no error recorded").strip().splitlines()[-1] for r in failed)
    total = len(ctx.every_run)
    s = Section(f"{len(failed)} of {total} runs failed")
    s.text(
        f"**{len(failed)} of the store's {total} runs failed** and are in no table, figure or "
        "claim below; `squeezelab study run` again retries them. By error:"
    )
    s.table(
        Table(
            "failed_runs",
            "Failed runs by error",
            ["Runs", "Error (last line)"],
            [[n, error] for error, n in by_error.most_common()],
        )
    )
    return s
