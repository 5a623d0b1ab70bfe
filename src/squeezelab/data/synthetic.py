"""A generated 10-class image dataset, shipped as code, for offline demos and tests.

Each class is an oriented sinusoidal grating with its own colour and frequency, placed at a
random phase and contrast with noise: learnable by a small convnet in one epoch, not trivial
(no single pixel gives the class away).
"""

from __future__ import annotations

import numpy as np

from .images import ImageSet

SYNTHETIC_CLASSES = [f"pattern{i}" for i in range(10)]


def make_synthetic(n: int, seed: int = 0, size: int = 32) -> ImageSet:
    """Generate ``n`` images of 10 classes, deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angles = np.linspace(0, np.pi, 5, endpoint=False)
    palette = np.array(
        [[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1], [1, 1, 0.2], [0.2, 1, 1]], np.float32
    )
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        angle = angles[label % 5] + rng.normal(0, 0.1)
        freq = 3.0 if label < 5 else 6.0
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        colour = palette[(label + label // 5) % 5]
        img = 0.5 + 0.4 * rng.uniform(0.6, 1.0) * wave[..., None] * colour
        img += rng.normal(0, 0.08, img.shape)
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), list(SYNTHETIC_CLASSES))
