"""Sub-commands for studies and results (registered on import by :mod:`squeezelab.cli`)."""

from __future__ import annotations

import argparse
import sys

from .cli import _print_json, command

DEFAULT_DB = "results/squeezelab.db"


def _study_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run (or continue) a study")
    run.add_argument("study", help="a built-in study name or a .toml file")
    run.add_argument("--data", help="data source for every run (overrides the study's)")
    run.add_argument("--db", default=DEFAULT_DB, help=f"results store (default: {DEFAULT_DB})")
    run.add_argument(
        "--executor", default="local", choices=("local", "ray"), help="where runs execute"
    )
    run.add_argument("--workers", type=int, default=1, help="runs at a time")
    run.add_argument("--address", help="Ray cluster address (default: start a local one)")
    run.add_argument("--data-dir", help="cache directory for datasets")
    run.add_argument("--runs-dir", help="where run directories go (default: beside the db)")
    run.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a run field"
    )
    run.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    run.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep every run's final weights (default: only each model's best cell's)",
    )
    status = sub.add_parser("status", help="done / running / failed / diverged / left per study")
    status.add_argument("--db", default=DEFAULT_DB, help=f"results store (default: {DEFAULT_DB})")
    status.add_argument("--json", action="store_true", help="print one JSON object")
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
    if args.data and "data" not in overrides:  # --set data=... is the more specific
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
        keep_weights=args.keep_weights,
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


def require_store(db: str) -> None:
    """Refuse to read a store that does not exist (reading must never create one)."""
    from pathlib import Path

    from .results import StoreError

    if not Path(db).is_file():
        raise StoreError(
            f"no store at {db}: run a study first (squeezelab study run ... --db {db}), "
            "or pass --db PATH"
        )


def _print_status(db: str, as_json: bool) -> int:
    from .results import Store

    require_store(db)
    with Store(db, readonly=True) as store:
        table = {name: store.status_counts(name) for name in store.studies()}
    if as_json:
        _print_json(table)
        return 0
    columns = ("done", "running", "interrupted", "failed", "diverged", "left")
    print(f"{'study':14s} " + " ".join(f"{c:>11s}" for c in columns))
    for name, c in table.items():
        print(f"{name:14s} " + " ".join(f"{c[k]:11d}" for k in columns))
    if any(c["interrupted"] for c in table.values()):
        print("interrupted: their process died; `squeezelab study run` again resumes them")
    return 0


def _results_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="write one tidy table of every run")
    exp.add_argument("--db", default=DEFAULT_DB, help=f"results store (default: {DEFAULT_DB})")
    exp.add_argument(
        "--format",
        default="csv",
        choices=("csv", "parquet", "json"),
        help="csv (default), json, or parquet (needs the [export] extra)",
    )
    exp.add_argument("--out", help="output file (default: stdout for csv and json)")
    exp.add_argument("--metrics", action="store_true", help="one row per epoch instead of per run")


@command("results", _results_args)
def _results(args: argparse.Namespace) -> int:
    """Export the results store."""
    from .results.export import export

    require_store(args.db)
    export(args.db, args.format, args.out, per_epoch=args.metrics)
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"the results store (default: {DEFAULT_DB})")
    p.add_argument("--out", default="report", help="output directory")
    p.add_argument(
        "--published",
        action="store_true",
        help="recompute the study's own statistics from its published tables (no store needed)",
    )
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


@command("report", _report_args)
def _report(args: argparse.Namespace) -> int:
    """Write report.html, report.md, tables (CSV) and figures (PNG) from a store."""
    if args.published:
        return _report_published(args.json)
    from .analysis import build_report
    from .studies.presets import reference_protocols

    summary = build_report(args.db, args.out, reference_protocols())
    _print_summary(summary, args.json)
    return 0


def _report_published(as_json: bool) -> int:
    from .analysis.published import analyze_published
    from .reproduce import OBJECTIVES
    from .studies.spec import load_study

    specs = [load_study(n) for n in OBJECTIVES]
    studies = [(s.name, list(s.claims), list(s.report.published)) for s in specs if s.claims]
    results = analyze_published(studies)
    if as_json:
        _print_json({"claims": [r.to_dict() for r in results]})
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


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    print(f"report: {summary['report']}")
    for claim in summary["claims"]:
        label = claim["statement"] + (f" [{claim['stratum']}]" if claim["stratum"] else "")
        why = claim["reason"] or (
            f"p = {claim['p']:.4g}, Holm p = {claim['p_holm']:.4g}"
            if claim["p"] is not None
            else ""
        )
        print(f"  [{claim['verdict']}] ({claim['rule']}) {label}: {why}")


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from .studies.presets import presets

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
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local processes (default) or a Ray cluster (needs the [ray] extra)",
    )
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--address", help="Ray cluster address (default: start a local one)")
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a run field in every study (repeatable), e.g. --set epochs=2",
    )
    p.add_argument(
        "--keep-weights",
        action="store_true",
        help="keep every run's final weights (default: only what a later step needs)",
    )
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


@command("reproduce", _reproduce_args)
def _reproduce(args: argparse.Namespace) -> int:
    """Run the study's five objectives in order and write the report."""
    from .reproduce import plan_json, reproduce, resolve
    from .studies import parse_overrides

    if args.dry_run:
        plan = plan_json(args.preset, resolve(args.preset, args.data, parse_overrides(args.set)))
        if args.json:
            _print_json(plan)
        else:
            for name, s in plan["studies"].items():
                print(f"{name:10s} {s['runs']:4d} runs {s['epochs']:6d} epochs  {s['note']}")
            print(f"total      {plan['total_runs']:4d} runs {plan['total_epochs']:6d} epochs")
        return 0
    summary = reproduce(
        args.data,
        args.out,
        args.preset,
        parse_overrides(args.set),
        args.executor,
        args.workers,
        args.address,
        args.data_dir,
        args.keep_weights,
    )
    _print_summary(summary, args.json)
    if not args.json:
        print(f"wall time {summary['wall_s']:.0f}s")
    return 0


def _compress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a run directory, or a state-dict .pth/.safetensors file")
    p.add_argument("--model", help="architecture of a state-dict file (e.g. squeezenet1_0)")
    p.add_argument("--sparsity", type=float, default=0.67, help="fraction of weights removed")
    p.add_argument("--bits", type=int, default=6, help="bits per shared weight (2**bits centroids)")
    p.add_argument("--fc-bits", type=int, help="bits for fully connected layers (default: --bits)")
    p.add_argument(
        "--scope",
        default="per_layer",
        choices=("per_layer", "global"),
        help="prune each layer to the sparsity, or rank all weights together",
    )
    p.add_argument("--profile", default="uniform", choices=("uniform", "paper-alexnet"),
                   help="paper-alexnet: Deep Compression's per-layer AlexNet settings")  # fmt: skip
    p.add_argument("--data", help="data for accuracies and fine-tuning")
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--finetune-epochs", type=int, default=0, help="retraining epochs after each step"
    )
    p.add_argument("--finetune-lr", type=float, default=0.01, help="retraining lr (0.01)")
    p.add_argument("--image-size", type=int, default=64, help="for state-dict files")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    p.add_argument("--out", required=True, help="compressed file to write")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("compress", _compress_args)
def _compress(args: argparse.Namespace) -> int:
    """Prune, share weights, Huffman-code a checkpoint; report its real size."""
    from .compression import compress

    r = compress(
        args.source, args.out, args.sparsity, args.bits, model=args.model, data=args.data,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, scope=args.scope,
        profile=args.profile, fc_bits=args.fc_bits, image_size=args.image_size,
        data_dir=args.data_dir, device=args.device,
    )  # fmt: skip
    if args.json:
        keys = ("dense_bytes", "compressed_bytes", "ratio", "accuracy_before",
                "accuracy_after", "sparsity", "bits")  # fmt: skip
        _print_json({k: r[k] for k in keys})
    else:
        print(f"{r['model']}: {r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes "
              f"({r['ratio']:.1f}x), sparsity {r['sparsity']:.3f}; wrote {r['out']}")  # fmt: skip
        if r["accuracy_before"] is not None:
            print(f"accuracy {r['accuracy_before']:.2f}% -> {r['accuracy_after']:.2f}%")
    return 0


def _load_for_export(args: argparse.Namespace) -> tuple:
    """Return (model, image size, calibration batches) for export and benchmarks."""
    from .compression.export import calibration_batches
    from .compression.pipeline import load_compressed, load_source_model

    if str(args.source).endswith(".sqzc"):
        from .compression.storage import read_compressed

        size = read_compressed(args.source)[1]["image_size"]
        return load_compressed(args.source), size, calibration_batches(size)
    src = load_source_model(args.source, args.model, args.image_size)
    batches = None
    if src.config is not None:  # a run: calibrate on its own validation images
        from .compression.finetune import Tuner

        batches = Tuner(src, src.config.data, None, "cpu").val
    return src.model, src.image_size, calibration_batches(src.image_size, batches)


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a run directory, a .sqzc file or a state-dict file")
    p.add_argument(
        "--format",
        required=True,
        choices=("onnx", "int8"),
        help="onnx (needs the [onnx] extra) or int8 TorchScript",
    )
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--model", help="architecture of a state-dict file")
    p.add_argument("--image-size", type=int, default=64, help="input side in pixels (64)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("export", _export_args)
def _export(args: argparse.Namespace) -> int:
    """Export to ONNX or int8 TorchScript and check it against the original outputs."""
    from pathlib import Path

    import torch

    from .compression.export import check_export, export_int8, export_onnx

    model, size, calibration = _load_for_export(args)
    if args.format == "onnx":
        export_onnx(model, size, args.out)
    else:
        export_int8(model, calibration, args.out)
    # Checked on real images when the source is a run (its validation batches), else noise.
    check = check_export(model, args.format, Path(args.out), torch.cat(calibration)[:256])
    check.update(format=args.format, out=args.out, bytes=Path(args.out).stat().st_size)
    if args.json:
        _print_json(check)
    else:
        agree = 100 * check["top1_agreement"]
        print(f"wrote {args.out} ({check['bytes']:,} bytes); max |diff| "
              f"{check['max_abs_diff']:.3g}, top-1 agreement {agree:.1f}%")  # fmt: skip
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a run directory, a .sqzc file or a state-dict file")
    p.add_argument("--model", help="architecture of a state-dict file")
    p.add_argument("--image-size", type=int, default=64, help="input side in pixels (64)")
    p.add_argument("--repeats", type=int, default=30, help="timed repeats (median reported)")


@command("bench-infer", _bench_args)
def _bench_infer(args: argparse.Namespace) -> int:
    """Latency (batch 1) and throughput (batch 64) for fp32, int8 and ONNX Runtime."""
    from .compression.bench import bench_model

    model, size, calibration = _load_for_export(args)
    _print_json(bench_model(model, size, args.repeats, calibration))
    return 0
