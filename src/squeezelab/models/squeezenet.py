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

from dataclasses import dataclass

import torch
from torch import nn

from .fire import Fire
from .registry import register_model

BYPASS_OPTIONS = ("none", "simple", "complex")
BASE_FIRE_MODULES = 8

# Stem conv and the 0-based Fire indices followed by a max-pool, per version.
_VERSIONS = {
    "1_0": {"stem": dict(out_channels=96, kernel_size=7, stride=2), "pool_after": (2, 6)},
    "1_1": {"stem": dict(out_channels=64, kernel_size=3, stride=2), "pool_after": (1, 3)},
}


@dataclass(frozen=True)
class FireSpec:
    """Sizes of one Fire module."""

    squeeze: int
    expand1x1: int
    expand3x3: int

    @property
    def out_channels(self) -> int:
        return self.expand1x1 + self.expand3x3


def fire_specs(
    n_modules: int = BASE_FIRE_MODULES,
    base_e: int = 128,
    incr_e: int = 128,
    freq: int = 2,
    pct3x3: float = 0.5,
    squeeze_ratio: float = 0.125,
) -> list[FireSpec]:
    """Generate every Fire module's sizes from the paper's metaparameters."""
    _check_metaparameters(n_modules, base_e, incr_e, freq, pct3x3, squeeze_ratio)
    specs = []
    for i in range(n_modules):
        e = base_e + incr_e * (i // freq)
        e3 = min(max(1, round(pct3x3 * e)), e - 1)  # keep both expand branches non-empty
        specs.append(FireSpec(max(1, round(squeeze_ratio * e)), e - e3, e3))
    return specs


def _check_metaparameters(
    n_modules: int, base_e: int, incr_e: int, freq: int, pct3x3: float, squeeze_ratio: float
) -> None:
    if n_modules < 1:
        raise ValueError(f"a SqueezeNet needs at least one Fire module, got {n_modules}")
    if base_e < 2:
        raise ValueError(f"base_e must be an integer >= 2, got {base_e!r}")
    if incr_e < 0:
        raise ValueError(f"incr_e must be >= 0, got {incr_e!r}")
    if freq < 1:
        raise ValueError(f"freq must be >= 1, got {freq!r}")
    if not 0.0 < pct3x3 < 1.0:
        raise ValueError(f"pct3x3 must lie in (0, 1), got {pct3x3!r}")
    if not 0.0 < squeeze_ratio <= 1.0:
        raise ValueError(f"squeeze_ratio must lie in (0, 1], got {squeeze_ratio!r}")


class SqueezeNet(nn.Module):
    """SqueezeNet whose ablation axes are constructor arguments.

    Args:
        version: "1_0" or "1_1" (stem and pooling positions).
        batch_norm: batch norm between each Fire module's squeeze conv and its ReLU.
        fire_delta: Fire modules removed from (negative) or added to (positive) the end.
        bypass: "none", "simple" (identity around modules whose input and output widths
            match: fire3, 5, 7, 9 by default) or "complex" (simple, plus a 1x1 conv bypass
            around the others).
    """

    def __init__(
        self,
        version: str = "1_0",
        num_classes: int = 1000,
        dropout: float = 0.5,
        batch_norm: bool = False,
        fire_delta: int = 0,
        bypass: str = "none",
        base_e: int = 128,
        incr_e: int = 128,
        freq: int = 2,
        pct3x3: float = 0.5,
        squeeze_ratio: float = 0.125,
    ) -> None:
        super().__init__()
        if version not in _VERSIONS:
            raise ValueError(f"version must be one of {sorted(_VERSIONS)}, got {version!r}")
        if bypass not in BYPASS_OPTIONS:
            raise ValueError(f"bypass must be one of {BYPASS_OPTIONS}, got {bypass!r}")
        if not isinstance(fire_delta, int) or not -7 <= fire_delta <= 8:
            raise ValueError(f"fire_delta must be an integer in -7..8, got {fire_delta!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.num_classes = num_classes
        specs = fire_specs(
            BASE_FIRE_MODULES + fire_delta, base_e, incr_e, freq, pct3x3, squeeze_ratio
        )
        layout = _VERSIONS[version]
        stem_channels = layout["stem"]["out_channels"]
        layers: list[nn.Module] = [
            nn.Conv2d(3, **layout["stem"]),
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
                    batch_norm=batch_norm,
                    bypass=_bypass_kind(bypass, channels, spec.out_channels),
                )
            )
            channels = spec.out_channels
            if i in layout["pool_after"] and i + 1 < len(specs):
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        # The classifier adapts to the last Fire module's width (the study's macro ablation).
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
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


def _squeezenet(version: str, num_classes: int, **options: object) -> SqueezeNet:
    return SqueezeNet(version=version, num_classes=num_classes, **options)


@register_model
def squeezenet1_0(
    num_classes: int = 1000,
    dropout: float = 0.5,
    batch_norm: bool = False,
    fire_delta: int = 0,
    bypass: str = "none",
    base_e: int = 128,
    incr_e: int = 128,
    freq: int = 2,
    pct3x3: float = 0.5,
    squeeze_ratio: float = 0.125,
) -> SqueezeNet:
    """SqueezeNet 1.0 (Iandola et al. 2016), torchvision-compatible layout."""
    return _squeezenet("1_0", num_classes, **_options(locals()))


@register_model
def squeezenet1_1(
    num_classes: int = 1000,
    dropout: float = 0.5,
    batch_norm: bool = False,
    fire_delta: int = 0,
    bypass: str = "none",
    base_e: int = 128,
    incr_e: int = 128,
    freq: int = 2,
    pct3x3: float = 0.5,
    squeeze_ratio: float = 0.125,
) -> SqueezeNet:
    """SqueezeNet 1.1 (2.4x fewer MACs than 1.0 at equal accuracy), torchvision layout."""
    return _squeezenet("1_1", num_classes, **_options(locals()))


def _options(local_vars: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in local_vars.items() if k != "num_classes"}
