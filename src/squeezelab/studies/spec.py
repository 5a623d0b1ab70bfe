"""Study files: a base run config plus axes to vary, loaded, validated and expanded into runs.

A study is a TOML file (see ``builtin/*.toml``)::

    description = "..."
    seeds = [0, 1]             # every grid point is repeated with each seed
    [base]                     # only what differs from the run defaults
    epochs = 10
    [axes]                     # a full grid over any run field
    lr = [0.05, 0.01]
    [[points]]                 # optional: explicit points, crossed with the axes
    model = "alexnet"
    [[variants]]               # optional: named alternatives, crossed with points and axes
    augmentation = "random-resized-crop"
    [best_of]                  # optional: take the points from a finished study's best runs
    study = "grid"
    [pretrain]                 # optional: a source model for init = "imagenet" when offline
    [[claims]]                 # optional: the hypotheses, declared before any run
    id = "bn"                  # (see squeezelab.analysis.claims for every key)
    statement = "Batch norm improves accuracy"
    test = "paired"
    field = "batch_norm"
    treatment = true
    control = false
    [report]                   # optional: the report's table rows / columns, figures
    rows = ["lr", "momentum"]
    columns = "batch_norm"

Validation names the file, the field and the allowed values. Winners are chosen on
validation accuracy only: ``[best_of] metric`` accepts nothing else.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..analysis.published import RUN_TABLES
from ..analysis.sequential import SequentialDesign
from ..declared import ClaimError, ClaimSpec, ReportSpec, parse_claim, parse_report
from ..fields import refuse_unknown
from ..training.config import ConfigError, RunConfig, coerce, field_names, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PLANNING_NOTE = 5_000  # runs above which planning says how many it plans
MAX_RUNS = 100_000  # a study larger than this is almost surely a typo in its axes
# A study file's top-level keys, each with what it holds (the documentation's reference
# is generated from these, and parsing accepts exactly these keys).
SECTION_HELP = {
    "description": "One line: what the study asks (shown by `study list` and in the report).",
    "seeds": "The seeds every condition runs with (default [0]); under [sequential], the "
    "first look's.",
    "base": "Run fields shared by every run: only what differs from the defaults.",
    "axes": "Run field = [values]: a full grid, crossed with the points, variants and seeds.",
    "points": "[[points]]: explicit tables of run fields, each crossed with the axes.",
    "variants": "[[variants]]: named alternatives (tables of run fields), crossed with the "
    "points and the axes (e.g. readings x published cells).",
    "best_of": "Take the points from another study's best finished runs, chosen on "
    "validation accuracy (keys below).",
    "pretrain": 'Run fields of the source model trained for init = "imagenet" when '
    "torchvision's weights cannot be had.",
    "claims": "[[claims]]: the hypotheses, declared before any run (keys below).",
    "report": "How the report shows the study: its table, figures and best-point tables "
    "(keys below).",
    "sequential": "Run until the claims are decided: seeds added look by look where a claim "
    "is open (keys below).",
    "stop_stalled_after": "End runs still at chance after this many epochs, recorded as "
    "stalled (never in the paper preset).",
}
SECTIONS = tuple(SECTION_HELP)


BEST_OF_HELP = {
    "study": "Required: the study whose finished runs give the points.",
    "metric": "What chooses the best run: val_acc only (never test data).",
    "group_by": 'One point per value of these run fields (default ["model"]).',
    "fields": "The run fields a point takes from its best run (default batch_size, lr, "
    "momentum, weight_decay).",
}


@dataclass(frozen=True)
class BestOf:
    """Take points from the best finished runs of another study, one per group."""

    study: str
    metric: str = "val_acc"
    group_by: tuple[str, ...] = ("model",)
    fields: tuple[str, ...] = ("batch_size", "lr", "momentum", "weight_decay")


@dataclass(frozen=True)
class StudySpec:
    """A loaded, validated study."""

    name: str
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ()
    variants: tuple[dict[str, Any], ...] = ()  # crossed with the points (e.g. readings x cells)
    best_of: BestOf | None = None
    pretrain: dict[str, Any] | None = None
    source: str = ""
    claims: tuple[ClaimSpec, ...] = ()
    report: ReportSpec = field(default_factory=ReportSpec)
    protocol: dict[str, Any] = field(default_factory=dict)
    sequential: SequentialDesign | None = None  # run until the claims are decided
    stop_stalled_after: int | None = None  # end runs at chance after this many epochs
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def seeds_up_to(self, count: int) -> tuple[int, ...]:
        """The first ``count`` seeds: the declared ones, then the next integers after them."""
        seeds = list(self.seeds[:count])
        while len(seeds) < count:
            seeds.append(max(seeds) + 1)
        return tuple(seeds)

    def with_overrides(self, overrides: dict[str, Any], where: str = "") -> StudySpec:
        """This study under an overlay (a preset's section, ``--data``, ``--set``): see
        :func:`overlay` for the one rule. The result is parsed and validated again."""
        if not overrides:
            return self
        source = f"{self.source} + {where}" if where else self.source
        return parse_study(overlay(self.raw, overrides), self.name, source, self.protocol)

    def expand(self, points: list[dict[str, Any]] | None = None) -> list[RunConfig]:
        """Expand into one validated run config per (point, axes cell, seed)."""
        if points is None:  # the study's own points: expanded once, then remembered
            if "_runs" not in self.__dict__:
                object.__setattr__(self, "_runs", self._expand(list(self.points) or [{}]))
            return list(self.__dict__["_runs"])
        return self._expand(points)

    def _expand(self, points: list[dict[str, Any]]) -> list[RunConfig]:
        names = list(self.axes)
        variants = list(self.variants) or [{}]
        points = [{**p, **v} for p in points for v in variants]
        size = len(points) * len(self.seeds) * math.prod(len(self.axes[n]) for n in names)
        if size > PLANNING_NOTE:  # a large plan takes a while: say so before it starts
            print(
                f"study {self.name!r}: planning {size:,} runs (each validated and keyed; about "
                f"{size / 3000:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        if size > MAX_RUNS:
            raise ConfigError(
                f"study {self.name!r} ({self.source}) expands to {size:,} runs "
                f"({' x '.join(str(len(self.axes[n])) for n in names)} axis values, "
                f"{len(points)} point(s), {len(self.seeds)} seed(s)); the cap is {MAX_RUNS:,}"
            )
        runs, seen = [], set()
        for point in points:
            for cell in itertools.product(*(self.axes[n] for n in names)):
                for seed in self.seeds:
                    values = {**self.base, **point, **dict(zip(names, cell)), "seed": seed}
                    cfg = from_dict(values, f"study {self.name!r} ({self.source})")
                    if cfg.key() not in seen:  # identical cells collapse into one run
                        seen.add(cfg.key())
                        runs.append(cfg)
        return runs


RESEARCH = "research"  # the recipe search's stages: runnable, apart from the user's studies


def builtin_studies(research: bool = False) -> list[str]:
    """The names of the studies shipped with the package: the study's objectives, the paper's
    studies and ``modern-compare``; with ``research``, the recipe search's stages instead,
    named ``research/<stage>``."""
    folder = resources.files("squeezelab.studies") / "builtin"
    prefix = ""
    if research:
        folder, prefix = folder / RESEARCH, f"{RESEARCH}/"
    return sorted(
        prefix + p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _builtin_text(name: str) -> str | None:
    """A built-in study file's text: ``grid``, ``research/modern-search-4``, or a research
    stage's bare name (``modern-search-4``, as stores and scripts from before the move name
    it); None when there is no such study."""
    folder = resources.files("squeezelab.studies") / "builtin"
    stem = name.removeprefix(f"{RESEARCH}/")
    for path in (folder / f"{name}.toml", folder / RESEARCH / f"{stem}.toml"):
        if "/" not in stem and path.is_file():
            return path.read_text()
    return None


def load_study(
    name_or_path: str,
    overlays: Sequence[tuple[str, dict[str, Any]]] = (),
    protocol: dict[str, Any] | None = None,
) -> StudySpec:
    """Load a built-in study by name, or a study file by path, under ``overlays``
    (``(where, values)`` pairs, lowest first; see :func:`overlay`), parsed once. A study's
    name (in the store and the report) is its file's stem: ``research/modern-search-4`` is
    ``modern-search-4``."""
    path = Path(name_or_path)
    builtin = _builtin_text(name_or_path) if not path.exists() else None
    if builtin is not None:
        name = name_or_path.removeprefix(f"{RESEARCH}/")
        text, source = builtin, f"built-in {name_or_path}.toml"
    elif path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"study file {path} does not exist")
        text, name, source = path.read_text(), path.stem, str(path)
    else:
        raise ConfigError(
            f"unknown study {name_or_path!r}: not a file, and the built-in studies are "
            f"{', '.join(builtin_studies())} (the recipe search's stages: "
            f"{', '.join(builtin_studies(research=True))})"
        )
    raw = _toml(text, source)
    for where, values in overlays:
        if values:
            raw, source = overlay(raw, values), f"{source} + {where}"
    return parse_study(raw, name, source, protocol)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None


# An overlay replaces these sections whole; [base] alone is merged field by field.
REPLACED = tuple(s for s in SECTIONS if s != "base")
LISTS = ("points", "variants")  # arrays of tables of run fields


def overlay(raw: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A study file's contents under one overlay, by the one precedence rule.

    Layers, lowest first: the study file < a preset's ``[all]`` < its ``[STUDY]`` section <
    ``--data`` < ``--set``. In each, a section name (``axes``, ``points``, ``seeds``,
    ``pretrain``, ``description``, ...) replaces the study's (``best_of = false`` removes
    it); then a run field fixes that field for every run: it is set in ``[base]`` and leaves
    ``[axes]``, ``[[points]]`` and ``[[variants]]``.
    """
    out = dict(raw)
    for key in (k for k in over if k in REPLACED):
        if key in ("best_of", "sequential") and over[key] is False:
            out.pop(key, None)
        else:
            out[key] = over[key]
    for key in (k for k in over if k not in REPLACED):
        if key == "base":
            raise ConfigError("an overlay sets run fields directly, not a [base] section")
        out["base"] = {**out.get("base", {}), key: over[key]}
        out["axes"] = {k: v for k, v in out.get("axes", {}).items() if k != key}
        for name in LISTS:
            out[name] = [{k: v for k, v in p.items() if k != key} for p in out.get(name, [])]
    return out


def parse_study(
    text: str | dict[str, Any],
    name: str,
    source: str = "<string>",
    protocol: dict[str, Any] | None = None,
) -> StudySpec:
    """Parse and validate a study from TOML text (or its already-parsed tables)."""
    raw = _toml(text, source) if isinstance(text, str) else text
    refuse_unknown(raw, SECTIONS, source, "section")
    where = f"{source}"
    _expect(raw, where)
    base = {k: coerce(k, v, f"{where} [base]") for k, v in raw.get("base", {}).items()}
    axes = {}
    for k, values in raw.get("axes", {}).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where} [axes]: {k!r} must be a non-empty list of values")
        axes[k] = [parse_axis_value(k, v, where) for v in values]
    points, variants = (
        tuple(
            {k: coerce(k, v, f"{where} [[{name}]]") for k, v in p.items()}
            for p in raw.get(name, [])
        )
        for name in LISTS
    )
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of integers")
    spec = StudySpec(
        name=name,
        description=str(raw.get("description", "")),
        seeds=tuple(seeds),
        base=base,
        axes=axes,
        points=points,
        variants=variants,
        best_of=_best_of(raw.get("best_of"), where),
        pretrain=_pretrain(raw.get("pretrain"), where),
        source=source,
        claims=parse_claims(raw.get("claims", []), where),
        report=_report(raw.get("report"), where),
        protocol=dict(protocol or {}),
        sequential=_sequential(raw.get("sequential"), len(seeds), where),
        stop_stalled_after=_stop_stalled(raw.get("stop_stalled_after"), where),
        raw=raw,
    )
    spec.expand()
    return spec


SHAPES = {
    "description": (str, "a string"),
    "seeds": (list, "a list of integers"),
    "base": (dict, "a table of run fields ([base])"),
    "axes": (dict, "a table of run field = [values] ([axes])"),
    "points": (list, "an array of tables ([[points]])"),
    "variants": (list, "an array of tables ([[variants]])"),
    "best_of": (dict, "a table ([best_of])"),
    "pretrain": (dict, "a table of run fields ([pretrain])"),
    "claims": (list, "an array of tables ([[claims]])"),
    "report": (dict, "a table ([report])"),
    "sequential": (dict, "a table ([sequential])"),
}


def _stop_stalled(value: Any, where: str) -> int | None:
    if value is None or value is False:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: stop_stalled_after must be a positive number of epochs")
    return value


SEQUENTIAL_HELP = {
    "max_seeds": "Required: the most seeds per condition (the design's full information).",
    "seeds_per_look": "Seeds added to each open condition at every later look (1).",
    "looks": "The most looks, the first included (default: as many as max_seeds allows).",
    "spending": "The alpha-spending function: obrien-fleming (default) or pocock.",
    "budget": "The most run-epochs the study may use in all (default: no cap).",
    "budget_hours": "The most wall-clock hours one `study run` call may use (default: no cap).",
}
SEQUENTIAL_KEYS = tuple(SEQUENTIAL_HELP)


def _sequential(raw: dict[str, Any] | None, first: int, where: str) -> SequentialDesign | None:
    """``[sequential]``: the declared seeds are the first look; ``max_seeds`` (required) the
    most per condition; ``seeds_per_look`` (1), ``looks`` (no cap), ``spending``
    (obrien-fleming | pocock), ``budget`` (run-epochs) and ``budget_hours`` (wall clock)."""
    if raw is None:
        return None
    where = f"{where} [sequential]"
    refuse_unknown(raw, SEQUENTIAL_KEYS, where, "key")
    ints = {k: raw[k] for k in ("max_seeds", "seeds_per_look", "looks") if k in raw}
    for k, v in ints.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}: {k} must be a positive integer, got {v!r}")
    if "max_seeds" not in ints:
        raise ConfigError(f"{where}: needs max_seeds (the most seeds per condition)")
    for cap in ("budget", "budget_hours"):
        v = raw.get(cap)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v <= 0):
            raise ConfigError(f"{where}: {cap} must be a positive number, got {v!r}")
    try:
        return SequentialDesign(
            first=first,
            max_seeds=ints["max_seeds"],
            seeds_per_look=ints.get("seeds_per_look", 1),
            looks=ints.get("looks"),
            spending=str(raw.get("spending", "obrien-fleming")),
            budget=raw.get("budget"),
            budget_hours=raw.get("budget_hours"),
        )
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _expect(raw: dict[str, Any], where: str) -> None:
    """Check each section's type before reading it (``axes = 5`` is an error, not a crash)."""
    for key, (kind, words) in SHAPES.items():
        if key in raw and not isinstance(raw[key], kind):
            raise ConfigError(f"{where}: {key} must be {words}, got {raw[key]!r:.60}")
    for name in LISTS:
        if not all(isinstance(p, dict) for p in raw.get(name, [])):
            raise ConfigError(f"{where}: each [[{name}]] entry must be a table of run fields")
    best = raw.get("best_of", {})
    for key in ("group_by", "fields"):
        if key in best and not (
            isinstance(best[key], list) and all(isinstance(k, str) for k in best[key])
        ):
            raise ConfigError(f"{where} [best_of]: {key!r} must be a list of run field names")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``FIELD=VALUE`` strings (``--set``) into typed values; ``seeds=0,1,2`` too."""
    out: dict[str, Any] = {}
    for item in items:
        name, value = _assignment(item, "--set", "FIELD=VALUE")
        if name == "seeds":
            try:
                out["seeds"] = [int(s) for s in value.split(",")]
            except ValueError:
                raise ConfigError(f"--set seeds={value}: expected integers like 0,1,2") from None
            continue
        out[name] = coerce(name, value, "--set")
    return out


Filters = dict[str, tuple[Any, ...]]  # --only: run field -> the values it may take


def parse_filters(items: list[str]) -> Filters:
    """Parse ``FIELD=VALUE[,VALUE...]`` strings (``--only``) into typed values per run field."""
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        name, value = _assignment(item, "--only", "FIELD=VALUE[,VALUE...]")
        if not value.strip():
            raise ConfigError(f"--only {item!r}: expected FIELD=VALUE[,VALUE...]")
        out[name] = tuple(coerce(name, v, "--only") for v in value.split(","))
    return out


def _assignment(item: str, flag: str, form: str) -> tuple[str, str]:
    """Split one ``FIELD=VALUE`` of a command-line flag; ``--set batch-size=...`` works too."""
    name, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"{flag} {item!r}: expected {form}")
    return name.strip().replace("-", "_"), value


def selected(config: RunConfig, filters: Filters) -> bool:
    """Whether the run's every filtered field takes one of its values."""
    return all(getattr(config, k) in vs for k, vs in filters.items())


def select_runs(runs: list[RunConfig], filters: Filters, study: str) -> list[RunConfig]:
    """The runs whose every filtered field takes one of its values; none matching is an error."""
    chosen = [c for c in runs if selected(c, filters)]
    if runs and not chosen:
        have = {k: sorted({str(getattr(c, k)) for c in runs}) for k in filters}
        raise ConfigError(
            f"--only matches no run of {study!r}; its runs have "
            + "; ".join(f"{k} in {', '.join(v)}" for k, v in have.items())
        )
    return chosen


def parse_axis_value(name: str, value: Any, where: str) -> Any:
    """Coerce one axis value; ``init = "none"`` means training from scratch."""
    if name == "init" and value == "none":
        return None
    return coerce(name, value, f"{where} [axes]")


def _best_of(raw: dict[str, Any] | None, where: str) -> BestOf | None:
    if raw is None:
        return None
    refuse_unknown(raw, BEST_OF_HELP, f"{where} [best_of]", "key")
    if "study" not in raw:
        raise ConfigError(f"{where} [best_of]: needs 'study' (the study whose best runs it takes)")
    if raw.get("metric", "val_acc") != "val_acc":
        raise ConfigError(
            f"{where} [best_of]: metric must be val_acc: winners are chosen on validation "
            f"data, never on test data (got {raw.get('metric')!r})"
        )
    names = (*raw.get("group_by", []), *raw.get("fields", []))
    refuse_unknown(names, field_names(), f"{where} [best_of]", "run field")
    return BestOf(
        raw["study"],
        "val_acc",
        tuple(raw.get("group_by", ("model",))),
        tuple(raw.get("fields", BestOf.fields)),
    )


def parse_claims(raw: Any, where: str) -> tuple[ClaimSpec, ...]:
    """Validate a study file's ``[[claims]]`` (ids unique within the file)."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: [[claims]] must be an array of tables")
    try:
        claims = tuple(
            parse_claim(c, where, lambda k, v: coerce(k, v, where), field_names(), RUN_TABLES)
            for c in raw
        )
    except ClaimError as err:
        raise ConfigError(str(err)) from None
    ids = [c.id for c in claims]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"{where}: claim id(s) {', '.join(dupes)} declared twice")
    return claims


def _report(raw: Any, where: str) -> ReportSpec:
    try:
        return parse_report(raw, where, field_names(), RUN_TABLES)
    except ClaimError as err:
        raise ConfigError(str(err)) from None


def _pretrain(raw: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {k: coerce(k, v, f"{where} [pretrain]") for k, v in raw.items()}


__all__ = [
    "BestOf",
    "StudySpec",
    "builtin_studies",
    "load_study",
    "parse_overrides",
    "parse_study",
]
