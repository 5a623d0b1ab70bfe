"""Presets: overlays on the built-in study files (``presets/*.toml``), merged here.

One precedence rule, lowest first: the study file < the preset's ``[all]`` < the preset's
``[STUDY]`` < ``--data`` < ``--set``. A ``[STUDY]`` section may hold run fields, ``seeds``,
``axes`` (replacing the study's), ``points`` (replacing them), ``best_of = false`` and
``pretrain``; ``[protocol]`` describes the preset and is stored with every study it runs.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from ..training.config import ConfigError, coerce
from .spec import StudySpec, _best_of, parse_axis_value, tomllib

STUDY_KEYS = ("axes", "pretrain", "seeds", "points", "best_of", "description")


def presets() -> list[str]:
    """Return the names of the shipped presets."""
    folder = resources.files("squeezelab.studies") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """Read a preset: ``[protocol]``, ``[all]`` overrides and per-study sections."""
    if name not in presets():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(presets())}")
    text = (resources.files("squeezelab.studies") / "presets" / f"{name}.toml").read_text()
    return tomllib.loads(text)


def apply_preset(spec: StudySpec, preset: dict[str, Any]) -> StudySpec:
    """Apply a preset's ``[all]`` and ``[STUDY]`` sections to one study."""
    where = f"preset [{spec.name}]"
    section = dict(preset.get(spec.name, {}))
    changes: dict[str, Any] = {"protocol": dict(preset.get("protocol", {}))}
    if "axes" in section:
        changes["axes"] = {
            k: [parse_axis_value(k, v, where) for v in vs] for k, vs in section.pop("axes").items()
        }
    if "points" in section:
        changes["points"] = tuple(
            {k: coerce(k, v, f"{where} points") for k, v in p.items()}
            for p in section.pop("points")
        )
    if "best_of" in section:
        best = section.pop("best_of")
        changes["best_of"] = None if best is False else _best_of(best, where)
    if "pretrain" in section:
        changes["pretrain"] = {k: coerce(k, v, where) for k, v in section.pop("pretrain").items()}
    if "seeds" in section:
        changes["seeds"] = tuple(section.pop("seeds"))
    if "description" in section:
        changes["description"] = str(section.pop("description"))
    spec = dataclasses.replace(spec, **changes)
    overrides = {**preset.get("all", {}), **section}
    base = {**spec.base, **{k: coerce(k, v, where) for k, v in overrides.items()}}
    # Fields fixed by the preset stop being axes, exactly as --set does.
    return spec.with_overrides(base) if base else spec


def reference_protocols() -> dict[str, dict[str, Any]]:
    """The ``[protocol]`` of the faithful (paper) and sound (rigorous) presets."""
    return {name: load_preset(name).get("protocol", {}) for name in ("paper", "rigorous")}
