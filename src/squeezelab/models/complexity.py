"""Parameter counts, float32 size and multiply-accumulates of a model at an input size."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Complexity:
    """What one forward pass costs and what the weights weigh."""

    params: int
    size_mb: float  # float32 bytes / 1e6
    macs: int  # multiply-accumulates of one forward pass of one image

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    """Count the trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int) -> int:
    """Count the multiply-accumulates of one forward pass on a ``3 x S x S`` image."""
    check_input_size(model, image_size)
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate of conv and matmul.
    return counter.get_total_flops() // 2


def check_input_size(model: nn.Module, image_size: int) -> None:
    """Raise a clear error when ``model`` cannot take ``image_size`` inputs.

    The forward pass runs on the meta device (shapes only), so a 4096x4096 input costs
    nothing to check: the real one would take gigabytes at batch 1.
    """
    activation_bytes(model, image_size)


def activation_bytes(model: nn.Module, image_size: int) -> int:
    """The float32 bytes of every module output in one forward pass of one image (what a
    training step keeps for its backward pass), measured on the meta device; a model that
    cannot take ``image_size`` inputs raises a clear error."""
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    shadow = _meta_copy(model).eval()
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * 4

    leaves = [m for m in shadow.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            shadow(torch.zeros(1, 3, image_size, image_size, device="meta"))
    except RuntimeError as err:
        raise ValueError(
            f"{type(model).__name__} cannot take {image_size}x{image_size} inputs "
            f"(a feature map shrinks below its kernel): use a larger image size"
        ) from err
    finally:
        for h in handles:
            h.remove()
    return total


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device: shapes only,
    its weights never copied (an AlexNet's are 230 MB)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def measure(model: nn.Module, image_size: int) -> Complexity:
    """Return the parameters, float32 megabytes and MACs of ``model``."""
    params = count_params(model)
    return Complexity(params=params, size_mb=params * 4 / 1e6, macs=count_macs(model, image_size))


def complexity_of(config: Mapping[str, Any], num_classes: int = 10) -> tuple[int, int]:
    """(params, MACs) of the model a run config describes; MACs -1 where it cannot run."""
    from .registry import model_options

    model = config["model"]
    options = {k: config[k] for k in model_options(model) if k in config}
    return _complexity(
        model, json.dumps(options, sort_keys=True), config["image_size"], num_classes
    )


@functools.cache
def _complexity(model: str, options: str, image_size: int, num_classes: int) -> tuple[int, int]:
    from .registry import get_model

    net = get_model(model, num_classes=num_classes, **json.loads(options))
    try:
        macs = count_macs(net, image_size)
    except ValueError:
        macs = -1
    return count_params(net), macs


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
