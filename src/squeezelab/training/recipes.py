"""Recipes: named, versioned sets of run fields (``recipe_files/*.toml``), resolved per model.

A run that names a recipe (``recipe = "modern"``) gets the recipe's fields for its model
wherever the run does not set them itself: one precedence rule, lowest first, the recipe <
the study file (or preset) < ``--set`` and command-line flags. The run records the recipe with
its version (``modern@1``), so a later version of a recipe never takes over a stored run's
key, and ``config.json`` holds every resolved field.

A recipe file holds ``name``, ``version``, ``description``, ``[fields]`` for every model and
``[models.NAME]`` sections per model (``NAME+bn`` for the batch-norm variant, which falls
back to ``NAME``).
"""

from __future__ import annotations

import functools
import sys
from importlib import resources
from typing import Any

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NONE = "none"


@functools.cache
def recipes() -> dict[str, dict[str, Any]]:
    """The shipped recipes by name."""
    folder = resources.files("squeezelab.training") / "recipe_files"
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            raw = tomllib.loads(entry.read_text())
            out[raw["name"]] = raw
    return out


def recipe_names() -> tuple[str, ...]:
    """``none``, then every recipe, as ``name`` and as ``name@version``."""
    names = [NONE]
    for name, raw in sorted(recipes().items()):
        names += [name, f"{name}@{raw['version']}"]
    return tuple(names)


def check_recipe_name(name: str) -> None:
    """Refuse a name that is no shipped recipe (any version of one is a name: stored runs)."""
    base, at, version = name.partition("@")
    if name != NONE and (base not in recipes() or (at and not version.isdigit())):
        raise ConfigError(f"unknown recipe {name!r}; recipes: {', '.join(recipe_names())}")


def pinned(name: str) -> str:
    """``modern`` -> ``modern@1`` (its current version); a pinned name is checked."""
    if name == NONE:
        return NONE
    base, _, version = name.partition("@")
    raw = recipes().get(base)
    if raw is None:
        raise ConfigError(f"unknown recipe {name!r}; recipes: {', '.join(recipe_names())}")
    if version and version != str(raw["version"]):
        raise ConfigError(
            f"recipe {name!r}: this squeezelab ships {base}@{raw['version']} only "
            "(a run made with another version keeps its recorded fields in config.json)"
        )
    return f"{base}@{raw['version']}"


def recipe_fields(name: str, model: str, batch_norm: bool = False) -> dict[str, Any]:
    """The run fields recipe ``name`` sets for ``model`` (with or without batch norm)."""
    if name == NONE:
        return {}
    raw = recipes()[pinned(name).partition("@")[0]]
    models = raw.get("models", {})
    key = f"{model}+bn" if batch_norm and f"{model}+bn" in models else model
    return {**raw.get("fields", {}), **models.get(key, {})}


def resolve(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with its recipe's fields filled in beneath it and the recipe pinned."""
    name = values.get("recipe", NONE)
    if name in (None, NONE):
        return values
    if not isinstance(name, str):
        raise ConfigError(f"recipe must be a name ({', '.join(recipe_names())}), got {name!r}")
    model = values.get("model", "squeezenet1_0")
    base, _, version = name.partition("@")
    raw = recipes().get(base)
    if raw is not None and version and version != str(raw["version"]):
        # A stored run (config.json, the store) made with another version of the recipe holds
        # every field it resolved to: it stays what it was, to resume, evaluate or compress.
        # Only a config that leaves some recipe field to the (other) version is refused.
        current = recipe_fields(base, model, bool(values.get("batch_norm", False)))
        if all(k in values for k in current):
            return dict(values)
    filled = recipe_fields(name, model, bool(values.get("batch_norm", False)))
    return {**filled, **values, "recipe": pinned(name)}
