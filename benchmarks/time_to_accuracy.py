"""Wall time to reach 70 / 75 / 80 / 85% validation accuracy for a recipe on this machine.

Trains one run (any run fields, e.g. ``--set recipe=modern --set batch_norm=true``) and
prints one JSON object: for each target, the first epoch whose validation accuracy reaches it
and the training wall time until the end of that epoch (``null`` if never reached), the final
validation and test accuracy, and the path of a PNG of validation accuracy against wall time.
Times are the run's own epoch times (training and validation passes, no data decoding).

With ``--db``, trains nothing: it reads the finished runs of a results store (optionally one
study's) and gives the same figures per model (with and without batch norm; per condition
when the runs differ in other fields, such as a search's learning rates) from the epoch
times each run recorded: per run, and the median and range over its seeds with how many
reached each target, the threads each run had, and one PNG of every run's curve. Runs that
shared the machine (``--runs-per-device 2``: one thread each) took longer per epoch than one
run alone.

Usage: python benchmarks/time_to_accuracy.py [--data SOURCE] [--set FIELD=VALUE ...]
           [--targets 70,75,80,85] [--out DIR]
       python benchmarks/time_to_accuracy.py --db STORE [--study NAME] [--targets ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg/train.tar.gz"


def default_data() -> str:
    """The shared CIFAR-10 JPEG set beside the repository, else synthetic data (said so)."""
    if DEFAULT_DATA.exists():
        return str(DEFAULT_DATA)
    print(f"note: {DEFAULT_DATA} not found: timing on synthetic data", file=sys.stderr)
    return "synthetic"


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


def plot(
    curves: dict[str, list[list[dict[str, Any]]]], targets: list[float], path: Path, title: str
) -> None:
    """Validation accuracy against wall time: one line per run, one colour per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, histories) in enumerate(curves.items()):
        for j, history in enumerate(histories):
            minutes = [t / 60 for t in itertools.accumulate(row["epoch_s"] for row in history)]
            accs = [row["val_acc"] for row in history]
            ax.plot(minutes, accs, "o-", ms=2, color=f"C{i}", label=None if j else name)
    if len(curves) > 1:
        ax.legend(fontsize=7)
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
        "--data",
        help="data source (default: the shared CIFAR-10 JPEG set when present, else synthetic "
        "data, said on stderr)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a run field (repeatable), e.g. --set batch_norm=true --set epochs=15",
    )
    parser.add_argument("--targets", default="70,75,80,85", help="percent, comma-separated")
    parser.add_argument("--out", default="time_to_accuracy", help="run directory and PNG")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    parser.add_argument("--db", help="read the finished runs of this store instead of training")
    parser.add_argument("--study", help="with --db: only this study's runs")
    args = parser.parse_args(argv)
    if args.study and not args.db:
        parser.error("--study reads a store: give --db too")
    targets = [float(t) for t in args.targets.split(",")]
    if args.db:
        summary = from_store(Path(args.db), args.study, targets, Path(args.out))
        print(json.dumps(summary))
        return summary

    from squeezelab.studies import parse_overrides
    from squeezelab.training import from_dict, train

    values = {"recipe": "modern", "data": args.data or default_data(), **parse_overrides(args.set)}
    cfg = from_dict(values, "--set")
    out = Path(args.out)
    outcome = train(cfg, out / "run", resume=True, device=args.device, progress=False)
    history = outcome.history
    changed = {k: v for k, v in cfg.to_dict().items() if k not in ("data",)}
    title = f"{cfg.model}{' + BN' if cfg.batch_norm else ''}, recipe {cfg.recipe}"
    png = out / "time_to_accuracy.png"
    plot({title: [history]}, targets, png, title)
    summary = {
        "model": cfg.model,
        "batch_norm": cfg.batch_norm,
        "recipe": cfg.recipe,
        "data": cfg.data,
        "device": outcome.provenance.get("device_name"),
        "precision": outcome.provenance.get("precision"),
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


def from_store(db: Path, study: str | None, targets: list[float], out: Path) -> dict[str, Any]:
    """Time to each target per model, from the epoch times a store's finished runs recorded."""
    from squeezelab.analysis.selection import varying_fields
    from squeezelab.analysis.tables import unique
    from squeezelab.results import Store, StoreError
    from squeezelab.results.records import machine_of

    if not db.exists():
        raise SystemExit(f"--db {db}: no such results store")
    try:
        with Store(db, readonly=True) as store:
            studies = store.studies()
            if study is not None and study not in studies:
                raise SystemExit(f"--study {study}: not in {db} (it holds {', '.join(studies)})")
            runs = [r for r in store.runs(study) if r.status == "done" and r.history]
    except StoreError as err:
        raise SystemExit(f"--db: {err}") from None
    runs = unique(runs)  # a run several studies hold counts once
    # One group per condition, seeds together: a search's cells (lr 0.025 / 0.05 / 0.1) stay
    # apart, each named by the fields that set it apart.
    # Runs from several machines (a merged store) are timed apart, each group naming its own.
    other = varying_fields(runs, exclude=("model", "batch_norm", "seed"))
    machines = {machine_of(r.provenance) for r in runs}
    groups: dict[str, list[Any]] = {}
    for r in runs:
        name = f"{r.config['model']}{' + BN' if r.config.get('batch_norm') else ''}"
        if other:
            name += f" ({', '.join(f'{k}={r.config.get(k)}' for k in other)})"
        if len(machines) > 1:
            name += f" [{machine_of(r.provenance)}]"
        groups.setdefault(name, []).append(r)
    if not groups:
        raise SystemExit(f"{db}: no finished run with a history{f' in {study}' if study else ''}")
    models = {}
    for name, members in sorted(groups.items()):
        per_run = [
            {
                "seed": r.config.get("seed"),
                "lr": r.config.get("lr"),
                "threads": (r.provenance or {}).get("threads"),
                "device": (r.provenance or {}).get("device_name"),
                "time_to": time_to_targets(list(r.history), targets),
                "final_val_acc": r.result.val_acc,
                "test_acc": r.result.test_acc,
            }
            for r in sorted(members, key=lambda r: r.config.get("seed", 0))
        ]
        median = {}
        for t in (f"{t:g}" for t in targets):
            hits = [run["time_to"][t]["seconds"] for run in per_run if run["time_to"][t]]
            median[t] = {
                "reached": f"{len(hits)} of {len(per_run)}",
                "median_s": round(statistics.median(hits), 1) if hits else None,
                "range_s": [round(min(hits), 1), round(max(hits), 1)] if hits else None,
            }
        models[name] = {"runs": len(per_run), "time_to_median": median, "per_run": per_run}
    png = out / "time_to_accuracy.png"
    out.mkdir(parents=True, exist_ok=True)
    curves = {name: [list(r.history) for r in members] for name, members in groups.items()}
    plot(curves, targets, png, f"{db.name}{f', {study}' if study else ''}: each finished run")
    return {"source": str(db), "study": study, "models": models, "png": str(png)}


if __name__ == "__main__":
    main()
