"""The ``squeezelab`` command: parse, call the library, print.

One module per domain registers its commands: :mod:`.runs` (info, train, evaluate),
:mod:`.studies` (study, reproduce), :mod:`.results` (results, report) and
:mod:`.compression` (compress, export, bench-infer). Only the chosen command's arguments
are set up, and heavy libraries (torch, scipy) are imported inside the commands, so
``squeezelab --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from .. import __version__
from . import compression, results, runs, studies  # noqa: F401  (register their commands)
from .common import COMMANDS, EXIT_USAGE, StrictParser

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

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool cut off by `head`
# The order --help lists the commands in: a run, a study, its results, compression.
ORDER = ("info", "train", "evaluate", "study", "watch", "reproduce", "results", "report",
         "compress", "export", "bench-infer", "doctor")  # fmt: skip


def _chosen(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in COMMANDS), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the command named in ``argv`` gets its arguments set up."""
    parser = StrictParser(prog="squeezelab", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"squeezelab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers: dict[str, argparse.ArgumentParser] = {}
    chosen = _chosen(argv) if argv is not None else None
    for name in sorted(COMMANDS, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        setup, fn, example = COMMANDS[name]
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else None
        p = sub.add_parser(name, help=summary, epilog=example)  # described by its help
        if argv is None or name == chosen:
            setup(p)
        p.set_defaults(handler=fn)
        parsers[name] = p
    parser.set_defaults(_parsers=parsers)
    return parser


def _deepest(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser of the innermost sub-command given (``study run``), whose usage fits."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest or "", None)
            if chosen in action.choices:
                return _deepest(args, action.choices[chosen])
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object,
                      **__: object) -> None:  # fmt: skip
    print(f"squeezelab: warning: {message}", file=sys.stderr)


def _missing_module(err: BaseException | None) -> str | None:
    """The optional package an error says is missing: a ModuleNotFoundError anywhere in its
    chain, or a library's own words for it (torch.onnx: "Module onnx is not installed!")."""
    import re

    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ModuleNotFoundError):
            name = (err.name or "").split(".")[0]
            if name in EXTRAS:
                return name
        found = re.search(r"[Mm]odule '?(\w+)'? is not installed", str(err))
        if found and found.group(1) in EXTRAS:
            return found.group(1)
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _user_error(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug."""
    from ..errors import SqueezelabError

    missing = _missing_module(err)
    if missing is not None:
        return (
            f"this needs the optional package {missing!r}: pip install "
            f"'squeezelab[{EXTRAS[missing]}]'"
        )
    # ValueError and OSError: bad values and unreadable paths reported by the libraries used.
    return str(err) if isinstance(err, (SqueezelabError, ValueError, OSError)) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("SQUEEZELAB_DEBUG"))
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    if debug:  # the library's own quieting (Ray's logs) reads it too
        os.environ["SQUEEZELAB_DEBUG"] = "1"
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # answered by the command's own parser: its usage, and the closest option
        _deepest(args, args._parsers.get(args.command, parser)).error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    if not debug:  # other libraries' warnings are not the user's business; squeezelab's are
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"squeezelab(\.|$)")
        warnings.showwarning = _one_line_warning
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"interrupted: {RESUME.get(args.command, RESUME[None])}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


RESUME = {
    "train": "re-run the same command with --resume to continue from the last epoch",
    None: "re-run the same command to continue: finished runs are kept, and an interrupted "
    "run resumes from its last finished epoch",
}


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``timeout``, a scheduler) stops like Ctrl-C: runs in flight are
    stopped, their last epoch's checkpoint kept, and the store says what was interrupted."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
