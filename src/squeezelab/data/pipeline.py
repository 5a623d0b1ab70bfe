"""Batched tensor augmentation on the training device (no per-image PIL work).

The default reading of the study's augmentation ("randomly cropped, resized to 64x64, and
randomly flipped horizontally before each use"): random crop with 4 pixels of zero padding,
resize to the training size (64 by default), horizontal flip, then normalization. Images stay
uint8 on the device; each batch is gathered, cropped by index, flipped, interpolated and
normalized in one go.

Other readings of the same words are run fields (``augmentation``, ``crop_scale``,
``eval_transform``, ``normalization``), one :class:`Augment` and one :class:`Preprocess`:

- ``random-resized-crop``: torchvision's ``RandomResizedCrop(size, scale=(crop_scale, 1))``
  (area fraction and aspect ratio 3/4-4/3 drawn per image, ten tries, else the whole image),
  then flip; crop and resize are one bilinear resampling (``grid_sample``).
- ``resize-then-crop``: resize to ``size / 0.875`` first (ImageNet's 256 -> 224 ratio), then
  a random ``size`` crop and flip.
- evaluation under the training transforms (``eval_transform = "train"``): validation and
  test batches get the same random transforms, drawn from a fixed seed at every pass, so
  evaluating a model twice gives the same accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .images import ImageSet

# ImageNet statistics: torchvision's published weights expect them (transfer learning).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# The named normalizations (mean, std of pixel values in [0, 1]); "none" is ToTensor alone.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (MEAN, STD),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
AUGMENTATIONS = ("pad-crop", "random-resized-crop", "resize-then-crop")
PAD = 4
RESIZE_RATIO = 0.875  # resize-then-crop: crop side / resized side (256 -> 224)
EVAL_SEED = 0  # the fixed seed of evaluation under the training transforms
_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect-ratio range
_TRIES = 10


def to_tensor(images: ImageSet, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return the images as a ``(N, 3, H, W)`` uint8 tensor on ``device``."""
    return torch.from_numpy(images.images).permute(0, 3, 1, 2).contiguous().to(device)


class Preprocess:
    """Convert uint8 batches to normalized float at the model's image size."""

    def __init__(
        self, image_size: int, device: torch.device | str = "cpu", normalization: str = "imagenet"
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}"
            )
        mean, std = NORMALIZATIONS[normalization]
        self.image_size = image_size
        self.normalization = normalization
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # (N, 3, h, w) uint8 (or float on the 0-255 scale) -> (N, 3, S, S) float32 normalized
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


def crop_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """RandomResizedCrop's boxes for ``n`` images: ``(n, 4)`` integer (top, left, h, w).

    Per image, up to ten draws of an area fraction in ``scale`` and a log-uniform aspect ratio
    in 3/4-4/3; the first box that fits is kept, else the whole image (torchvision's fallback
    for a ratio inside the range, which a square image's is).
    """
    area = height * width
    frac = torch.empty(n, _TRIES).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, _TRIES).uniform_(
        math.log(_RATIO[0]), math.log(_RATIO[1]), generator=generator
    )
    ratio = torch.exp(log_r)
    w = torch.round(torch.sqrt(area * frac * ratio))
    h = torch.round(torch.sqrt(area * frac / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    pick = first.clamp(min=0)
    h = torch.where(first >= 0, h[rows, pick], torch.full((n,), float(height)))
    w = torch.where(first >= 0, w[rows, pick], torch.full((n,), float(width)))
    top = torch.floor(torch.rand(n, generator=generator) * (height - h + 1))
    left = torch.floor(torch.rand(n, generator=generator) * (width - w + 1))
    return torch.stack([top, left, h, w], 1).long()


def resample(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image to its box and resize it to ``size`` (bilinear, as torchvision's
    ``resized_crop`` without antialiasing: samples never reach outside the box), mirrored
    where ``flip``; one ``grid_sample`` for the batch. Returns float on the 0-255 scale."""
    n, _, height, width = x.shape
    dev = x.device
    top, left, h, w = (boxes[:, i].to(dev, torch.float32)[:, None] for i in range(4))
    centre = torch.arange(size, device=dev, dtype=torch.float32)[None, :] + 0.5

    def coords(start: torch.Tensor, extent: torch.Tensor, side: int) -> torch.Tensor:
        # half-pixel centres of the output in the box, clamped to its edge pixels
        pos = (start + centre * extent / size - 0.5).clamp(start, start + extent - 1)
        return (2 * pos + 1) / side - 1  # grid_sample's [-1, 1], align_corners=False

    ys = coords(top, h, height)  # (N, size)
    xs = coords(left, w, width)
    xs = torch.where(flip.to(dev)[:, None], xs.flip(1), xs)
    grid = torch.stack(
        [xs[:, None, :].expand(n, size, size), ys[:, :, None].expand(n, size, size)], -1
    )
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)  # fmt: skip


@dataclass(frozen=True)
class Augment:
    """One reading of the study's random crop, resize and flip, applied to a uint8 batch."""

    kind: str = "pad-crop"
    scale: float = 0.08  # random-resized-crop: the smallest crop's fraction of the image's area

    def __post_init__(self) -> None:
        if self.kind not in AUGMENTATIONS:
            raise ValueError(
                f"augmentation must be one of {', '.join(AUGMENTATIONS)}; got {self.kind!r}"
            )
        if not 0 < self.scale <= 1:
            raise ValueError(f"crop scale must lie in (0, 1]; got {self.scale!r}")

    @property
    def pads(self) -> bool:
        """Whether the images are padded once before batching (the pad-crop reading)."""
        return self.kind == "pad-crop"

    def __call__(self, x: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
        """Transform a batch (padded already when :attr:`pads`); uint8 for pad-crop (resized
        later by :class:`Preprocess`), float at ``size`` for the others."""
        if self.kind == "pad-crop":
            return random_crop_flip(x, generator, padded=True)
        n, _, height, width = x.shape
        if self.kind == "random-resized-crop":
            boxes = crop_boxes(n, height, width, (self.scale, 1.0), generator)
            flip = torch.rand(n, generator=generator) < 0.5
            return resample(x, boxes, flip, size)
        # resize-then-crop: bilinear resize to size / 0.875, then a random size x size crop
        big = max(size, round(size / RESIZE_RATIO))
        x = F.interpolate(x.float(), size=(big, big), mode="bilinear", align_corners=False)
        top = torch.randint(0, big - size + 1, (n,), generator=generator)
        left = torch.randint(0, big - size + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        side = torch.full((n,), size)
        boxes = torch.stack([top, left, side, side], 1)
        return resample(x, boxes, flip, size)


class Batches:
    """Iterate over a uint8 image tensor in batches, optionally shuffled and augmented.

    ``generator`` draws the order (with ``shuffle``) and the augmentation; ``reseed``, when
    set, restarts the augmentation from that seed at every pass (evaluation under the training
    transforms repeats exactly).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        preprocess: Preprocess,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        drop_last: bool = False,
        shuffle: bool = True,
        reseed: int | None = None,
    ) -> None:
        if augment is not None and generator is None and reseed is None:
            raise ValueError("augmentation needs a generator or a fixed seed")
        # Pad-cropped sets are padded once here rather than batch by batch.
        padded = augment is not None and augment.pads
        self.images = F.pad(images, (PAD, PAD, PAD, PAD)) if padded else images
        self.labels = labels
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.generator = generator
        self.augment = augment
        self.drop_last = drop_last
        self.shuffle = shuffle and generator is not None
        self.reseed = reseed

    @classmethod
    def of(
        cls,
        part: ImageSet,
        batch_size: int,
        preprocess: Preprocess,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        drop_last: bool = False,
        shuffle: bool = True,
        reseed: int | None = None,
    ) -> Batches:
        """Batch an image set on the device ``preprocess`` runs on."""
        dev = preprocess.device
        labels = torch.from_numpy(part.labels).to(dev)
        return cls(
            to_tensor(part, dev),
            labels,
            batch_size,
            preprocess,
            generator,
            augment,
            drop_last,
            shuffle,
            reseed,
        )

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        gen = self.generator
        if self.reseed is not None:
            gen = torch.Generator().manual_seed(self.reseed)
        if self.shuffle and gen is not None:
            order = torch.randperm(n, generator=gen).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment is not None and gen is not None:
                x = self.augment(x, gen, self.preprocess.image_size)
            yield self.preprocess(x), self.labels[idx]
