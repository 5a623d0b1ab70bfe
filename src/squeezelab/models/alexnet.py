"""AlexNet exactly as torchvision defines it (same layout, keys and initialization)."""

from __future__ import annotations

from torch import nn
from torchvision.models import alexnet as tv_alexnet

from .registry import register_model


@register_model
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    """AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    return tv_alexnet(weights=None, num_classes=num_classes, dropout=dropout)
