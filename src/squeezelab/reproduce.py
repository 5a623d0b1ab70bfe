"""One-command reproduction: the study's five objectives in order, then the report.

``compare`` takes its points from the ``grid`` just run; interrupting and re-running
continues where it stopped (finished runs are skipped, interrupted ones resume).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from .studies.spec import StudySpec, load_study, parse_axis_value, tomllib
from .training.config import ConfigError, coerce

OBJECTIVES = ("grid", "compare", "macro", "batchnorm", "transfer")


def presets() -> list[str]:
    folder = resources.files("squeezelab.studies") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """Read a preset: ``[all]`` overrides plus per-study overrides and axes."""
    if name not in presets():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(presets())}")
    text = (resources.files("squeezelab.studies") / "presets" / f"{name}.toml").read_text()
    return tomllib.loads(text)


def apply_preset(spec: StudySpec, preset: dict[str, Any]) -> StudySpec:
    """Apply a preset's ``[all]`` and ``[STUDY]`` sections to one study."""
    where = f"preset [{spec.name}]"
    section = dict(preset.get(spec.name, {}))
    axes = section.pop("axes", None)
    pretrain = section.pop("pretrain", None)
    seeds = section.pop("seeds", None)
    overrides = {**preset.get("all", {}), **section}
    changes: dict[str, Any] = {}
    if axes is not None:
        changes["axes"] = {k: [parse_axis_value(k, v, where) for v in vs] for k, vs in axes.items()}
    if pretrain is not None:
        changes["pretrain"] = {k: coerce(k, v, where) for k, v in pretrain.items()}
    if seeds is not None:
        changes["seeds"] = tuple(seeds)
    spec = dataclasses.replace(spec, **changes)
    base = {**spec.base, **{k: coerce(k, v, where) for k, v in overrides.items()}}
    # Fields fixed by the preset stop being axes, exactly as --set does.
    return spec.with_overrides(base) if base else spec


def reproduce(
    data: str,
    out: str | Path,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run the five objectives into ``OUT/squeezelab.db`` and write ``OUT/report``."""
    from .analysis import build_report
    from .studies import run_study

    out = Path(out)
    db = out / "squeezelab.db"
    settings = load_preset(preset)
    t0 = time.perf_counter()
    for name in OBJECTIVES:
        spec = apply_preset(load_study(name), settings)
        spec = spec.with_overrides({**(overrides or {}), "data": data})
        print(f"== {name}: {spec.description}", file=sys.stderr, flush=True)
        run_study(spec, db, executor=executor, workers=workers, address=address, data_dir=data_dir)
    summary = build_report(db, out / "report")
    summary["wall_s"] = time.perf_counter() - t0
    summary["db"] = str(db)
    return summary
