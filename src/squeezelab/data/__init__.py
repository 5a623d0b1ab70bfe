"""Data sources, seeded splits and the batched augmentation pipeline."""

from .images import DataError, ImageSet
from .pipeline import Augment, Batches, Preprocess, random_crop_flip, to_tensor
from .sources import Source, cache_dir, check_source, load_source
from .splits import Splits, split_source
from .synthetic import make_synthetic

__all__ = [
    "Augment",
    "Batches",
    "DataError",
    "ImageSet",
    "Preprocess",
    "Source",
    "Splits",
    "cache_dir",
    "check_source",
    "load_source",
    "make_synthetic",
    "random_crop_flip",
    "split_source",
    "to_tensor",
]
