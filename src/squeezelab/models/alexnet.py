"""AlexNet as torchvision defines it (same layout, keys and initialization), with one option for
the classifier's input that torchvision's history makes a question at small images."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..fields import option
from .registry import register_model

AVGPOOL_OPTIONS = ("6x6", "1x1")


@dataclass(frozen=True)
class AlexNetOptions:
    """AlexNet's options."""

    dropout: float = option(
        0.5, "dropout before the first two fully connected layers", low=0.0, high=1.0,
        high_open=True,
    )  # fmt: skip
    avgpool: str = option(
        "6x6",
        "the pool before the classifier: 6x6 is torchvision's (at 64x64 it repeats the 1x1 "
        "feature map 36 times into 9,216 inputs); 1x1 feeds the 256 features once, as a "
        "classifier sized to a 64x64 image's feature map does",
        choices=AVGPOOL_OPTIONS,
    )


@register_model(options=AlexNetOptions, label="AlexNet", color="tab:red")
def alexnet(
    num_classes: int = 1000,
    dropout: float = AlexNetOptions.dropout,
    avgpool: str = AlexNetOptions.avgpool,
) -> nn.Module:
    """AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form.

    torchvision's AlexNet pools its feature map to 6x6 before the first fully connected layer
    (9,216 inputs); until February 2019 (pytorch/vision#746) it had no pool and accepted
    224x224 images only. At 64x64 the feature map is 1x1, so the 6x6 pool feeds each of its
    256 values 36 times: the layer computes what a 256-input layer would, with weights summed
    over the 36 copies, but SGD moves that sum 36 times as far per step, and dropout masks
    each copy apart. ``avgpool="1x1"`` is the 256-input layer (same keys; ``classifier.1`` is 4096 x
    256), initialized as torchvision initializes its own.
    """
    from torchvision.models import alexnet as tv_alexnet  # imported on use: slow to import

    model = tv_alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    if avgpool == "1x1":
        fc6 = model.classifier[1]
        assert isinstance(fc6, nn.Linear)
        model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        model.classifier[1] = nn.Linear(256, fc6.out_features)
    return model
