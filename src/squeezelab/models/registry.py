"""Model registry: studies and the command line name models by string (torchvision's ``_api``).

Each builder is registered with its family's options class (a frozen dataclass made with
:func:`squeezelab.fields.option`): the one place where an option's default, help text and
allowed values live. The run config, the command line and study files read them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..fields import FieldInfo, build, describe


@dataclass(frozen=True)
class NoOptions:
    """The options of a model that takes none."""


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    options: type


_MODELS: dict[str, _Entry] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None, /, *, options: type = NoOptions
) -> Any:
    """Register a builder under its function name with its options class; reject duplicates.

    Use as ``@register_model`` or ``@register_model(options=MyOptions)``.
    """

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = _Entry(builder, options)
        return builder

    return add(fn) if fn is not None else add


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_MODELS)


def options_class(name: str) -> type:
    """The options dataclass of model ``name``."""
    return _entry(name).options


def model_options(name: str) -> list[str]:
    """Return the keyword options that model ``name`` accepts."""
    return list(describe(options_class(name)))


def all_options() -> dict[str, FieldInfo]:
    """Every option of every registered family, by name (a shared name must agree)."""
    out: dict[str, FieldInfo] = {}
    for name in list_models():
        for key, info in describe(options_class(name)).items():
            if key in out and (out[key].default, out[key].kind) != (info.default, info.kind):
                raise TypeError(
                    f"option {key!r} of {name} has default {info.default!r}, another family "
                    f"{out[key].default!r}: a shared option name must mean one thing"
                )
            out.setdefault(key, info)
    return out


def get_model(name: str, num_classes: int = 1000, **options: Any) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs and the given options."""
    entry = _entry(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    build(entry.options, options, f"model {name}")  # every value checked, the field named
    return entry.builder(num_classes=num_classes, **options)


def _entry(name: str) -> _Entry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}"
        ) from None
