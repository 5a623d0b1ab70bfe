"""Sub-commands for studies and results (registered on import by :mod:`squeezelab.cli`)."""

from __future__ import annotations

import argparse

from .cli import EXIT_USAGE, _print_json, command

DEFAULT_DB = "results/squeezelab.db"


def _study_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run (or continue) a study")
    run.add_argument("study", help="a built-in study name or a .toml file")
    run.add_argument("--data", help="data source for every run (overrides the study's)")
    run.add_argument("--db", default=DEFAULT_DB, help=f"results store (default: {DEFAULT_DB})")
    run.add_argument("--executor", default="local", choices=("local", "ray"))
    run.add_argument("--workers", type=int, default=1, help="runs at a time")
    run.add_argument("--address", help="Ray cluster address (default: start a local one)")
    run.add_argument("--data-dir", help="cache directory for datasets")
    run.add_argument("--runs-dir", help="where run directories go (default: beside the db)")
    run.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a run field"
    )
    run.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    status = sub.add_parser("status", help="done / running / failed / diverged / left per study")
    status.add_argument("--db", default=DEFAULT_DB)
    status.add_argument("--json", action="store_true")
    sub.add_parser("list", help="list the built-in studies")


@command("study", _study_args)
def _study(args: argparse.Namespace) -> int:
    """Run, inspect and list declarative studies."""
    from .studies import builtin_studies, load_study, parse_overrides, run_study

    if args.action == "list":
        for name in builtin_studies():
            spec = load_study(name)
            print(f"{name:14s} {len(spec.expand()):4d} runs  {spec.description}")
        return 0
    if args.action == "status":
        return _print_status(args.db, args.json)
    overrides = parse_overrides(args.set)
    if args.data:
        overrides["data"] = args.data
    spec = load_study(args.study).with_overrides(overrides)
    if args.dry_run:
        for cfg in spec.expand():
            print(cfg.key(), {k: v for k, v in cfg.to_dict().items() if k in (*spec.axes, "seed")})
        return 0
    counts = run_study(
        spec,
        args.db,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        data_dir=args.data_dir,
        runs_dir=args.runs_dir,
    )
    print(f"{spec.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _print_status(db: str, as_json: bool) -> int:
    from pathlib import Path

    from .results import Store

    if not Path(db).is_file():
        print(f"no store at {db}: run a study first", flush=True)
        return EXIT_USAGE
    with Store(db) as store:
        table = {name: store.status_counts(name) for name in store.studies()}
    if as_json:
        _print_json(table)
        return 0
    print(
        f"{'study':14s} {'done':>5s} {'running':>8s} {'failed':>7s} {'diverged':>9s} {'left':>5s}"
    )
    for name, c in table.items():
        print(f"{name:14s} {c['done']:5d} {c['running']:8d} {c['failed']:7d} "
              f"{c['diverged']:9d} {c['left']:5d}")  # fmt: skip
    return 0


def _results_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="write one tidy table of every run")
    exp.add_argument("--db", default=DEFAULT_DB)
    exp.add_argument("--format", default="csv", choices=("csv", "parquet", "json"))
    exp.add_argument("--out", help="output file (default: stdout for csv and json)")
    exp.add_argument("--metrics", action="store_true", help="one row per epoch instead of per run")


@command("results", _results_args)
def _results(args: argparse.Namespace) -> int:
    """Export the results store."""
    from .results.export import export

    export(args.db, args.format, args.out, per_epoch=args.metrics)
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--out", default="report", help="output directory")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


@command("report", _report_args)
def _report(args: argparse.Namespace) -> int:
    """Write report.html, report.md, tables (CSV) and figures (PNG) from a store."""
    from .analysis import build_report

    summary = build_report(args.db, args.out)
    _print_summary(summary, args.json)
    return 0


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    print(f"report: {summary['report']}")
    for claim in summary["claims"]:
        print(f"  [{claim['verdict']}] {claim['claim']} (p_holm = {claim['p_holm']:.4g})")


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from .reproduce import presets

    p.add_argument("--data", default="synthetic", help="data source (default: synthetic)")
    p.add_argument("--out", default="reproduction", help="output directory (store + report)")
    p.add_argument("--preset", default="quick", choices=presets())
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--address")
    p.add_argument("--data-dir")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--json", action="store_true")


@command("reproduce", _reproduce_args)
def _reproduce(args: argparse.Namespace) -> int:
    """Run the study's five objectives in order and write the report."""
    from .reproduce import reproduce
    from .studies import parse_overrides

    summary = reproduce(
        args.data,
        args.out,
        args.preset,
        parse_overrides(args.set),
        args.executor,
        args.workers,
        args.address,
        args.data_dir,
    )
    _print_summary(summary, args.json)
    if not args.json:
        print(f"wall time {summary['wall_s']:.0f}s")
    return 0
