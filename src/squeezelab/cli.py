"""The ``squeezelab`` command: parse, call the library, print.

Only the chosen command's arguments are set up, and heavy libraries (torch, scipy) are
imported inside the commands, so ``squeezelab --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .training.config import (
    BYPASSES,
    MODEL_FIELDS,
    PRECISIONS,
    SCHEDULERS,
    RunConfig,
    coerce,
    field_names,
)

DESCRIPTION = """\
squeezelab: a laboratory for compact convolutional networks.

Train SqueezeNet 1.0 / 1.1 (with the study's and the paper's ablations) and AlexNet, run
declarative studies into a SQLite store, test the study's claims, write the report, and
compress a model below 0.5 MB. Start with:

  squeezelab reproduce --out reproduction          # the study's five objectives, quick preset
  squeezelab report --published                    # the study's own statistics, recomputed
  squeezelab train --model squeezenet1_0 --data synthetic --epochs 1 --out runs/first
"""
EPILOG = "Run `squeezelab COMMAND --help` for a command's options; --debug shows tracebacks."
# Optional extras: the module a command imports -> the extra that installs it.
EXTRAS = {
    "pandas": "export",
    "pyarrow": "export",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "ray": "ray",
    "tensorboard": "tensorboard",
}
CHOICES = {"scheduler": SCHEDULERS, "precision": PRECISIONS, "bypass": BYPASSES}
HELP = {
    "model": "network: squeezenet1_0, squeezenet1_1 or alexnet (`squeezelab info --list`)",
    "data": "cifar10, cifar100, synthetic[:N], or a folder / .tar(.gz) / .zip of class folders",
    "init": "start from: imagenet (torchvision's weights) or a .pth / run directory",
    "batch_norm": "batch norm between each Fire module's squeeze conv and its ReLU",
    "fire_delta": "Fire modules removed (<0) or added (>0) at the end",
    "test_each_epoch": "also evaluate the test split after every epoch (learning curves)",
    "train_subset": "train on the first N images of the seeded training split",
}

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], _Handler]] = {}


def command(name: str, setup: Callable[[argparse.ArgumentParser], None]) -> Callable:
    """Register a sub-command's argument setup and handler."""

    def wrap(fn: _Handler) -> _Handler:
        _COMMANDS[name] = (setup, fn)
        return fn

    return wrap


def add_config_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add one ``--field-name`` flag per run-config field (defaults left to the config)."""
    defaults = RunConfig()
    for name in only or field_names():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        text = HELP.get(name, name.replace("_", " "))
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                help=f"{text} (default: {'on' if default else 'off'})",
            )
        elif name in CHOICES:
            parser.add_argument(
                flag, dest=name, choices=CHOICES[name], help=f"{text} (default: {default})"
            )
        else:
            parser.add_argument(
                flag, dest=name, metavar=name.upper(), help=f"{text} (default: {default})"
            )


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """Build a run config from the flags the user gave (others keep their defaults)."""
    from .training.config import from_dict

    values = dict(base or {})
    for name in field_names():
        value = getattr(args, name, None)
        if value is not None:
            values[name] = coerce(name, value, "command line")
    return from_dict(values, "command line")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None, allow_nan=False, default=str))


# --- info ---------------------------------------------------------------------------------


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="registered model name")
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.add_argument(
        "--num-classes", type=int, default=1000, help="classifier outputs (default 1000)"
    )
    p.add_argument("--image-size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, MODEL_FIELDS)


@command("info", _info_args)
def _info(args: argparse.Namespace) -> int:
    """Parameters, size and multiply-accumulates of a model variant."""
    from .models import get_model, list_models, measure

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0 if args.list else EXIT_USAGE
    options = {n: coerce(n, getattr(args, n)) for n in MODEL_FIELDS if getattr(args, n) is not None}
    model = get_model(args.model, num_classes=args.num_classes, **options)
    stats = measure(model, args.image_size)
    if args.json:
        _print_json(stats.to_dict())
    else:
        print(f"model        {args.model} {options or ''}".rstrip())
        print(f"classes      {args.num_classes}")
        print(f"params       {stats.params:,}")
        print(f"size (fp32)  {stats.size_mb:.3f} MB")
        print(f"MACs         {stats.macs:,} at {args.image_size}x{args.image_size}")
    return 0


# --- train / evaluate ---------------------------------------------------------------------


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
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("train", _train_args)
def _train(args: argparse.Namespace) -> int:
    """Train one run into a directory (resumable with --resume)."""
    from pathlib import Path

    from .training import RunDirError, train
    from .training.layout import CHECKPOINT

    cfg = config_from_args(args)
    out = Path(args.out)
    if args.resume and not ((out / CHECKPOINT).is_file() or (out / "result.json").is_file()):
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
    )
    if args.json:
        keys = ("val_acc", "val_loss", "train_loss", "test_acc", "epochs", "diverged", "checkpoint")
        _print_json({k: result.to_dict()[k] for k in keys})
    else:
        status = "diverged" if result.diverged else "done"
        print(
            f"{status}: val_acc {result.val_acc:.2f}% test_acc {result.test_acc:.2f}% "
            f"after {result.epochs} epochs ({result.train_s:.0f}s); {result.checkpoint or args.out}"
        )
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `squeezelab train`")
    p.add_argument("--data", help="data source (default: the run's own)")
    p.add_argument("--data-dir", help="cache directory for datasets and decoded images")
    p.add_argument(
        "--split", default="test", choices=("train", "val", "test", "all"), help="default: test"
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("evaluate", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
    """Evaluate a trained run's weights on a split."""
    from .training.evaluation import evaluate_run

    res = evaluate_run(args.run_dir, args.data, args.split, args.data_dir, args.device)
    if args.json:
        _print_json(res)
    else:
        print(
            f"{args.split}: accuracy {res['accuracy']:.2f}% loss {res['loss']:.4f} (n={res['n']})"
        )
    return 0


# --- entry point --------------------------------------------------------------------------


def _chosen(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in _COMMANDS), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the command named in ``argv`` gets its arguments set up."""
    from . import cli_more  # noqa: F401  (registers the study, report and compression commands)

    parser = argparse.ArgumentParser(
        prog="squeezelab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"squeezelab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv) if argv is not None else None
    for name, (setup, fn) in _COMMANDS.items():
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else None
        p = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if argv is None or name == chosen:
            setup(p)
        p.set_defaults(handler=fn)
    return parser


EXAMPLES = {
    "train": "examples:\n  squeezelab train --model squeezenet1_0 --batch-norm --data synthetic "
    "--epochs 3 --out runs/sq-bn\n  squeezelab train --out runs/sq-bn --resume   "
    "# continue an interrupted run",
    "reproduce": "examples:\n  squeezelab reproduce --out reproduction\n  squeezelab reproduce "
    "--preset paper --data cifar10 --dry-run\n  squeezelab reproduce --preset rigorous --data "
    "cifar10 --out study",
    "report": "examples:\n  squeezelab report --db results/squeezelab.db --out report\n  "
    "squeezelab report --published --json",
    "study": "examples:\n  squeezelab study list\n  squeezelab study run grid --data synthetic "
    "--set epochs=1 --db results/squeezelab.db\n  squeezelab study status --db "
    "results/squeezelab.db",
    "compress": "example:\n  squeezelab compress runs/sq-bn --sparsity 0.67 --bits 6 --out "
    "sq.sqzc --json",
}


def _user_error(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug."""
    from .errors import SqueezelabError

    if isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in EXTRAS:
        extra = EXTRAS[(err.name or "").split(".")[0]]
        return f"this needs the optional package {err.name!r}: pip install 'squeezelab[{extra}]'"
    # ValueError and OSError: bad values and unreadable paths reported by the libraries used.
    return str(err) if isinstance(err, (SqueezelabError, ValueError, OSError)) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("SQUEEZELAB_DEBUG"))
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    args = build_parser(argv).parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug:
            raise
        message = _user_error(err)
        if message is None:
            print(
                f"squeezelab {args.command}: unexpected error: {type(err).__name__}: {err} "
                "(re-run with --debug for the traceback, and please report it)",
                file=sys.stderr,
            )
            return 1
        message = "; ".join(line.strip() for line in message.splitlines() if line.strip())
        print(f"squeezelab {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
