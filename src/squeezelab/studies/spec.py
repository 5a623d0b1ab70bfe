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
    [best_of]                  # optional: take the points from a finished study's best runs
    study = "grid"
    [pretrain]                 # optional: a source model for init = "imagenet" when offline

Validation names the file, the field and the allowed values.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..training.config import ConfigError, RunConfig, coerce, field_names, from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("description", "seeds", "base", "axes", "points", "best_of", "pretrain")


@dataclass(frozen=True)
class BestOf:
    """Take points from the best finished runs of another study, one per group."""

    study: str
    metric: str = "test_acc"
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
    best_of: BestOf | None = None
    pretrain: dict[str, Any] | None = None
    source: str = ""

    def with_overrides(self, overrides: dict[str, Any]) -> StudySpec:
        """Apply ``--set`` overrides to every run: they replace base, axes and points alike."""
        if not overrides:
            return self
        axes = {k: v for k, v in self.axes.items() if k not in overrides}
        points = tuple({k: v for k, v in p.items() if k not in overrides} for p in self.points)
        spec = StudySpec(
            self.name,
            self.description,
            tuple(overrides.get("seeds", self.seeds)),
            {**self.base, **{k: v for k, v in overrides.items() if k != "seeds"}},
            axes,
            points,
            self.best_of,
            self.pretrain,
            self.source,
        )
        spec.expand()  # validate every resulting run now, not halfway through the study
        return spec

    def expand(self, points: list[dict[str, Any]] | None = None) -> list[RunConfig]:
        """Expand into one validated run config per (point, axes cell, seed)."""
        points = points if points is not None else list(self.points) or [{}]
        names = list(self.axes)
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


def builtin_studies() -> list[str]:
    """Return the names of the studies shipped with the package."""
    folder = resources.files("squeezelab.studies") / "builtin"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_study(name_or_path: str) -> StudySpec:
    """Load a built-in study by name, or a study file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"study file {path} does not exist")
        return parse_study(path.read_text(), path.stem, str(path))
    if name_or_path not in builtin_studies():
        raise ConfigError(
            f"unknown study {name_or_path!r}: not a file, and the built-in studies are "
            f"{', '.join(builtin_studies())}"
        )
    text = (resources.files("squeezelab.studies") / "builtin" / f"{name_or_path}.toml").read_text()
    return parse_study(text, name_or_path, f"built-in {name_or_path}.toml")


def parse_study(text: str, name: str, source: str = "<string>") -> StudySpec:
    """Parse and validate a study from TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}"
        )
    where = f"{source}"
    base = {k: coerce(k, v, f"{where} [base]") for k, v in raw.get("base", {}).items()}
    axes = {}
    for k, values in raw.get("axes", {}).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where} [axes]: {k!r} must be a non-empty list of values")
        axes[k] = [parse_axis_value(k, v, where) for v in values]
    points = tuple(
        {k: coerce(k, v, f"{where} [[points]]") for k, v in p.items()}
        for p in raw.get("points", [])
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
        best_of=_best_of(raw.get("best_of"), where),
        pretrain=_pretrain(raw.get("pretrain"), where),
        source=source,
    )
    spec.expand()
    return spec


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``FIELD=VALUE`` strings (``--set``) into typed values; ``seeds=0,1,2`` too."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        if name == "seeds":
            try:
                out["seeds"] = [int(s) for s in value.split(",")]
            except ValueError:
                raise ConfigError(f"--set seeds={value}: expected integers like 0,1,2") from None
            continue
        out[name] = coerce(name, value, "--set")
    return out


def parse_axis_value(name: str, value: Any, where: str) -> Any:
    """Coerce one axis value; ``init = "none"`` means training from scratch."""
    if name == "init" and value == "none":
        return None
    return coerce(name, value, f"{where} [axes]")


def _best_of(raw: dict[str, Any] | None, where: str) -> BestOf | None:
    if raw is None:
        return None
    allowed = {"study", "metric", "group_by", "fields"}
    if set(raw) - allowed or "study" not in raw:
        raise ConfigError(f"{where} [best_of]: needs 'study'; allowed keys {sorted(allowed)}")
    if raw.get("metric", "test_acc") not in ("test_acc", "val_acc"):
        raise ConfigError(f"{where} [best_of]: metric must be test_acc or val_acc")
    for k in (*raw.get("group_by", []), *raw.get("fields", [])):
        if k not in field_names():
            raise ConfigError(f"{where} [best_of]: unknown run field {k!r}")
    return BestOf(
        raw["study"],
        raw.get("metric", "test_acc"),
        tuple(raw.get("group_by", ("model",))),
        tuple(raw.get("fields", BestOf.fields)),
    )


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
