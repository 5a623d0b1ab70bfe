"""Registered networks: SqueezeNet 1.0 / 1.1 with ablation axes, and AlexNet."""

from . import alexnet as _alexnet  # noqa: F401  (registers the builder)
from . import squeezenet as _squeezenet  # noqa: F401
from .complexity import Complexity, count_macs, count_params, measure
from .fire import Fire
from .registry import (
    WeightsError,
    get_model,
    list_models,
    load_weights_into,
    model_options,
    register_model,
)
from .squeezenet import SqueezeNet, fire_specs

__all__ = [
    "Complexity",
    "Fire",
    "SqueezeNet",
    "WeightsError",
    "count_macs",
    "count_params",
    "fire_specs",
    "get_model",
    "list_models",
    "load_weights_into",
    "measure",
    "model_options",
    "register_model",
]
