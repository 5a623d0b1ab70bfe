"""Commands for compression: ``compress``, ``export``, ``bench-infer``."""

from __future__ import annotations

import argparse

from .common import command, print_json

COMPRESS_EXAMPLE = """example:
  squeezelab compress runs/sq-bn --sparsity 0.67 --bits 6 --out sq.sqzc --json"""


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
    p.add_argument(
        "--data",
        help="data for accuracies and fine-tuning (default: a run's own data; none for a "
        "loose weights file)",
    )
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--finetune-epochs", type=int, default=0, help="retraining epochs after each step"
    )
    p.add_argument("--finetune-lr", type=float, default=0.01, help="retraining lr (0.01)")
    p.add_argument("--image-size", type=int, default=64, help="for state-dict files")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    p.add_argument("--out", required=True, help="compressed file to write")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("compress", _compress_args, COMPRESS_EXAMPLE)
def compress(args: argparse.Namespace) -> int:
    """Prune, share weights, Huffman-code a checkpoint; report its real size."""
    from ..compression import compress

    r = compress(
        args.source, args.out, args.sparsity, args.bits, model=args.model, data=args.data,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, scope=args.scope,
        profile=args.profile, fc_bits=args.fc_bits, image_size=args.image_size,
        data_dir=args.data_dir, device=args.device,
    )  # fmt: skip
    if args.json:
        keys = ("dense_bytes", "compressed_bytes", "ratio", "accuracy_before",
                "accuracy_after", "sparsity", "bits")  # fmt: skip
        print_json({k: r[k] for k in keys})
    else:
        print(f"{r['model']}: {r['dense_bytes']:,} -> {r['compressed_bytes']:,} bytes "
              f"({r['ratio']:.1f}x), sparsity {r['sparsity']:.3f}; wrote {r['out']}")  # fmt: skip
        if r["accuracy_before"] is not None:
            print(f"accuracy {r['accuracy_before']:.2f}% -> {r['accuracy_after']:.2f}%")
    return 0


def _load_for_export(args: argparse.Namespace) -> tuple:
    """(model, image size, calibration batches, what they are), the source read once."""
    from ..compression.pipeline import load_for_inference

    return load_for_inference(args.source, args.model, args.image_size)


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
def export(args: argparse.Namespace) -> int:
    """Export to ONNX or int8 TorchScript and check it against the original outputs."""
    from pathlib import Path

    import torch

    from ..compression.export import check_export, export_int8, export_onnx

    model, size, calibration, checked_on = _load_for_export(args)
    if args.format == "onnx":
        export_onnx(model, size, args.out)
    else:
        export_int8(model, calibration, args.out)
    # Checked on real images when the source is a run (its validation batches), else noise.
    check = check_export(model, args.format, Path(args.out), torch.cat(calibration)[:256])
    check.update(format=args.format, out=args.out, bytes=Path(args.out).stat().st_size)
    check["checked_on"] = checked_on
    if args.json:
        print_json(check)
    else:
        agree = 100 * check["top1_agreement"]
        print(f"wrote {args.out} ({check['bytes']:,} bytes); max |diff| "
              f"{check['max_abs_diff']:.3g}, top-1 agreement {agree:.1f}% on "
              f"{checked_on}")  # fmt: skip
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a run directory, a .sqzc file or a state-dict file")
    p.add_argument("--model", help="architecture of a state-dict file")
    p.add_argument("--image-size", type=int, default=64, help="input side in pixels (64)")
    p.add_argument("--repeats", type=int, default=30, help="timed repeats (median reported)")


@command("bench-infer", _bench_args)
def bench_infer(args: argparse.Namespace) -> int:
    """Latency (batch 1) and throughput (batch 64) for fp32, int8 and ONNX Runtime."""
    from ..compression.bench import bench_model

    model, size, calibration, _ = _load_for_export(args)
    print_json(bench_model(model, size, args.repeats, calibration))
    return 0
