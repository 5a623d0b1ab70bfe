"""Commands for single runs: ``info``, ``train``, ``evaluate``."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from .common import EXIT_USAGE, add_config_flags, command, config_from_args, print_json


def _info_args(p: argparse.ArgumentParser) -> None:
    from ..training.config import MODEL_FIELDS

    p.add_argument("model", nargs="?", help="registered model name")
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.add_argument(
        "--num-classes", type=int, default=1000, help="classifier outputs (default 1000)"
    )
    p.add_argument("--image-size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, MODEL_FIELDS)


@command(
    "info", _info_args, "example:\n  squeezelab info squeezenet1_0 --batch-norm --image-size 64"
)
def info(args: argparse.Namespace) -> int:
    """Parameters, size and multiply-accumulates of a model variant."""
    from ..models import get_model, list_models, measure
    from ..training.config import MODEL_FIELDS, coerce

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0 if args.list else EXIT_USAGE
    options = {
        n: coerce(n, getattr(args, n), "command line")
        for n in MODEL_FIELDS
        if getattr(args, n) is not None
    }
    model = get_model(args.model, num_classes=args.num_classes, **options)
    stats = measure(model, args.image_size)
    if args.json:
        print_json(stats.to_dict())
    else:
        print(f"model        {args.model} {options or ''}".rstrip())
        print(f"classes      {args.num_classes}")
        print(f"params       {stats.params:,}")
        print(f"size (fp32)  {stats.size_mb:.3f} MB")
        print(f"MACs         {stats.macs:,} at {args.image_size}x{args.image_size}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    add_config_flags(p)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        help="log per-epoch metrics to OUT/tb for `tensorboard --logdir` (default: when the "
        "[tensorboard] extra is installed)",
    )
    p.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep the resume checkpoint (weights + optimizer state) after the run finishes",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every field the run would use and where it comes from (flag, recipe or "
        "default); train nothing, write nothing",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


TRAIN_EXAMPLE = """examples:
  squeezelab train --model squeezenet1_0 --batch-norm --data synthetic --epochs 3 --out runs/sq-bn
  squeezelab train --out runs/sq-bn --resume   # continue an interrupted run
  squeezelab train --recipe modern --batch-norm --out runs/m --dry-run   # what would it run?"""


def _show_fields(args: argparse.Namespace, cfg: Any) -> int:
    """Print each field of ``cfg`` and where it came from: a flag, the recipe or the default."""
    from ..models import variant_of
    from ..training.config import field_names
    from ..training.recipes import recipe_fields

    given = {n for n in field_names() if getattr(args, n, None) is not None}
    variant = variant_of(cfg.model, cfg.to_dict())
    by_recipe = set(recipe_fields(cfg.recipe, cfg.model, variant)) - given
    values = cfg.to_dict()
    source = {
        n: "flag" if n in given else "recipe" if n in by_recipe else "default" for n in values
    }
    if args.json:
        print_json({"config": values, "from": source})
        return 0
    print(f"{cfg.model}, recipe {cfg.recipe} (dry run: nothing trained or written):")
    name_w = max(map(len, values))
    value_w = max(len(str(v)) for v in values.values())
    for n, v in values.items():
        print(f"  {n:<{name_w}}  {v!s:<{value_w}}  {source[n]}")
    return 0


@command("train", _train_args, TRAIN_EXAMPLE)
def train(args: argparse.Namespace) -> int:
    """Train one run into a directory (resumable with --resume)."""
    from pathlib import Path

    from ..training import RunDirError, train
    from ..training.layout import CHECKPOINT, RESULT

    cfg = config_from_args(args)
    if args.dry_run:
        if args.resume:
            raise ConfigError(
                "--dry-run shows a new run's fields; a run continued with --resume keeps its "
                f"own, in {Path(args.out) / 'config.json'}"
            )
        return _show_fields(args, cfg)
    out = Path(args.out)
    if args.resume and not ((out / CHECKPOINT).is_file() or (out / RESULT).is_file()):
        raise RunDirError(
            f"--resume: {out} holds no run to continue (no checkpoint or result); "
            "leave --resume out to start a new run there"
        )
    result = train(
        cfg,
        args.out,
        data_dir=args.data_dir,
        resume=args.resume,
        device=args.device,
        keep_checkpoint=args.keep_checkpoint,
        tensorboard=args.tensorboard,
    ).result
    if args.json:
        keys = ("val_acc", "val_loss", "train_loss", "test_acc", "epochs", "diverged", "checkpoint")
        print_json({k: result.to_dict()[k] for k in keys})
    else:
        status = "diverged" if result.diverged else "done"
        print(
            f"{status}: val_acc {result.val_acc:.2f}% test_acc {result.test_acc:.2f}% "
            f"after {result.epochs} epochs ({result.train_s:.0f}s); {result.checkpoint or args.out}"
        )
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dir",
        help="a run directory written by `squeezelab train`, or a .sqzc from `squeezelab compress`",
    )
    p.add_argument("--data", help="data source (default: the run's own)")
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--split", default="test", choices=("train", "val", "test", "all"), help="default: test"
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("evaluate", _evaluate_args)
def evaluate(args: argparse.Namespace) -> int:
    """Evaluate a trained run's weights, or a compressed model (.sqzc), on a split."""
    from ..training.evaluation import evaluate_run

    if str(args.run_dir).endswith(".sqzc"):
        res = _evaluate_compressed(args)
    else:
        from ..storage import local_run

        with local_run(args.run_dir) as run:
            res = evaluate_run(run, args.data, args.split, args.data_dir, args.device)
    if args.json:
        print_json(res)
    else:
        print(
            f"{args.split}: accuracy {res['accuracy']:.2f}% loss {res['loss']:.4f} (n={res['n']})"
        )
    return 0


def _evaluate_compressed(args: argparse.Namespace) -> dict[str, Any]:
    """A .sqzc evaluated as its run is: the run's data split as it was (its header keeps the
    run's config), or ``--data`` split with the default fractions when it came from a loose
    weights file."""
    from ..compression.pipeline import load_compressed_run
    from ..training.config import RunConfig
    from ..training.evaluation import evaluate_model

    src = load_compressed_run(args.run_dir)
    if src.config is not None:
        cfg = src.config
    elif args.data:
        cfg = RunConfig(model=src.name, image_size=src.image_size)
    else:
        raise ValueError(
            f"{args.run_dir} was compressed from a weights file, not a run: name the data to "
            "evaluate on with --data"
        )
    return evaluate_model(
        src.model, cfg, src.num_classes, src.classes, args.data, args.split, args.data_dir,
        args.device,
    )  # fmt: skip
