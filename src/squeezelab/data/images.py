"""Decoded images in memory, the type every source produces, and the data error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SqueezelabError


class DataError(SqueezelabError, RuntimeError):
    """A data source is missing, corrupt or malformed; the message names the file."""


@dataclass
class ImageSet:
    """Decoded images ``(N, H, W, 3)`` uint8 with labels ``(N,)`` int64 and class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise DataError(f"images must be (N, H, W, 3) uint8, got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DataError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)
