"""SqueezeNet 1.0 and 1.1 with the study's and the paper's ablation axes as arguments.

Layout and state_dict keys are those of torchvision's ``models/squeezenet.py``: with default
options torchvision's ImageNet weights load with ``strict=True``. The Fire sizes come from the
paper's metaparameters (Iandola et al. 2016, section 5):

    e_i    = base_e + incr_e * floor(i / freq)      expand filters of Fire module i (0-based)
    e3_i   = round(pct3x3 * e_i),  e1_i = e_i - e3_i
    s_i    = round(squeeze_ratio * e_i)             squeeze filters

The defaults (128, 128, 2, 0.5, 0.125) reproduce SqueezeNet 1.0's eight modules exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..fields import check_all, option
from .fire import Fire
from .registry import register_model

BYPASS_OPTIONS = ("none", "simple", "complex")
BASE_FIRE_MODULES = 8


@dataclass(frozen=True)
class SqueezeNetOptions:
    """The SqueezeNet family's options: the study's and the paper's ablation axes."""

    dropout: float = option(0.5, "dropout before the final conv", low=0.0, high=1.0, high_open=True)
    batch_norm: bool = option(
        False, "batch norm between each Fire module's squeeze conv and its ReLU"
    )
    fire_delta: int = option(
        0, "Fire modules removed (<0) or added (>0) at the end", low=-7, high=8
    )
    bypass: str = option(
        "none",
        "simple: identity around Fire modules of equal width; complex: also 1x1 convs elsewhere",
        choices=BYPASS_OPTIONS,
    )
    base_e: int = option(128, "expand filters of the first Fire module", low=2, high=1 << 16)
    incr_e: int = option(128, "expand filters added every freq modules", low=0, high=1 << 16)
    freq: int = option(2, "Fire modules between expand increments", low=1, high=1024)
    pct3x3: float = option(
        0.5, "fraction of 3x3 expand filters", low=0.0, high=1.0, low_open=True, high_open=True
    )
    stem_stride: int = option(
        2, "stride of the first conv (1 keeps 4x the detail on small images)", low=1, high=4
    )
    squeeze_ratio: float = option(
        0.125, "squeeze filters per expand filter", low=0.0, high=1.0, low_open=True
    )


# Stem conv and the 0-based Fire indices followed by a max-pool, per version.
@dataclass(frozen=True)
class _Layout:
    """What tells SqueezeNet 1.0 and 1.1 apart: the stem, and the Fire modules a pool follows."""

    stem_channels: int
    stem_kernel: int
    pool_after: tuple[int, ...]


_VERSIONS = {"1_0": _Layout(96, 7, (2, 6)), "1_1": _Layout(64, 3, (1, 3))}


@dataclass(frozen=True)
class FireSpec:
    """Sizes of one Fire module."""

    squeeze: int
    expand1x1: int
    expand3x3: int

    @property
    def out_channels(self) -> int:
        return self.expand1x1 + self.expand3x3


def fire_specs(**options: Any) -> list[FireSpec]:
    """Every Fire module's sizes from the paper's metaparameters (:class:`SqueezeNetOptions`)."""
    opts = SqueezeNetOptions(**options)
    check_all(opts)
    return _fire_specs(opts)


def _fire_specs(opts: SqueezeNetOptions) -> list[FireSpec]:
    specs = []
    for i in range(BASE_FIRE_MODULES + opts.fire_delta):
        e = opts.base_e + opts.incr_e * (i // opts.freq)
        e3 = min(max(1, round(opts.pct3x3 * e)), e - 1)  # keep both expand branches non-empty
        specs.append(FireSpec(max(1, round(opts.squeeze_ratio * e)), e - e3, e3))
    return specs


class SqueezeNet(nn.Module):
    """SqueezeNet whose ablation axes are constructor arguments (:class:`SqueezeNetOptions`).

    Args:
        version: "1_0" or "1_1" (stem and pooling positions).
        num_classes: classifier outputs.
        **options: any :class:`SqueezeNetOptions` field; ``bypass`` "simple" puts an identity
            around modules whose input and output widths match (fire3, 5, 7, 9 by default),
            "complex" also a 1x1 conv bypass around the others.
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, **options: Any) -> None:
        super().__init__()
        if version not in _VERSIONS:
            raise ValueError(f"version must be one of {sorted(_VERSIONS)}, got {version!r}")
        opts = SqueezeNetOptions(**options)
        check_all(opts)
        specs = _fire_specs(opts)
        self.num_classes = num_classes
        layout = _VERSIONS[version]
        stem_channels = layout.stem_channels
        layers: list[nn.Module] = [
            nn.Conv2d(3, stem_channels, kernel_size=layout.stem_kernel, stride=opts.stem_stride),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        ]
        channels = stem_channels
        for i, spec in enumerate(specs):
            layers.append(
                Fire(
                    channels,
                    spec.squeeze,
                    spec.expand1x1,
                    spec.expand3x3,
                    batch_norm=opts.batch_norm,
                    bypass=_bypass_kind(opts.bypass, channels, spec.out_channels),
                )
            )
            channels = spec.out_channels
            if i in layout.pool_after and i + 1 < len(specs):
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        # The classifier adapts to the last Fire module's width (the study's macro ablation).
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=opts.dropout),
            final_conv,
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self._init_weights(final_conv)

    def _init_weights(self, final_conv: nn.Conv2d) -> None:
        # As torchvision: N(0, 0.01) for the final conv, Kaiming-uniform elsewhere, zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 3, H, W) -> (N, num_classes)
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def _bypass_kind(bypass: str, in_channels: int, out_channels: int) -> str:
    if bypass == "none":
        return "none"
    if in_channels == out_channels:
        return "identity"
    return "conv" if bypass == "complex" else "none"


def _variant(name: str, options: Mapping[str, Any]) -> str:
    """Batch norm inside the Fire modules trains differently (its own recipe fields)."""
    return f"{name}+bn" if options.get("batch_norm") else name


def _stall_hint(options: Mapping[str, Any]) -> str | None:
    if options.get("batch_norm"):
        return None
    return (
        "(plain SqueezeNet at a high learning rate can). Watch the next epochs; a lower --lr or "
        "--batch-norm trains more reliably."
    )


@register_model(
    options=SqueezeNetOptions,
    label="SqueezeNet 1.0",
    color="tab:blue",
    variant=_variant,
    stall_hint=_stall_hint,
)
def squeezenet1_0(num_classes: int = 1000, **options: Any) -> SqueezeNet:
    """SqueezeNet 1.0 (Iandola et al. 2016), torchvision-compatible layout."""
    return SqueezeNet("1_0", num_classes, **options)


@register_model(
    options=SqueezeNetOptions,
    label="SqueezeNet 1.1",
    color="tab:green",
    variant=_variant,
    stall_hint=_stall_hint,
)
def squeezenet1_1(num_classes: int = 1000, **options: Any) -> SqueezeNet:
    """SqueezeNet 1.1 (2.4x fewer MACs than 1.0 at equal accuracy), torchvision layout."""
    return SqueezeNet("1_1", num_classes, **options)
