"""Wall time to reach 70 / 75 / 80 / 85% validation accuracy for a recipe on this machine.

Trains one run (any run fields, e.g. ``--set recipe=modern --set batch_norm=true``) and
prints one JSON object: for each target, the first epoch whose validation accuracy reaches it
and the training wall time until the end of that epoch (``null`` if never reached), the final
validation and test accuracy, and the path of a PNG of validation accuracy against wall time.
Times are the run's own epoch times (training and validation passes, no data decoding).

Usage: python benchmarks/time_to_accuracy.py [--data SOURCE] [--set FIELD=VALUE ...]
           [--targets 70,75,80,85] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg/train.tar.gz"


def time_to_targets(history: list[dict[str, Any]], targets: list[float]) -> dict[str, Any]:
    """For each target (percent), the first epoch reaching it and the seconds until then."""
    elapsed = list(itertools.accumulate(row["epoch_s"] for row in history))
    out = {}
    for target in targets:
        hit = next((i for i, row in enumerate(history) if (row["val_acc"] or 0) >= target), None)
        out[f"{target:g}"] = (
            None if hit is None else {"epoch": hit + 1, "seconds": round(elapsed[hit], 1)}
        )
    return out


def plot(history: list[dict[str, Any]], targets: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [t / 60 for t in itertools.accumulate(row["epoch_s"] for row in history)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(minutes, [row["val_acc"] for row in history], "o-", label="validation accuracy")
    for target in targets:
        ax.axhline(target, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic"
    )
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--targets", default="70,75,80,85", help="percent, comma-separated")
    parser.add_argument("--out", default="time_to_accuracy", help="run directory and PNG")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    args = parser.parse_args(argv)

    from squeezelab.studies import parse_overrides
    from squeezelab.training import from_dict, train

    targets = [float(t) for t in args.targets.split(",")]
    values = {"recipe": "modern", "data": args.data, **parse_overrides(args.set)}
    cfg = from_dict(values, "--set")
    out = Path(args.out)
    outcome = train(cfg, out / "run", resume=True, device=args.device, progress=False)
    history = outcome.history
    changed = {k: v for k, v in cfg.to_dict().items() if k not in ("data",)}
    title = f"{cfg.model}{' + BN' if cfg.batch_norm else ''}, recipe {cfg.recipe}"
    png = out / "time_to_accuracy.png"
    plot(history, targets, png, title)
    summary = {
        "model": cfg.model,
        "batch_norm": cfg.batch_norm,
        "recipe": cfg.recipe,
        "device": outcome.recipe.get("device_name"),
        "precision": outcome.recipe.get("precision"),
        "epochs": len(history),
        "time_to": time_to_targets(history, targets),
        "final_val_acc": outcome.result.val_acc,
        "test_acc": outcome.result.test_acc,
        "train_s": round(outcome.result.train_s, 1),
        "curve": [[round(r["epoch_s"], 1), r["val_acc"]] for r in history],
        "png": str(png),
        "config": changed,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
