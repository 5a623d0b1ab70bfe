"""Training throughput of squeezenet1_0 at 64x64, batch 64: squeezelab vs the classic pipeline.

Prints one JSON object:
  squeezelab_img_s  squeezelab's whole pipeline with default settings (batched tensor
                    augmentation, channels_last, precision "auto")
  classic_img_s     the study's pipeline: torchvision transforms on PIL images in a
                    DataLoader, float32, contiguous
  compute_img_s     pure model compute with squeezelab's settings (batches already in memory)

Usage: python benchmarks/train_throughput.py [--data SOURCE] [--steps N] [--warmup N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

from squeezelab.data import Augment, Batches, Preprocess, load_source, split_source, to_tensor
from squeezelab.data.pipeline import MEAN, STD
from squeezelab.models import get_model
from squeezelab.training.runtime import resolve_precision
from squeezelab.training.step import sgd, train_step

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg/train.tar.gz"


def default_data() -> str:
    """The shared CIFAR-10 JPEG set beside the repository, else synthetic data (said so)."""
    if DEFAULT_DATA.exists():
        return str(DEFAULT_DATA)
    print(f"note: {DEFAULT_DATA} not found: timing on synthetic data", file=sys.stderr)
    return "synthetic"


class PilDataset(torch.utils.data.Dataset):
    """The classic way: one PIL image at a time through torchvision transforms."""

    def __init__(self, images, labels, image_size: int) -> None:
        self.images, self.labels = images, labels
        self.transform = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.Resize(image_size),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def time_steps(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    precision: str,
    steps: int,
    warmup: int,
) -> float:
    """Return images/s over ``steps`` training steps after ``warmup`` untimed ones."""
    dev = torch.device("cpu")
    opt = sgd(model.parameters(), dev, lr=0.01, momentum=0.9)
    model.train()
    times, seen = [], 0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        x, y = next(batches)
        train_step(model, opt, x, y, precision, dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            seen += len(y)
    return seen / sum(times), statistics.median(times)


def forever(make: callable) -> Iterator:
    while True:
        yield from make()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        help="data source (default: the shared CIFAR-10 JPEG set when present, else synthetic "
        "data, said on stderr)",
    )
    parser.add_argument("--steps", type=int, default=60, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=15, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    parser.add_argument("--image-size", type=int, default=64, help="side after the resize")
    args = parser.parse_args()

    data = args.data or default_data()
    splits = split_source(load_source(data, progress=False))
    precision = resolve_precision("auto", torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    pre = Preprocess(args.image_size)
    images, labels = to_tensor(splits.train), torch.from_numpy(splits.train.labels)

    def squeezelab_batches() -> Iterator:
        return iter(Batches(images, labels, args.batch_size, pre, gen, augment=Augment()))

    torch.manual_seed(0)
    model = get_model("squeezenet1_0", num_classes=10).to(memory_format=torch.channels_last)
    fixed = next(squeezelab_batches())
    compute = time_steps(model, forever(lambda: [fixed]), precision, args.steps, args.warmup)
    ours = time_steps(model, forever(squeezelab_batches), precision, args.steps, args.warmup)

    loader = torch.utils.data.DataLoader(
        PilDataset(splits.train.images, splits.train.labels, args.image_size),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=0,
    )
    torch.manual_seed(0)
    classic_model = get_model("squeezenet1_0", num_classes=10)
    classic = time_steps(classic_model, forever(lambda: loader), "fp32", args.steps, args.warmup)

    print(
        json.dumps(
            {
                "squeezelab_img_s": round(ours[0], 1),
                "classic_img_s": round(classic[0], 1),
                "compute_img_s": round(compute[0], 1),
                "speedup_vs_classic": round(ours[0] / classic[0], 2),
                "fraction_of_compute": round(ours[0] / compute[0], 3),
                "precision": precision,
                "batch_size": args.batch_size,
                "image_size": args.image_size,
                "steps": args.steps,
                "threads": torch.get_num_threads(),
                "data": data,
            }
        )
    )


if __name__ == "__main__":
    main()
