"""The study's figures from the store: Figure 4 (accuracy per epoch) and Figure 5 (macro)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .metrics import METRICS
from .stats import summarize
from .tables import fire_label, label, relative_accuracy

COLORS = {"alexnet": "tab:red", "squeezenet1_0": "tab:blue", "squeezenet1_1": "tab:green"}


def figure_4(runs: list[dict[str, Any]], curves: dict[str, list[dict]], path: Path) -> str:
    """Accuracy per epoch, one panel per scheduler: a line per seed, the mean and a 95% band."""
    metric = (
        "test_acc"
        if any(m.get("test_acc") is not None for c in curves.values() for m in c)
        else "val_acc"
    )
    schedulers = sorted({r["config"]["scheduler"] for r in runs})
    fig, axes = plt.subplots(1, len(schedulers), figsize=(5.5 * len(schedulers), 4), squeeze=False)
    for ax, sched in zip(axes[0], schedulers):
        for model in sorted({r["config"]["model"] for r in runs}):
            members = [
                r
                for r in runs
                if r["config"]["model"] == model and r["config"]["scheduler"] == sched
            ]
            series = [
                [m[metric] for m in curves[r["key"]] if m[metric] is not None] for r in members
            ]
            series = [s for s in series if s]
            if not series:
                continue
            color = COLORS.get(model)
            for s in series:
                ax.plot(range(1, len(s) + 1), s, color=color, alpha=0.3, lw=0.8)
            length = min(len(s) for s in series)
            stack = np.array([s[:length] for s in series])
            epochs = np.arange(1, length + 1)
            mean = stack.mean(0)
            ax.plot(epochs, mean, color=color, lw=2, label=f"{label(model)} (n={len(series)})")
            if len(series) > 1:
                bands = [summarize(stack[:, i]) for i in range(length)]
                ax.fill_between(
                    epochs,
                    [b.ci_low for b in bands],
                    [b.ci_high for b in bands],
                    color=color,
                    alpha=0.15,
                )
        ax.set_title(f"scheduler: {sched}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRICS[metric].header)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        "Figure 4: SqueezeNet vs AlexNet\nthin: one seed; thick: mean; band: 95% CI", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return metric


def figure_5(runs: list[dict[str, Any]], path: Path) -> None:
    """Accuracy of each macro variant relative to plain SqueezeNet, per condition."""
    items = relative_accuracy(runs)
    conds = sorted({(i["run"]["config"]["lr"], i["run"]["config"]["momentum"]) for i in items})
    deltas = sorted({i["delta"] for i in items})
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(conds) + 2), 4.5))
    width = 0.8 / max(len(deltas), 1)
    for j, delta in enumerate(deltas):
        heights = []
        for cond in conds:
            vals = [
                i["rel"]
                for i in items
                if i["delta"] == delta
                and (i["run"]["config"]["lr"], i["run"]["config"]["momentum"]) == cond
            ]
            heights.append(np.mean(vals) if vals else np.nan)
        ax.bar(
            np.arange(len(conds)) + j * width - 0.4 + width / 2,
            heights,
            width,
            label=fire_label(delta),
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(conds)), [f"lr {lr:g}\nm {m:g}" for lr, m in conds])
    ax.set_ylabel(METRICS["rel_acc"].header)
    ax.set_title(
        "Figure 5: macro variants minus plain SqueezeNet,\nunder the same condition", fontsize=10
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def design_figure(rows: list[list[Any]], axis: str, title: str, path: Path) -> None:
    """Accuracy and size against one design-space axis (paper Figure 3 style)."""
    xs = [r[0] for r in rows]
    acc = [float(str(r[3]).rstrip("†")) if r[3] is not None else np.nan for r in rows]
    size = [r[2] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    positions = range(len(xs)) if isinstance(xs[0], str) else xs
    ax.plot(positions, acc, "o-", color="tab:blue", label="accuracy")
    ax.set_xlabel(axis)
    ax.set_ylabel(METRICS["test_acc"].header, color="tab:blue")
    if isinstance(xs[0], str):
        ax.set_xticks(list(positions), xs)
    twin = ax.twinx()
    twin.plot(positions, size, "s--", color="tab:gray", label="size")
    twin.set_ylabel(METRICS["size_mb"].header, color="tab:gray")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
