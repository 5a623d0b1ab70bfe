"""Commands for results: ``results export``, ``results merge`` and ``report``."""

from __future__ import annotations

import argparse

from .common import add_store_flag, command, print_json, require_store

REPORT_EXAMPLE = """examples:
  squeezelab report --db results/squeezelab.db --out report
  squeezelab report --published --json"""


def _results_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="write one tidy table of every run")
    add_store_flag(exp)
    exp.add_argument(
        "--format",
        default="csv",
        choices=("csv", "parquet", "json"),
        help="csv (default), json, or parquet (needs the [export] extra)",
    )
    exp.add_argument("--out", help="output file (default: stdout for csv and json)")
    exp.add_argument("--metrics", action="store_true", help="one row per epoch instead of per run")
    merge = sub.add_parser(
        "merge",
        help="merge other stores (runs trained on other machines) into --db",
        description="Merge stores into --db (created if missing): finished runs it lacks, or "
        "holds unfinished, are taken with their metrics; runs it finished are kept as they "
        "are; a study whose runs differ between two stores (a changed study file, --set or "
        "data path: see --data-path) is refused before anything is written. Run folders "
        "(weights) stay where they are: copy them into this store's runs folder if a later "
        "step needs their weights.",
    )
    add_store_flag(merge, "the store to merge into")
    merge.add_argument("sources", nargs="+", metavar="SOURCE", help="a store to merge from")
    merge.add_argument(
        "--data-path",
        action="append",
        default=[],
        metavar="THEIRS=OURS",
        help="the sources' runs read data at THEIRS, the same data as OURS here (e.g. "
        ".data/train.tar.gz=../shared/datasets/cifar10-jpeg/train.tar.gz): they take the keys "
        "they have on OURS, each checked against OURS's content (repeatable)",
    )
    merge.add_argument(
        "--dry-run", action="store_true", help="say what would change, write nothing"
    )
    merge.add_argument("--json", action="store_true", help="print one JSON object")


RESULTS_EXAMPLE = """examples:
  squeezelab results export --db results/squeezelab.db --format csv --out runs.csv
  squeezelab results merge gpu-out/runs.db --db results/squeezelab.db --dry-run"""


@command("results", _results_args, RESULTS_EXAMPLE)
def results(args: argparse.Namespace) -> int:
    """Export the results store, or merge other stores into it."""
    if args.action == "merge":
        from ..errors import ConfigError
        from ..results.merge import merge_stores

        pairs = [item.partition("=") for item in args.data_path]
        if any(not theirs or not ours for theirs, _, ours in pairs):
            raise ConfigError(f"--data-path expects THEIRS=OURS, got {args.data_path}")
        rekey = None
        if pairs:  # keys are computed as the runner does (torch is imported only then)
            from ..studies.runner import data_path_rekey

            rekey = data_path_rekey({t: o for t, _, o in pairs})
        plans = merge_stores(args.sources, args.db, dry_run=args.dry_run, rekey=rekey)
        if args.json:
            print_json({"dry_run": args.dry_run, "merges": [p.to_dict() for p in plans]})
        else:
            for plan in plans:
                print(("would merge " if args.dry_run else "merged ") + plan.summary())
        return 0
    from ..results.export import export

    require_store(args.db)
    export(args.db, args.format, args.out, per_epoch=args.metrics)
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    add_store_flag(p, "the results store")
    p.add_argument("--out", default="report", help="output directory")
    p.add_argument(
        "--published",
        action="store_true",
        help="recompute the study's own statistics from its published tables (no store needed)",
    )
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


@command("report", _report_args, REPORT_EXAMPLE)
def report(args: argparse.Namespace) -> int:
    """Write report.html, report.md, tables (CSV) and figures (PNG) from a store."""
    if args.published:
        return _report_published(args.json)
    from ..analysis import build_report
    from ..studies.presets import reference_protocols

    summary = build_report(args.db, args.out, reference_protocols())
    print_summary(summary, args.json)
    return 0


def _report_published(as_json: bool) -> int:
    from ..analysis.evaluate import analyze_published
    from ..reproduce import OBJECTIVES
    from ..studies.spec import load_study

    specs = [load_study(n) for n in OBJECTIVES]
    studies = [(s.name, list(s.claims), list(s.report.published)) for s in specs if s.claims]
    results = analyze_published(studies)
    if as_json:
        print_json({"claims": [r.to_dict() for r in results]})
        return 0
    print("The study's statistics recomputed from its published tables (Tables A1-A4):")
    for rule in ("chance", "exclude"):
        word = (
            "diverged cells at chance (10%), the study's rule"
            if rule == "chance"
            else ("diverged cells excluded")
        )
        print(f"\n{word}:")
        for r in (r for r in results if r.rule == rule):
            line = f"  [{r.verdict}] {r.label}"
            if r.value is not None:
                line += (
                    f": {r.statistic} = {r.value:.4f}, n = {r.n}, p = {r.p:.4g} ({r.hypothesis}), "
                    f"two-sided p = {r.p_two_sided:.4g}, Holm p = {r.p_holm:.4g}"
                )
            for extra in (r.reason, r.note):
                line += f"; {extra}" if extra else ""
            print(line + (f"  (the study: {r.published})" if r.published else ""))
    return 0


def print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    print(f"report: {summary['report']}")
    for claim in summary["claims"]:
        label = claim["statement"] + (f" [{claim['stratum']}]" if claim["stratum"] else "")
        why = claim["reason"]
        if not why and claim["p"] is not None:
            why = f"p = {claim['p']:.4g}, " + (
                f"Holm p = {claim['p_holm']:.4g}"
                if claim["p_holm"] is not None  # a sequential study's look: its own level
                else f"level at its look {claim['level']:.4g}"
                if claim["level"] is not None
                else "decided at an earlier look"
            )
        if claim.get("interim"):
            why += f"; interim: {claim['interim']}"
        print(f"  [{claim['verdict']}] ({claim['rule']}) {label}: {why}")
