"""Recipes: named, versioned sets of run fields (``recipe_files/*.toml``), resolved per model.

A run that names a recipe (``recipe = "modern"``) gets the recipe's fields for its model
wherever the run does not set them itself: one precedence rule, lowest first, the recipe <
the study file (or preset) < ``--set`` and command-line flags. The run records the recipe with
its version (``modern@1``), so a later version of a recipe never takes over a stored run's
key, and ``config.json`` holds every resolved field.

A recipe file holds ``name``, ``version``, ``description``, ``[fields]`` for every model and
``[models.NAME]`` sections per model (``NAME+bn`` for the batch-norm variant, which falls
back to ``NAME``).

Versions are per model: a run records the version in which its model's fields last changed
(its section's ``since``, or ``fields_since`` for the shared ``[fields]``, whichever is later;
both default to 1), not the file's. So a new version that changes one model's fields gives
that model's runs new keys and leaves every other model's runs, and keys, where they were:
a study re-runs only what the change touched. Asking for any version from that one to the
file's gives the same fields; an older one is gone (only a stored run that holds every field
it resolved to still loads).
"""

from __future__ import annotations

import functools
import sys
from importlib import resources
from typing import Any

from ..errors import ConfigError
from ..models.registry import variant_of

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
            check_versions(raw, entry.name)
            out[raw["name"]] = raw
    return out


def check_versions(raw: dict[str, Any], where: str) -> None:
    """Refuse a recipe whose per-model versions do not fit its own: each ``since`` (and
    ``fields_since``) a whole number from 1 to ``version``, and the newest of them ``version``
    itself (a version that changed nothing, or a change with no version, would mislabel runs).
    """
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"recipe file {where}: version {version!r} is no whole number from 1")
    marks = {"fields_since": raw.get("fields_since", 1)}
    marks |= {f"[models.{k}] since": v.get("since", 1) for k, v in raw.get("models", {}).items()}
    bad = [k for k, v in marks.items() if not isinstance(v, int) or not 1 <= v <= version]
    if bad:
        raise ConfigError(
            f"recipe file {where}: {', '.join(bad)} must be a whole number from 1 to its "
            f"version ({version})"
        )
    if max(marks.values()) != version:
        raise ConfigError(
            f"recipe file {where}: version {version} but no model's fields changed in it "
            f"(the newest since is {max(marks.values())}): set the changed model's since"
        )


def _section(raw: dict[str, Any], model: str, variant: str | None) -> dict[str, Any]:
    """A recipe's fields for a model's variant (``squeezenet1_0+bn``), else for the model."""
    models = raw.get("models", {})
    key = variant if variant in models else model
    return models.get(key, {})


def model_version(raw: dict[str, Any], model: str, variant: str | None = None) -> int:
    """The version of recipe ``raw`` in which ``model``'s (variant's) fields last changed."""
    since = _section(raw, model, variant).get("since", 1)
    return max(raw.get("fields_since", 1), since)


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


def _current(raw: dict[str, Any], version: str, model: str, variant: str | None) -> bool:
    """Whether ``version`` asks for ``model``'s fields as this squeezelab ships them."""
    if not version:
        return True
    return (
        version.isdigit() and model_version(raw, model, variant) <= int(version) <= raw["version"]
    )


def pinned(name: str, model: str = "squeezenet1_0", variant: str | None = None) -> str:
    """``modern`` -> ``modern@1``: the version in which ``model``'s fields last changed; a
    pinned name is checked (any version from that one to the file's names the same fields)."""
    if name == NONE:
        return NONE
    base, _, version = name.partition("@")
    raw = recipes().get(base)
    if raw is None:
        raise ConfigError(f"unknown recipe {name!r}; recipes: {', '.join(recipe_names())}")
    since = model_version(raw, model, variant)
    if not _current(raw, version, model, variant):
        raise ConfigError(
            f"recipe {name!r}: this squeezelab ships {base}@{raw['version']} only"
            + (f", where {variant or model}'s fields date from {base}@{since}" if since > 1 else "")
            + " (a run made with another version keeps its recorded fields in config.json)"
        )
    return f"{base}@{since}"


def recipe_fields(name: str, model: str, variant: str | None = None) -> dict[str, Any]:
    """The run fields recipe ``name`` sets for ``model``'s ``variant`` (its registry's
    :func:`~squeezelab.models.variant_of`, e.g. ``squeezenet1_0+bn``; none: the model's)."""
    if name == NONE:
        return {}
    raw = recipes()[pinned(name, model, variant).partition("@")[0]]
    own = {k: v for k, v in _section(raw, model, variant).items() if k != "since"}
    return {**raw.get("fields", {}), **own}


def resolve(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with its recipe's fields filled in beneath it and the recipe pinned."""
    name = values.get("recipe", NONE)
    if name in (None, NONE):
        return values
    if not isinstance(name, str):
        raise ConfigError(f"recipe must be a name ({', '.join(recipe_names())}), got {name!r}")
    model = values.get("model", "squeezenet1_0")
    variant = variant_of(model, values)
    base, _, version = name.partition("@")
    raw = recipes().get(base)
    if raw is not None and version.isdigit() and not _current(raw, version, model, variant):
        # A stored run (config.json, the store) made with another version of the recipe holds
        # every field it resolved to: it stays what it was, to resume, evaluate or compress.
        # Only a config that leaves some recipe field to the (other) version is refused.
        current = recipe_fields(base, model, variant)
        if all(k in values for k in current):
            return dict(values)
    filled = recipe_fields(name, model, variant)
    return {**filled, **values, "recipe": pinned(name, model, variant)}
