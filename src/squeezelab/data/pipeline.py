"""Batched tensor augmentation on the training device (no per-image PIL work).

The study's augmentation: random crop with 4 pixels of zero padding, resize to the training
size (64 by default), horizontal flip, then normalization. Images stay uint8 on the device;
each batch is gathered, cropped by index, flipped, interpolated and normalized in one go.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .images import ImageSet

# ImageNet statistics: torchvision's published weights expect them (transfer learning).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD = 4


def to_tensor(images: ImageSet, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return the images as a ``(N, 3, H, W)`` uint8 tensor on ``device``."""
    return torch.from_numpy(images.images).permute(0, 3, 1, 2).contiguous().to(device)


class Preprocess:
    """Convert uint8 batches to normalized float at the model's image size."""

    def __init__(self, image_size: int, device: torch.device | str = "cpu") -> None:
        self.image_size = image_size
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 3, h, w) uint8 -> (N, 3, S, S) float32 normalized, channels_last
        x = x.float()
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator, padded: bool = False
) -> torch.Tensor:
    """Randomly crop (zero padding of 4) and flip a uint8 batch, per image, by index gather.

    With ``padded``, ``x`` already carries its 4-pixel border (padding the dataset once).
    """
    if not padded:
        x = F.pad(x, (PAD, PAD, PAD, PAD))
    n, _, hp, wp = x.shape
    h, w = hp - 2 * PAD, wp - 2 * PAD
    dev = x.device
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=generator).to(dev)
    flip = (torch.rand(n, generator=generator) < 0.5).to(dev)
    rows = dy[:, None] + torch.arange(h, device=dev)  # (N, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # (N, w)
    batch = torch.arange(n, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, h, w, 3)
    return out.permute(0, 3, 1, 2)


class Batches:
    """Iterate over a uint8 image tensor in batches, optionally shuffled and augmented."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        preprocess: Preprocess,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> None:
        if augment and generator is None:
            raise ValueError("augmentation needs a generator")
        # Augmented sets are padded once here rather than batch by batch.
        self.images = F.pad(images, (PAD, PAD, PAD, PAD)) if augment else images
        self.labels = labels
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.generator = generator
        self.augment = augment
        self.drop_last = drop_last

    @classmethod
    def of(
        cls,
        part: ImageSet,
        batch_size: int,
        preprocess: Preprocess,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> Batches:
        """Batch an image set on the device ``preprocess`` runs on."""
        dev = preprocess.mean.device
        labels = torch.from_numpy(part.labels).to(dev)
        return cls(
            to_tensor(part, dev), labels, batch_size, preprocess, generator, augment, drop_last
        )

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.generator is not None:
            order = torch.randperm(n, generator=self.generator).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = random_crop_flip(x, self.generator, padded=True)
            yield self.preprocess(x), self.labels[idx]
