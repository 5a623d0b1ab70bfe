"""Seeded train / val / test splits (the study's 45,000 / 5,000 / 10,000 on CIFAR-10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .images import DataError, ImageSet
from .sources import Source


@dataclass
class Splits:
    """The three parts of a source, ready for the pipeline."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def get(self, name: str) -> ImageSet:
        if name == "all":
            parts = [self.train, self.val, self.test]
            return ImageSet(
                np.concatenate([p.images for p in parts]),
                np.concatenate([p.labels for p in parts]),
                self.classes,
            )
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be one of train, val, test, all; got {name!r}")
        return getattr(self, name)


def split_source(
    source: Source,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int | None = None,
) -> Splits:
    """Split a source's training images into train / val (and test when it has none)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    pool = source.train
    order = np.random.default_rng(seed).permutation(len(pool))
    n_val = max(1, round(val_fraction * len(pool)))
    val, rest = order[:n_val], order[n_val:]
    if source.test is not None:
        test = source.test
    else:
        if not 0.0 < test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"test_fraction must lie in (0, 1 - val_fraction), got {test_fraction}"
            )
        n_test = max(1, round(test_fraction * len(pool)))
        test, rest = pool.subset(rest[:n_test]), rest[n_test:]
    if len(rest) == 0:
        raise DataError(f"{source.name} has too few images ({len(pool)}) to split")
    if train_subset is not None:
        if train_subset < 1:
            raise ValueError(f"train_subset must be positive, got {train_subset}")
        # A seeded subset: the first N of the shuffled training indices.
        rest = rest[: min(train_subset, len(rest))]
    return Splits(pool.subset(np.sort(rest)), pool.subset(np.sort(val)), test, pool.classes)
