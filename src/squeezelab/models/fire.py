"""The Fire module of SqueezeNet (Iandola et al. 2016, section 3.2).

Parameter names match torchvision's ``models/squeezenet.py`` (``squeeze``, ``expand1x1``,
``expand3x3``) so torchvision's published weights load into the plain module. Two ablation
axes live here: batch norm between the squeeze conv and its ReLU (the study's objective 4) and
a bypass connection around the module (paper section 6).
"""

from __future__ import annotations

import torch
from torch import nn

BYPASS_KINDS = ("none", "identity", "conv")


class Fire(nn.Module):
    """Squeeze (1x1) then expand (1x1 and 3x3, concatenated), with optional BN and bypass."""

    def __init__(
        self,
        inplanes: int,
        squeeze_planes: int,
        expand1x1_planes: int,
        expand3x3_planes: int,
        batch_norm: bool = False,
        bypass: str = "none",
    ) -> None:
        super().__init__()
        if bypass not in BYPASS_KINDS:
            raise ValueError(f"bypass must be one of {BYPASS_KINDS}, got {bypass!r}")
        outplanes = expand1x1_planes + expand3x3_planes
        if bypass == "identity" and inplanes != outplanes:
            raise ValueError(
                f"an identity bypass needs equal channel counts, got {inplanes} -> {outplanes}"
            )
        self.inplanes = inplanes
        self.outplanes = outplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        # The study places BN before the non-linearity (Ioffe & Szegedy), after the squeeze conv.
        self.squeeze_bn = nn.BatchNorm2d(squeeze_planes) if batch_norm else None
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.bypass: nn.Module | None = None
        if bypass == "identity":
            self.bypass = nn.Identity()
        elif bypass == "conv":
            self.bypass = nn.Conv2d(inplanes, outplanes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, inplanes, H, W) -> (N, expand1x1 + expand3x3, H, W)
        s = self.squeeze(x)
        if self.squeeze_bn is not None:
            s = self.squeeze_bn(s)
        s = self.squeeze_activation(s)
        out = torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(s)),
                self.expand3x3_activation(self.expand3x3(s)),
            ],
            dim=1,
        )
        if self.bypass is not None:
            out = out + self.bypass(x)
        return out
