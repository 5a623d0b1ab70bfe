"""The report's figures from the store: learning curves (the study's Figure 4), relative
accuracy (Figure 5), design-space plots (the paper's Figure 3) and a grid heatmap (Table A1).
"""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path
from typing import Any

import matplotlib

from ..results.records import RunRecord

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..fileio import write_with
from ..models.registry import model_info
from .metrics import METRICS
from .selection import varying_fields
from .stats import summarize
from .tables import group, label, mean_acc, relative_points, value_label

TITLE_SIZE = 11
LABEL_SIZE = 9


def wrap_title(text: str, width_in: float, fontsize: float = TITLE_SIZE) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` (an average
    glyph is about 0.55 em wide), so no title runs past its figure and is cut."""
    chars = max(20, int(width_in * 72 / (fontsize * 0.55)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _suptitle(fig: Any, text: str) -> None:
    fig.suptitle(wrap_title(text, fig.get_figwidth() * 0.95), fontsize=TITLE_SIZE)


def _title(ax: Any, text: str, fontsize: float = TITLE_SIZE) -> None:
    width = ax.get_position().width * ax.figure.get_figwidth()
    ax.set_title(wrap_title(text, max(width, 3.0), fontsize), fontsize=fontsize)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    try:
        # "tight" grows the canvas to every artist: a label never falls off the image
        write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _stack(series: list[list[float]]) -> np.ndarray:
    """(seeds, epochs) with NaN after a seed's last epoch (a diverged run stops early)."""
    stack = np.full((len(series), max(len(s) for s in series)), np.nan)
    for i, s in enumerate(series):
        stack[i, : len(s)] = s
    return stack


def mean_curve(series: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean per epoch over the seeds still running, and their count (n) per epoch."""
    stack = _stack(series)
    n = np.sum(~np.isnan(stack), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, axis=0), n


def curves_figure(
    runs: list[RunRecord], curves: dict[str, list[dict]], path: Path, title: str
) -> str:
    """Accuracy per epoch, one panel per scheduler: a line per seed, the mean and a 95% band.

    A diverged seed's curve stops where it diverged; the mean and band of the others go on
    over the seeds still running (n is shown per epoch range in the legend).
    """
    metric = (
        "test_acc"
        if any(m.get("test_acc") is not None for c in curves.values() for m in c)
        else "val_acc"
    )
    schedulers = sorted({r.config["scheduler"] for r in runs})
    fig, axes = plt.subplots(1, len(schedulers), figsize=(5.5 * len(schedulers), 4), squeeze=False)
    for ax, sched in zip(axes[0], schedulers):
        for model in sorted({r.config["model"] for r in runs}):
            members = [
                r for r in runs if r.config["model"] == model and r.config["scheduler"] == sched
            ]
            series = [[m[metric] for m in curves[r.key] if m[metric] is not None] for r in members]
            series = [s for s in series if s]
            if not series:
                continue
            color = model_info(model).color
            for s in series:
                ax.plot(range(1, len(s) + 1), s, color=color, alpha=0.3, lw=0.8)
            mean, _ = mean_curve(series)
            stack = _stack(series)
            length = len(mean)
            epochs = np.arange(1, length + 1)
            short = sum(len(s) < length for s in series)
            note = f", {short} stopped early" if short else ""
            ax.plot(
                epochs, mean, color=color, lw=2, label=f"{label(model)} (n={len(series)}{note})"
            )
            bands = [METRICS[metric].cut(summarize(col[~np.isnan(col)]))[0] for col in stack.T]
            if any(b.n > 1 for b in bands):
                ax.fill_between(
                    epochs,
                    [b.ci_low if b.n > 1 else np.nan for b in bands],
                    [b.ci_high if b.n > 1 else np.nan for b in bands],
                    color=color,
                    alpha=0.15,
                )
        _title(ax, f"scheduler: {sched}", LABEL_SIZE + 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRICS[metric].header)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _suptitle(fig, f"{title}\nthin: one seed; thick: mean; band: 95% CI")
    _save(fig, path)
    return metric


def relative_figure(runs: list[RunRecord], x: str, base_value: Any, path: Path, title: str) -> bool:
    """Each variant's accuracy minus the baseline's under the same condition (Figure 5).

    Returns False, drawing nothing, when no variant has a baseline run to compare with.
    """
    items = relative_points(runs, x, base_value)
    if not items:
        return False
    varying = varying_fields([i["run"] for i in items], exclude=(x, "seed"))

    def cond(i: dict) -> tuple:
        return tuple(i["run"].config[k] for k in varying)

    conds = sorted({cond(i) for i in items}, key=str)
    values = sorted({i["x"] for i in items}, key=lambda v: (isinstance(v, str), v))
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(conds) + 2), 4.5))
    width = 0.8 / max(len(values), 1)
    for j, v in enumerate(values):
        heights = []
        for c in conds:
            rel = [i["rel"] for i in items if i["x"] == v and cond(i) == c]
            heights.append(np.mean(rel) if rel else np.nan)
        ax.bar(
            np.arange(len(conds)) + j * width - 0.4 + width / 2,
            heights,
            width,
            label=value_label(x, v),
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(
        range(len(conds)),
        [
            "\n".join(
                f"{k} {c[n]:g}" if isinstance(c[n], float) else f"{k} {c[n]}"
                for n, k in enumerate(varying)
            )
            for c in conds
        ],
    )
    ax.set_ylabel(f"{METRICS['test_acc'].label} minus {value_label(x, base_value)} (points)")
    _title(ax, title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return True


def design_figure(
    runs: list[RunRecord], axis: str, params: dict[Any, int], path: Path, title: str
) -> None:
    """Accuracy (mean and 95% CI over seeds) and size against one design axis (paper Fig. 3)."""
    cells = group(runs, (axis,))
    xs = [k[0] for k in cells]
    accs = [[r.result.test_acc for r in m if r.result.test_acc is not None] for m in cells.values()]
    means = [float(np.mean(a)) if a else math.nan for a in accs]
    fig, ax = plt.subplots(figsize=(6, 4))
    categorical = any(isinstance(x, str) for x in xs)
    pos = list(range(len(xs))) if categorical else xs
    summaries = [METRICS["test_acc"].cut(summarize(a))[0] if a else None for a in accs]
    errs: list[list[float]] = [
        [float(sm.mean - sm.ci_low) if sm is not None and sm.n > 1 else 0.0 for sm in summaries],
        [float(sm.ci_high - sm.mean) if sm is not None and sm.n > 1 else 0.0 for sm in summaries],
    ]
    ax.errorbar(pos, means, yerr=errs, fmt="o-", color="tab:blue", capsize=3)
    ax.set_xlabel(axis)
    ax.set_ylabel(METRICS["test_acc"].header, color="tab:blue")
    if categorical:
        ax.set_xticks(pos, [str(x) for x in xs])
    twin = ax.twinx()
    twin.plot(pos, [params[x] * 4 / 1e6 for x in xs], "s--", color="tab:gray")
    twin.set_ylabel(METRICS["size_mb"].header, color="tab:gray")
    _title(ax, f"{title}\nerror bars: 95% CI over seeds")
    ax.grid(alpha=0.3)
    _save(fig, path)


def heatmap_figure(
    runs: list[RunRecord], rows: tuple[str, ...], panel: str | None, path: Path, title: str
) -> None:
    """A grid's mean test accuracy as a heatmap per panel value (e.g. per model)."""
    half = max(1, len(rows) // 2)
    ykeys, xkeys = rows[:half], rows[half:]
    panels = group(runs, (panel,)) if panel else {("all",): runs}
    tall = max(4.5, 0.35 * len(group(runs, rows[: max(1, len(rows) // 2)])) + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), tall), squeeze=False)
    for ax, ((pv,), members) in zip(axes[0], panels.items()):
        ys = list(group(members, ykeys)) if ykeys else [()]
        xs = list(group(members, xkeys)) if xkeys else [()]
        cells = group(members, (*ykeys, *xkeys))
        grid = np.array([[mean_acc(cells.get((*y, *x), [])) or np.nan for x in xs] for y in ys])
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=LABEL_SIZE - 1,
                        color="white")  # fmt: skip
        ax.set_xticks(
            range(len(xs)),
            ["\n".join(f"{k}={v}" for k, v in zip(xkeys, x)) for x in xs],
            fontsize=LABEL_SIZE,
        )
        ax.set_yticks(
            range(len(ys)),
            [", ".join(f"{k}={v}" for k, v in zip(ykeys, y)) for y in ys],
            fontsize=LABEL_SIZE,
        )
        _title(ax, label(pv) if panel == "model" else str(pv), LABEL_SIZE + 1)
        fig.colorbar(im, ax=ax, label=METRICS["test_acc"].header)
    _suptitle(fig, title)
    _save(fig, path)


def looks_figure(claims: dict[str, list[dict[str, Any]]], path: Path, title: str) -> bool:
    """A sequential study's looks, one panel per claim: the support statistic (z of its
    one-sided p) and the contradiction statistic against the look's boundary (z of its
    nominal level); a statistic that reaches the boundary decides the claim."""
    from scipy.stats import norm

    shown = {c: rows for c, rows in claims.items() if any(r["p"] is not None for r in rows)}
    if not shown:
        return False
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
    for ax, (claim, rows) in zip(axes[0], shown.items(), strict=True):
        rows = [r for r in rows if r["p"] is not None and r["level"] is not None]
        seeds = [r["seeds"] for r in rows]
        z = [float(norm.isf(max(r["p"], 1e-12))) for r in rows]
        zc = [float(norm.isf(max(r["p_contra"] or 1.0, 1e-12))) for r in rows]
        bound = [float(norm.isf(r["level"])) for r in rows]
        cbound = [float(norm.isf(r["contra_level"] or r["level"])) for r in rows]
        ax.plot(seeds, bound, "k--", lw=1, label="support boundary")
        ax.plot(seeds, cbound, ":", color="gray", lw=1, label="contradiction boundary")
        ax.plot(seeds, z, "o-", color="tab:blue", label="support statistic")
        ax.plot(seeds, zc, "s-", color="tab:red", label="contradiction statistic")
        ax.set_xticks(seeds)
        ax.set_xlabel("seeds per condition at the look", fontsize=LABEL_SIZE)
        ax.set_ylabel("z (from the one-sided p)", fontsize=LABEL_SIZE)
        _title(ax, f"{claim}: {rows[-1]['verdict'] if rows else ''}", LABEL_SIZE + 1)
    axes[0][0].legend(fontsize=7, loc="best")
    _suptitle(fig, title)
    _save(fig, path)
    return True
