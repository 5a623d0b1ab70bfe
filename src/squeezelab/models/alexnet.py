"""AlexNet exactly as torchvision defines it (same layout, keys and initialization)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..fields import option
from .registry import register_model


@dataclass(frozen=True)
class AlexNetOptions:
    """AlexNet's one option."""

    dropout: float = option(0.5, "dropout before the final conv", low=0.0, high=1.0, high_open=True)


@register_model(options=AlexNetOptions, label="AlexNet", color="tab:red")
def alexnet(num_classes: int = 1000, dropout: float = AlexNetOptions.dropout) -> nn.Module:
    """AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form."""
    from torchvision.models import alexnet as tv_alexnet  # imported on use: slow to import

    return tv_alexnet(weights=None, num_classes=num_classes, dropout=dropout)
