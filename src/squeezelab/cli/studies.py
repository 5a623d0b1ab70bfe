"""Commands for studies: ``study`` (run, status, list) and ``reproduce``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .common import add_store_flag, command, print_json, require_store
from .results import print_summary

if TYPE_CHECKING:
    from ..studies.spec import StudySpec

STUDY_EXAMPLE = """examples:
  squeezelab study list
  squeezelab study run grid --data synthetic --set epochs=1 --db results/squeezelab.db
  squeezelab study status --db results/squeezelab.db"""
REPRODUCE_EXAMPLE = """examples:
  squeezelab reproduce --out reproduction
  squeezelab reproduce --preset paper --data cifar10 --dry-run
  squeezelab reproduce --preset rigorous --data cifar10 --out study"""


# studies.executors.EXECUTORS' names (importing it would import torch for --help; a test
# keeps the two in step)
EXECUTOR_NAMES = ("local", "ray")


def add_execution_flags(p: argparse.ArgumentParser) -> None:
    """Where and how a study's runs execute (``study run`` and ``reproduce``)."""
    p.add_argument(
        "--executor",
        default="local",
        choices=EXECUTOR_NAMES,
        help="local processes (default) or a Ray cluster (needs the [ray] extra)",
    )
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument(
        "--runs-per-device",
        type=int,
        metavar="N",
        help="N runs at once on each GPU (Ray: 1/N of a GPU each); on a CPU, N processes that "
        "split the cores. Overrides --workers",
    )
    p.add_argument("--address", help="Ray cluster address (default: start a local one)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="one place for every run's files, for nodes that share no disk: a folder, an NFS "
        "path or an fsspec URL (s3://bucket/prefix); runs train in each node's scratch "
        "($SQUEEZELAB_SCRATCH) and are copied there every epoch (default: runs train in "
        "--runs-dir)",
    )
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a run field in every run (repeatable), e.g. --set epochs=2",
    )
    p.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep every run's final weights (default: only what a later step needs)",
    )


def execution(args: argparse.Namespace) -> dict[str, Any]:
    """The execution flags as keyword arguments of :func:`squeezelab.studies.run_study`."""
    return {
        "executor": args.executor,
        "workers": args.workers,
        "runs_per_device": args.runs_per_device,
        "address": args.address,
        "data_dir": args.data_dir,
        "keep_weights": args.keep_weights,
        "storage": args.storage,
    }


def _study_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run (or continue) a study")
    run.add_argument("study", help="a built-in study name or a .toml file")
    run.add_argument("--data", help="data source for every run (overrides the study's)")
    add_store_flag(run)
    run.add_argument("--runs-dir", help="where run directories go (default: beside the db)")
    run.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    run.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print the plan as one JSON object (every run's key, status and "
        "full config)",
    )
    run.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FIELD=VALUE[,VALUE]",
        help="run only the study's runs with these field values (repeatable; all must match), "
        "e.g. --only model=squeezenet1_0 --only seed=0,1; the rest stay for a later call",
    )
    run.add_argument(
        "--live",
        nargs="?",
        const="",
        metavar="PATH",
        help="keep a live HTML page of the study while it runs (default PATH: beside the db, "
        "STORE-live.html); open it in a browser, it reloads itself",
    )
    run.add_argument(
        "--until-decided",
        action="store_true",
        help="run look by look, adding seeds where claims are still open, until every claim is "
        "decided (the study file's [sequential] section: max_seeds, seeds_per_look, spending, "
        "budget); resumable like any study. With --only (conditions, not seeds): the "
        "claims whose runs all lie in the selection, as a study of their own (its looks "
        "under 'STUDY[field=value]')",
    )
    run.add_argument(
        "--max-seeds",
        type=int,
        metavar="N",
        help="with --until-decided: the most seeds per condition (overrides [sequential]; "
        "enough on its own for a study without the section)",
    )
    add_execution_flags(run)
    status = sub.add_parser("status", help="done / running / failed / diverged / left per study")
    add_store_flag(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("list", help="list the built-in studies")


def live_path(db: str, flag: str | None) -> str | None:
    """``--live`` alone: the page beside the store; ``--live PATH``: there; absent: none."""
    if flag is None:
        return None
    return flag or str(Path(db).with_name(Path(db).stem + "-live.html"))


def _watch_args(p: argparse.ArgumentParser) -> None:
    add_store_flag(p)
    p.add_argument("--out", help="the page to keep (default: beside the db, STORE-live.html)")
    p.add_argument("--study", action="append", help="only this study (repeatable)")
    p.add_argument("--every", type=float, default=5.0, help="seconds between writes (5)")
    p.add_argument("--once", action="store_true", help="write the page once and exit")


WATCH_EXAMPLE = """examples:
  squeezelab watch --db results/squeezelab.db      # then open results/squeezelab-live.html
  squeezelab study run grid --db results/squeezelab.db --live   # the same, from the study"""


@command("watch", _watch_args, WATCH_EXAMPLE)
def watch(args: argparse.Namespace) -> int:
    """Keep a live HTML page of a store's running studies.

    For a study started elsewhere; it stops when no run is left or running."""
    import time

    from ..fileio import write_text
    from ..results import Store
    from ..studies.live import render

    require_store(args.db)
    out = live_path(args.db, args.out or "") or ""

    print(f"live view: {out}", file=sys.stderr)
    while True:
        write_text(out, render(args.db, args.study, args.every))
        with Store(args.db, readonly=True) as store:
            names = args.study or store.studies()
            active = sum(
                c["running"] + c["left"] + c["interrupted"]
                for c in (store.status_counts(n) for n in names)
            )
        if args.once or not active:
            return 0
        try:
            time.sleep(args.every)
        except KeyboardInterrupt:
            return 0


def _doctor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default="local",
        help="check this machine (local) or every node of a Ray cluster (ray)",
    )
    p.add_argument("--address", help="Ray cluster address: auto, IP:port or ray://host:port")
    p.add_argument(
        "--storage",
        help="run storage (study run's --storage, or its --runs-dir): a folder or an fsspec "
        "URL; each node writes and reads a probe file there",
    )
    p.add_argument("--data", help="a data file or folder: each node must hold the same content")
    p.add_argument("--json", action="store_true", help="print one JSON object")


DOCTOR_EXAMPLE = """examples:
  squeezelab doctor --data train.tar.gz --storage runs/
  squeezelab doctor --executor ray --address 10.0.0.5:6379 --storage /shared/runs \\
      --data /shared/data/cifar10.tar.gz"""


@command("doctor", _doctor_args, DOCTOR_EXAMPLE)
def doctor(args: argparse.Namespace) -> int:
    """Check every node a study would use: storage, data, device, disk and versions.

    One line per node (this machine, or every node of a Ray cluster) and a verdict."""
    from ..studies.doctor import run_doctor

    reports = run_doctor(args.executor, args.address, args.storage, args.data)
    bad = [r for r in reports if r.problems]
    if args.json:
        print_json({"nodes": [dataclasses.asdict(r) for r in reports], "ok": not bad})
    else:
        for r in reports:
            print(r.line())
        verdict = (
            f"{len(reports)} node(s), all ready"
            if not bad
            else f"{len(bad)} of {len(reports)} node(s) have a problem: fix it before a study runs"
        )
        print(verdict)
    return 1 if bad else 0


def _until_decided(spec: Any, args: argparse.Namespace, only: Any, live: str | None) -> int:
    from ..analysis.sequential import SequentialDesign
    from ..studies.sequential import run_until_decided

    if not args.until_decided:
        raise ConfigError("--max-seeds goes with --until-decided")
    design = spec.sequential
    if args.max_seeds:
        try:
            design = (
                dataclasses.replace(design, max_seeds=args.max_seeds)
                if design
                else SequentialDesign(first=len(spec.seeds), max_seeds=args.max_seeds)
            )
        except ValueError as err:
            raise ConfigError(f"--max-seeds: {err}") from None
    out = run_until_decided(
        spec, args.db, design, runs_dir=args.runs_dir, live=live, only=only, **execution(args)
    )
    print(
        f"{out.name}: {out.looks} look(s), stopped: {out.stopped}; "
        f"{out.run_epochs:g} run-epochs (a fixed design at the most seeds: "
        f"{out.fixed_run_epochs:g})"
    )
    for claim, verdict in out.verdicts.items():
        print(f"  [{verdict}] {claim}")
    return 1 if out.stopped == "failed runs" else 0


@command("study", _study_args, STUDY_EXAMPLE)
def study(args: argparse.Namespace) -> int:
    """Run, inspect and list declarative studies."""
    if args.action == "status":  # reads the store alone: no torch to import
        return _print_status(args.db, args.json)
    from ..studies import builtin_studies, load_study, parse_overrides, run_study
    from ..studies.spec import parse_filters

    if args.action == "list":
        research = builtin_studies(research=True)
        names = builtin_studies()
        width = max(map(len, names + research), default=0)
        for group in (names, research):
            if group is research:
                print("\nthe recipe search behind the `modern` recipe (research log, runnable):")
            for name in group:
                spec = load_study(name)
                print(f"{name:{width}s} {len(spec.expand()):4d} runs  {spec.description}")
        return 0
    overrides = parse_overrides(args.set)
    if args.data and "data" not in overrides:  # --set data=... is the more specific
        overrides["data"] = args.data
    spec = load_study(args.study).with_overrides(overrides)
    only = parse_filters(args.only)
    if args.json and not args.dry_run:
        raise ConfigError("study run --json prints a plan: use it with --dry-run")
    if args.dry_run:
        return _dry_run(spec, only, args.db, args.json)
    live = live_path(args.db, args.live)
    if live:
        print(f"live view: {live}", file=sys.stderr)
    if args.until_decided or args.max_seeds:
        return _until_decided(spec, args, only, live)
    counts = run_study(
        spec, args.db, runs_dir=args.runs_dir, only=only, live=live, **execution(args)
    )
    print(f"{spec.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if counts["failed"]:
        print(
            f"squeezelab study: {counts['failed']} run(s) of {spec.name!r} failed; their errors: "
            f"squeezelab results export --db {args.db} (column 'error'); re-running retries them",
            file=sys.stderr,
        )
        return 1
    return 0


def _dry_run(
    spec: StudySpec, only: dict[str, tuple[Any, ...]], db: str, as_json: bool = False
) -> int:
    """Print each run's store key, its status in ``db`` (``new`` where the store has no such
    run, or there is no store yet) and the fields that differ between the study's runs; with
    ``as_json``, one object holding every run's full config."""
    from ..results import Store
    from ..results.records import FINISHED
    from ..studies.runner import no_points, run_key
    from ..studies.spec import select_runs

    runs = spec.expand()
    rows = [c.to_dict() for c in runs]  # show what differs between the study's runs
    shown = [k for k in rows[0] if len({str(r[k]) for r in rows}) > 1] if rows else []
    stored: dict[str, str] = {}
    best_of_done = 0
    if Path(db).exists():
        require_store(db)
        with Store(db, readonly=True) as store:
            stored = store.stored_statuses()
            if spec.best_of is not None:
                best_of_done = sum(r.finished_ok for r in store.runs(spec.best_of.study))
    if spec.best_of is not None and not spec.points and not best_of_done:
        raise no_points(spec, 0)  # what the run itself would refuse
    chosen = select_runs(runs, only, spec.name) if only else runs
    keys = [run_key(cfg) for cfg in chosen]
    done = sum(stored.get(key) in FINISHED for key in keys)  # as the run itself counts them
    if as_json:
        print_json(
            {
                "study": spec.name,
                "source": spec.source,
                "varying": shown,
                "runs": [
                    {"key": key, "status": stored.get(key, "new"), "config": cfg.to_dict()}
                    for key, cfg in zip(keys, chosen, strict=True)
                ],
                "claims": [c.id for c in spec.claims],
                "total": len(keys),
                "finished": done,
            }
        )
        return 0
    for key, cfg in zip(keys, chosen, strict=True):
        print(key, f"{stored.get(key, 'new'):9s}", {k: getattr(cfg, k) for k in shown})
    where = f"in {db}" if stored else f"({db} holds none)"
    print(
        f"{spec.name}: {len(keys)} run(s), {done} already finished {where}, "
        f"{len(keys) - done} to run",
        file=sys.stderr,
    )
    return 0


def _print_status(db: str, as_json: bool) -> int:
    from ..results import Store

    require_store(db)
    with Store(db, readonly=True) as store:
        table = {name: store.status_counts(name) for name in store.studies()}
    if as_json:
        print_json(table)
        return 0
    columns = ("done", "running", "interrupted", "failed", "diverged", "left")
    width = max(map(len, ["study", *table]))
    print(f"{'study':{width}s} " + " ".join(f"{c:>11s}" for c in columns))
    for name, c in table.items():
        print(f"{name:{width}s} " + " ".join(f"{c[k]:11d}" for k in columns))
    if any(c["interrupted"] for c in table.values()):
        print("interrupted: their process died; `squeezelab study run` again resumes them")
    return 0


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from ..studies.presets import presets

    p.add_argument(
        "--data",
        help="data source (default: the preset's: synthetic for quick, cifar10 for paper and "
        "rigorous)",
    )
    p.add_argument("--out", default="reproduction", help="output directory (store + report)")
    p.add_argument(
        "--preset",
        default="quick",
        choices=presets(),
        help="quick: minutes on a CPU; paper: the study's protocol, faithfully; rigorous: the "
        "study's questions under a sound protocol (default: quick)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (every run's config) and stop"
    )
    add_execution_flags(p)
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


@command("reproduce", _reproduce_args, REPRODUCE_EXAMPLE)
def reproduce(args: argparse.Namespace) -> int:
    """Run the study's five objectives in order and write the report."""
    from ..reproduce import plan_json, reproduce, resolve
    from ..studies import parse_overrides

    if args.dry_run:
        plan = plan_json(args.preset, resolve(args.preset, args.data, parse_overrides(args.set)))
        if args.json:
            print_json(plan)
        else:
            for name, s in plan["studies"].items():
                print(f"{name:10s} {s['runs']:4d} runs {s['epochs']:6d} epochs  {s['note']}")
            print(f"total      {plan['total_runs']:4d} runs {plan['total_epochs']:6d} epochs")
        return 0
    summary = reproduce(
        args.data, args.out, args.preset, parse_overrides(args.set), **execution(args)
    )
    print_summary(summary, args.json)
    if not args.json:
        print(f"wall time {summary['wall_s']:.0f}s")
    if summary.get("failed_runs"):
        print(
            f"squeezelab reproduce: {summary['failed_runs']} run(s) failed (the report says "
            "which and why, at its top); re-running retries them",
            file=sys.stderr,
        )
        return 1
    return 0
