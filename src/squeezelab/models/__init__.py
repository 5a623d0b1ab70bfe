"""Registered networks: SqueezeNet 1.0 / 1.1 with ablation axes, and AlexNet."""

from . import alexnet as _alexnet  # noqa: F401  (registers the builder)
from . import squeezenet as _squeezenet  # noqa: F401
from .complexity import Complexity, count_macs, count_params, measure
from .fire import Fire
from .registry import (
    ModelInfo,
    WeightsError,
    get_model,
    list_models,
    load_weights_into,
    model_info,
    model_options,
    register_model,
    variant_of,
)
from .squeezenet import SqueezeNet, fire_specs

__all__ = [
    "Complexity",
    "Fire",
    "ModelInfo",
    "SqueezeNet",
    "WeightsError",
    "count_macs",
    "count_params",
    "fire_specs",
    "get_model",
    "list_models",
    "load_weights_into",
    "measure",
    "model_info",
    "model_options",
    "register_model",
    "variant_of",
]
