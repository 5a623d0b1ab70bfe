"""Model registry: studies and the command line name models by string (torchvision's ``_api``).

Each builder is registered with its family's options class (a frozen dataclass made with
:func:`squeezelab.fields.option`): the one place where an option's default, help text and
allowed values live. The run config, the command line and study files read them from here.
The entry also carries what the rest of the house shows of a model: its display label, its
colour in figures, and its *variant* (a key naming the options that change how it trains,
``squeezenet1_0+bn``, which recipes are written for). A new family is one module that
registers its builders, and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, SqueezelabError
from ..fields import FieldInfo, build, describe, refuse_unknown

# The largest model any builder may allocate: 250M parameters (1 GB in fp32; AlexNet with
# 1,000 classes has 61M). Counted on the meta device first, so an option from a file's header
# (a .sqzc with base_e = 65536) is refused before any memory is taken.
MAX_PARAMETERS = 250_000_000


class WeightsError(SqueezelabError, RuntimeError):
    """Weights do not fit the model they are loaded into (names or shapes)."""


@dataclass(frozen=True)
class NoOptions:
    """The options of a model that takes none."""


Variant = Callable[[str, Mapping[str, Any]], str]


def plain_variant(name: str, options: Mapping[str, Any]) -> str:
    """A family whose options do not change how it trains: its variant is its name."""
    return name


@dataclass(frozen=True)
class ModelInfo:
    """What the house shows of a registered model."""

    name: str
    label: str  # in tables and figures: "SqueezeNet 1.0"
    color: str | None  # a matplotlib colour, or None for the next in the cycle
    variant: Variant  # (name, options) -> the key recipes are written for
    # (options) -> why a run of it may stay at chance and what to try, or None for the general
    # advice: "(plain SqueezeNet at a high learning rate can). Watch the next epochs; ..."
    stall_hint: Callable[[Mapping[str, Any]], str | None] = lambda options: None


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    options: type
    info: ModelInfo


_MODELS: dict[str, _Entry] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    /,
    *,
    options: type = NoOptions,
    label: str | None = None,
    color: str | None = None,
    variant: Variant = plain_variant,
    stall_hint: Callable[[Mapping[str, Any]], str | None] | None = None,
) -> Any:
    """Register a builder under its function name with its options class, display label,
    figure colour, variant and stall hint; reject duplicates.

    Use as ``@register_model`` or ``@register_model(options=MyOptions, label="My net")``.
    """

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        info = ModelInfo(name, label or name, color, variant)
        if stall_hint is not None:
            info = dataclasses.replace(info, stall_hint=stall_hint)
        _MODELS[name] = _Entry(builder, options, info)
        return builder

    return add(fn) if fn is not None else add


def model_info(name: str) -> ModelInfo:
    """Model ``name``'s label, colour and variant; an unknown name shows as itself."""
    if name in _MODELS:
        return _MODELS[name].info
    return ModelInfo(name, name, None, plain_variant)


def variant_of(name: str, options: Mapping[str, Any]) -> str:
    """The variant of model ``name`` under ``options`` (a run config's fields will do)."""
    info = model_info(name)
    return info.variant(name, options)


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
    refuse_unknown(options, model_options(name), f"model {name!r}", "option")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    build(entry.options, options, f"model {name}")  # every value checked, the field named
    with torch.device("meta"):  # count first, allocate nothing
        size = sum(
            p.numel() for p in entry.builder(num_classes=num_classes, **options).parameters()
        )
    if size > MAX_PARAMETERS:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"
        raise ConfigError(
            f"model {name} ({shown}, {num_classes} classes) would have {size:,} parameters, "
            f"over the {MAX_PARAMETERS:,} any squeezelab model may take"
        )
    return entry.builder(num_classes=num_classes, **options)


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` after checking that its names and shapes are the model's:
    another variant's weights (1.1's in a 1.0, batch norm's, another class count) or a file
    missing a tensor is named, not a ``load_state_dict`` traceback."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} (the model's: {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for what, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problems.append(f"{len(names)} {what}: {', '.join(names[:3])}{more}")
    if problems:
        raise WeightsError(
            f"{source} does not fit the model it names ({type(model).__name__}): "
            + "; ".join(problems)
        )
    model.load_state_dict(state)


def _entry(name: str) -> _Entry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}"
        ) from None
