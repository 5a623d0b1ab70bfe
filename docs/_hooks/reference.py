"""MkDocs hook: the reference pages, generated from the code at every build.

Every command and flag (from the command line's own parser), every run field with its default,
range and help (from the declared fields), every study-file key (from the tables parsing
accepts), the store's schema (from the SQL the store runs) and the built-in studies are
written as pages when the site is built, so the reference cannot drift from the code.
``pages()`` returns them as ``{path: markdown}``; ``tests/test_docs.py`` reads it directly.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from squeezelab import declared
from squeezelab.fields import FieldInfo, describe
from squeezelab.models import registry
from squeezelab.results import store
from squeezelab.studies import spec as study_spec
from squeezelab.training import config as run_config

GENERATED = "*Generated from the code when the site is built: it cannot drift from it.*\n"


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages to the site (MkDocs calls this once per build)."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def pages() -> dict[str, str]:
    """Every generated reference page, by its path in the site."""
    return {
        "reference/cli.md": cli_page(),
        "reference/run-fields.md": run_fields_page(),
        "reference/study-files.md": study_files_page(),
        "reference/store.md": store_page(),
        "reference/builtin-studies.md": builtin_studies_page(),
    }


def _cell(text: Any) -> str:
    """A value fit for one table cell: no line breaks, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- the command line -----------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            name = ", ".join(f"`{s}`" for s in action.option_strings)
            if action.nargs != 0:
                name += f" `{formatter._format_args(action, action.dest.upper())}`"
        else:
            name = f"`{formatter._format_args(action, action.dest)}`"
        rows.append((name, formatter._expand_help(action) if action.help else ""))
    return rows


def _command_section(path: str, parser: argparse.ArgumentParser, depth: int) -> list[str]:
    out = [f"{'#' * depth} `{path}`", ""]
    if parser.description:
        out += [parser.description.strip(), ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    rows = _option_rows(parser)
    if rows:
        out += [_table(("argument", "what it does"), rows)]
    if parser.epilog:
        out += ["```bash", *_epilog_lines(parser.epilog), "```", ""]
    for name, child in _subcommands(parser).items():
        out += _command_section(f"{path} {name}", child, depth + 1)
    return out


def _epilog_lines(epilog: str) -> list[str]:
    lines = [line.strip() for line in epilog.strip().splitlines()]
    return [line for line in lines if line and not line.endswith(":")]


def cli_page() -> str:
    """Every command and sub-command: its usage, each argument with its help and default."""
    from squeezelab.cli import build_parser

    parser = build_parser()
    commands = _subcommands(parser)
    out = [
        "# Command line",
        "",
        GENERATED,
        "Every command is `squeezelab COMMAND` (or `python -m squeezelab COMMAND`); "
        "`--debug` before or after it shows tracebacks. Options are never abbreviated.",
        "",
        _table(
            ("command", "what it does"),
            [
                (f"[`{name}`](#squeezelab-{name.replace(' ', '-')})", (p.description or "").strip())
                for name, p in commands.items()
            ],
        ),
        "## Global options",
        "",
        _table(("argument", "what it does"), _option_rows(parser)),
    ]
    for name, child in commands.items():
        out += _command_section(f"squeezelab {name}", child, 2)
    return "\n".join(out)


# --- run fields -----------------------------------------------------------------------------


def _allowed(info: FieldInfo) -> str:
    spec = info.spec
    if spec.choices:
        return ", ".join(f"`{c}`" for c in spec.choices)
    if spec.low is None and spec.high is None:
        return "`true`, `false`" if info.kind is bool else ""
    low = "" if spec.low is None else f"{spec.low:g} {'<' if spec.low_open else '<='} "
    high = "" if spec.high is None else f" {'<' if spec.high_open else '<='} {spec.high:g}"
    return f"{low}value{high}"


def _field_rows(infos: dict[str, FieldInfo]) -> list[tuple[str, ...]]:
    return [
        (f"`{name}`", f"`--{name.replace('_', '-')}`", f"`{info.default}`", _allowed(info),
         info.spec.help)
        for name, info in infos.items()
    ]  # fmt: skip


def run_fields_page() -> str:
    """Every run field: flag, default, allowed values, help; then each model family's options."""
    model_fields = set(run_config.MODEL_FIELDS)
    run = {n: run_config.field_info(n) for n in run_config.field_names() if n not in model_fields}
    header = ("field", "flag", "default", "allowed", "what it sets")
    out = [
        "# Run fields",
        "",
        GENERATED,
        "A run is its fields. Each is a flag of `squeezelab train`, a key of a study file's "
        "`[base]`, `[axes]`, `[[points]]` and `[[variants]]`, a `--set FIELD=VALUE` of "
        "`study run` and `reproduce`, and a key of a recipe. A field joins a run's key only "
        "when set away from its default, so stored runs keep their keys as fields are added.",
        "",
        "## Training, data and evaluation",
        "",
        _table(header, _field_rows(run)),
        "## Model options",
        "",
        "Each model family declares its options in its own module; a run takes the options of "
        "its `model`.",
        "",
    ]
    for family in registry.list_models():
        options = describe(registry.options_class(family))
        out += [f"### `{family}`", "", _table(header, _field_rows(options))]
    return "\n".join(out)


# --- study files ----------------------------------------------------------------------------


def _key_rows(helps: dict[str, str], cls: type | None = None) -> list[tuple[str, ...]]:
    defaults: dict[str, str] = {}
    if cls is not None:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f"`{f.default!r}`"
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f"`{f.default_factory()!r}`"
            else:
                defaults[f.name] = "required"
    return [(f"`{k}`", defaults.get(k, ""), text) for k, text in helps.items()]


def study_files_page() -> str:
    """Every key a study file may hold, section by section, with its default and help."""
    sections = study_spec.SECTION_HELP.items()
    header = ("key", "default", "what it holds")
    return "\n".join([
        "# Study files",
        "",
        GENERATED,
        "A study is a TOML file: `squeezelab study run my-study.toml`. Unknown keys are "
        "refused with the closest known one. Run fields (in `[base]`, `[axes]`, `[[points]]`, "
        "`[[variants]]`, `[pretrain]`) are listed in [Run fields](run-fields.md).",
        "",
        "## Top-level keys and sections",
        "",
        _table(("key", "what it holds"), [(f"`{k}`", t) for k, t in sections]),
        "## `[best_of]`",
        "",
        _table(header, _key_rows(study_spec.BEST_OF_HELP, study_spec.BestOf)),
        "## `[[claims]]`",
        "",
        "How a claim is decided: [Verdicts](../explanations/verdicts.md).",
        "",
        _table(header, _key_rows(declared.CLAIM_KEY_HELP, declared.ClaimSpec)),
        "## `[report]`",
        "",
        _table(header, _key_rows(declared.REPORT_KEY_HELP, declared.ReportSpec)),
        "## `[sequential]`",
        "",
        "How looks are decided: [Sequential studies](../explanations/sequential.md).",
        "",
        _table(header, _key_rows(study_spec.SEQUENTIAL_HELP, _sequential_class())),
    ])  # fmt: skip


def _sequential_class() -> type:
    from squeezelab.analysis.sequential import SequentialDesign

    return SequentialDesign


# --- the store ------------------------------------------------------------------------------


def store_page() -> str:
    """The store's tables as the SQL that creates them, its statuses and its version."""
    schema = ";\n".join(s.strip() for s in store._SCHEMA.split(";") if s.strip()) + ";"
    return "\n".join([
        "# The results store",
        "",
        GENERATED,
        f"A store is one SQLite file (schema version {store.SCHEMA_VERSION}; a newer "
        "squeezelab upgrades an older store in place, an older one refuses a newer store). "
        "Only one process writes it at a time per run (a lease with a heartbeat); readers "
        "open it read-only. Keep it on a local disk: a store on a network file system is "
        "refused. `squeezelab results export` gives it as one tidy table.",
        "",
        "```sql",
        schema,
        "```",
        "",
        f"- A run's `status` is one of {', '.join(f'`{s}`' for s in store.STATUSES)}.",
        f"- Per-epoch metrics (`metrics`): {', '.join(f'`{m}`' for m in store.METRIC_COLUMNS)}.",
        f"- A sequential study's looks (`looks`): "
        f"{', '.join(f'`{c}`' for c in store.LOOK_COLUMNS)}.",
        "- The `recipe` column of `runs` holds a run's provenance (resolved config, recipe "
        "version, versions, device and precision), as JSON.",
        "",
    ])  # fmt: skip


# --- built-in studies -----------------------------------------------------------------------


def builtin_studies_page() -> str:
    """The studies that ship with squeezelab, with their descriptions and sizes."""
    from squeezelab.studies import builtin_studies, load_study

    rows = []
    for name in builtin_studies():
        spec = load_study(name)
        rows.append((f"`{name}`", len(spec.expand()), len(spec.claims), spec.description))
    return "\n".join([
        "# Built-in studies",
        "",
        GENERATED,
        "Run one with `squeezelab study run NAME --data ...`; `--dry-run --json` prints its "
        "plan. Presets (`squeezelab reproduce --preset quick|paper|rigorous`) run the first "
        "five in order with their own settings.",
        "",
        _table(("study", "runs", "claims", "what it asks"), rows),
    ])  # fmt: skip
