"""The ``squeezelab`` command: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .training.config import MODEL_FIELDS, RunConfig, coerce, field_names

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
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=f"default: {default}")


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
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_flags(p, MODEL_FIELDS)


@command("info", _info_args)
def _info(args: argparse.Namespace) -> int:
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
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@command("train", _train_args)
def _train(args: argparse.Namespace) -> int:
    from .training import train

    cfg = config_from_args(args)
    result = train(cfg, args.out, data_dir=args.data_dir, resume=args.resume, device=args.device)
    if args.json:
        keys = ("val_acc", "val_loss", "train_loss", "test_acc", "epochs", "diverged", "checkpoint")
        _print_json({k: result.to_dict()[k] for k in keys})
    else:
        status = "diverged" if result.diverged else "done"
        print(
            f"{status}: val_acc {result.val_acc:.2f}% test_acc {result.test_acc:.2f}% "
            f"after {result.epochs} epochs ({result.train_s:.0f}s); {result.checkpoint}"
        )
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `squeezelab train`")
    p.add_argument("--data", help="data source (default: the run's own)")
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    p.add_argument("--device")
    p.add_argument("--json", action="store_true")


@command("evaluate", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    from . import cli_more  # noqa: F401  (registers the study, report and compression commands)

    parser = argparse.ArgumentParser(prog="squeezelab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"squeezelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (setup, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip() or None)
        setup(p)
        p.set_defaults(handler=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    from .data import DataError
    from .training import CheckpointError, ConfigError, RunDirError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, DataError, CheckpointError, RunDirError, ValueError, OSError) as err:
        print(f"squeezelab {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
