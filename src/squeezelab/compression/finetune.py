"""Evaluate and fine-tune a model being compressed, on the data it was trained on."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data import Batches
from ..training.config import RunConfig
from ..training.loop import augment_of, eval_batches, evaluate, load_splits, preprocess_of
from ..training.runtime import pick_device, resolve_precision
from ..training.step import sgd, train_step


class Tuner:
    """Holds the data splits and device for accuracy checks and short fine-tunes."""

    def __init__(self, src: Any, data: str, data_dir: str | None, device: str | None) -> None:
        cfg = src.config or RunConfig(model=src.name, image_size=src.image_size)
        # The run's own training subset, if it had one: fine-tuning on more images than the
        # run saw would not compress that run. Validation and test splits do not depend on it.
        self.cfg = cfg.replace(data=data)
        self.splits = load_splits(self.cfg, data_dir)
        if self.splits.num_classes != src.num_classes:
            raise ValueError(
                f"{data} has {self.splits.num_classes} classes, the model {src.num_classes}"
            )
        self.dev = pick_device(device)
        self.precision = resolve_precision(self.cfg.precision, self.dev)
        self.pre = preprocess_of(self.cfg, self.dev)
        self.test, self.val = (
            eval_batches(s, self.cfg, self.pre) for s in (self.splits.test, self.splits.val)
        )

    def accuracy(self, model: nn.Module) -> float:
        """Test accuracy in percent."""
        model.to(self.dev)
        return evaluate(model, self.test, self.dev, self.precision, self.cfg.tta_flip)[1]

    def fit(self, model: nn.Module, epochs: int, lr: float, stage: str = "fine-tune") -> None:
        """Fine-tune with SGD (momentum 0.9), the learning rate decaying from ``lr`` to 0.

        Progress: a bar on a terminal, else one line per epoch on stderr.
        """
        model.to(self.dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = sgd(params, self.dev, lr=lr, momentum=0.9, nesterov=True)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        batches = Batches.of(
            self.splits.train,
            self.cfg.batch_size,
            self.pre,
            gen,
            augment=augment_of(self.cfg),
            drop_last=True,
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(batches))
        for epoch in range(1, epochs + 1):
            t0, total, n = time.perf_counter(), 0.0, 0
            desc = f"{stage} {epoch}/{epochs}"
            for x, y in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None):
                loss, _ = train_step(model, opt, x, y, self.precision, self.dev)
                sched.step()
                total, n = total + float(loss), n + 1
            if not sys.stderr.isatty():
                print(
                    f"{desc}: train_loss {total / max(n, 1):.4f} ({time.perf_counter() - t0:.0f}s)",
                    file=sys.stderr,
                    flush=True,
                )
        model.eval()
