"""Presets: overlays on the built-in study files (``presets/*.toml``).

A preset's ``[all]`` and ``[STUDY]`` sections are overlays merged by the one rule of
:func:`squeezelab.studies.spec.overlay` (lowest first: the study file < ``[all]`` <
``[STUDY]`` < ``--data`` < ``--set``); ``[protocol]`` describes the preset and is stored with
every study it runs.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from ..training.config import ConfigError
from .spec import tomllib


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


def preset_layers(study: str, preset: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A preset's overlays for one study, lowest first: ``[all]``, then ``[STUDY]``."""
    return [("preset [all]", preset.get("all", {})), (f"preset [{study}]", preset.get(study, {}))]


def reference_protocols() -> dict[str, dict[str, Any]]:
    """The ``[protocol]`` of the faithful (paper) and sound (rigorous) presets."""
    return {name: load_preset(name).get("protocol", {}) for name in ("paper", "rigorous")}
