"""Model registry: studies and the CLI name models by string (after torchvision's ``_api.py``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model builder under its function name; reject duplicates."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> list[str]:
    """Return the keyword options that model ``name`` accepts."""
    builder = _get_builder(name)
    return [p for p in inspect.signature(builder).parameters if p != "num_classes"]


def get_model(name: str, num_classes: int = 1000, **options: object) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs and the given options."""
    builder = _get_builder(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return builder(num_classes=num_classes, **options)


def _get_builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}"
        ) from None
