"""Magnitude pruning (Deep Compression, Han et al. 2016, section 2; Han et al. 2015).

Only the weights of convolutions and linear layers are pruned (biases and batch-norm
parameters are too few to matter). ``per_layer`` removes the same fraction from every layer;
``global`` uses one magnitude threshold for the whole network. Either way exactly
``round(sparsity * n)`` weights become zero. Masks stay fixed during fine-tuning through
``torch.nn.utils.prune``'s re-parametrization.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

SCOPES = ("per_layer", "global")


Prunable = nn.Conv2d | nn.Linear


def prunable(model: nn.Module) -> dict[str, Prunable]:
    """Return the modules whose ``weight`` is pruned and shared: convs and linear layers."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")


def magnitude_masks(
    model: nn.Module, sparsity: float | dict[str, float], scope: str = "per_layer"
) -> dict[str, torch.Tensor]:
    """Return a 0/1 mask per prunable layer that zeroes the smallest-magnitude weights."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    layers = prunable(model)
    if scope == "global":
        if isinstance(sparsity, dict):
            raise ValueError("global pruning takes one sparsity for the whole network")
        check_sparsity(sparsity)
        flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        return _split(_keep_largest(flat, sparsity), layers)
    masks = {}
    for name, m in layers.items():
        s = sparsity.get(name, 0.0) if isinstance(sparsity, dict) else sparsity
        check_sparsity(s)
        masks[name] = _keep_largest(m.weight.detach().abs().flatten(), s).view_as(m.weight)
    return masks


def _keep_largest(values: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A mask keeping all but the ``round(sparsity * n)`` smallest values (ties by index)."""
    n_zero = round(sparsity * values.numel())
    mask = torch.ones_like(values)
    if n_zero:
        mask[torch.argsort(values, stable=True)[:n_zero]] = 0.0
    return mask


def _split(flat: torch.Tensor, layers: dict[str, Prunable]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, m in layers.items():
        n = m.weight.numel()
        out[name] = flat[start : start + n].view_as(m.weight)
        start += n
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor], fixed: bool = True) -> None:
    """Zero the masked weights; with ``fixed``, keep them zero through later training."""
    layers = prunable(model)
    for name, mask in masks.items():
        if fixed:
            prune.custom_from_mask(layers[name], "weight", mask.to(layers[name].weight.device))
        else:
            with torch.no_grad():
                layers[name].weight.mul_(mask)


def make_permanent(model: nn.Module) -> None:
    """Fold fixed masks back into plain ``weight`` tensors (torchvision-compatible keys)."""
    for m in prunable(model).values():
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")


def sparsity_of(model: nn.Module) -> float:
    """The fraction of zero weights over all prunable layers."""
    weights = [m.weight.detach() for m in prunable(model).values()]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total


# Deep Compression, Table 4: fraction of AlexNet's weights kept per layer.
ALEXNET_PAPER_KEPT = {
    "features.0": 0.84,
    "features.3": 0.38,
    "features.6": 0.35,
    "features.8": 0.37,
    "features.10": 0.37,
    "classifier.1": 0.09,
    "classifier.4": 0.09,
    "classifier.6": 0.25,
}
