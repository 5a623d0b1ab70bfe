"""What every command module shares: the command registry, config flags, JSON output.

Nothing heavy is imported here at module level: ``squeezelab --help`` must answer at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_DB = "results/squeezelab.db"
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
Setup = Callable[[argparse.ArgumentParser], None]
COMMANDS: dict[str, tuple[Setup, Handler, str | None]] = {}


def command(name: str, setup: Setup, example: str | None = None) -> Callable[[Handler], Handler]:
    """Register a sub-command's argument setup, handler and usage example."""

    def wrap(fn: Handler) -> Handler:
        COMMANDS[name] = (setup, fn, example)
        return fn

    return wrap


def print_json(value: Any) -> None:
    """Print one JSON object on one line."""
    print(json.dumps(value, indent=None, allow_nan=False, default=str))


def add_config_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add one ``--field-name`` flag per run-config field, with the field's own help text,
    choices and default (declared once, in the run config or the model's options)."""
    from ..training.config import field_info, field_names

    for name in only or field_names():
        info = field_info(name)
        flag = "--" + name.replace("_", "-")
        if info.kind is bool:
            on = "on" if info.default else "off"
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                help=f"{info.spec.help} (default: {on})",
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                choices=info.spec.choices,
                metavar=None if info.spec.choices else name.upper(),
                help=f"{info.spec.help} (default: {info.default})",
            )


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """Build a run config from the flags the user gave (others keep their defaults)."""
    from ..training.config import field_names, from_dict

    values = dict(base or {})
    for name in field_names():
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    return from_dict(values, "command line")


def add_store_flag(parser: argparse.ArgumentParser, help: str = "results store") -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"{help} (default: {DEFAULT_DB})")


def require_store(db: str) -> None:
    """Refuse to read a store that does not exist (reading must never create one)."""
    from ..results import StoreError

    if Path(db).is_dir():
        raise StoreError(f"{db} is a directory, not a squeezelab store file (pass --db FILE)")
    if not Path(db).is_file():
        raise StoreError(
            f"no store at {db}: run a study first (squeezelab study run ... --db {db}), "
            "or pass --db PATH"
        )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default in its help (unless it names one
    already, or has none worth saying)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            text
            and "default" not in text.lower()
            and default not in (None, False, argparse.SUPPRESS, [], ())
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


class StrictParser(argparse.ArgumentParser):
    """No abbreviated options (``--epoch`` is not ``--epochs``), every sub-command described
    and its defaults shown, and a mistyped option or value answered with the closest one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", StrictParser)
        action = super().add_subparsers(**kwargs)
        add = action.add_parser

        def add_parser(name: str, **options: Any) -> argparse.ArgumentParser:
            options.setdefault("description", options.get("help"))  # `X --help` says what X is
            return add(name, **options)

        action.add_parser = add_parser  # type: ignore[method-assign]
        return action

    def error(self, message: str) -> NoReturn:
        hint = suggestion(message, self)
        super().error(f"{message}{hint}")


def suggestion(message: str, parser: argparse.ArgumentParser) -> str:
    """'; did you mean --epochs?' for an unknown option or value close to a known one."""
    import difflib
    import re

    known: list[str] = []
    wrong: list[str] = []
    if "unrecognized arguments:" in message:
        wrong = message.split("unrecognized arguments:", 1)[1].split()
        known = [o for a in parser._actions for o in a.option_strings]
    elif "invalid choice:" in message:
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            wrong = [found.group(1)]
            known = [c.strip(" '") for c in found.group(2).split(",")]
    close = [m for w in wrong for m in difflib.get_close_matches(w.split("=")[0], known, n=1)]
    return f"; did you mean {' / '.join(close)}?" if close else ""
