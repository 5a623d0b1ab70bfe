"""Learning-rate schedules: step, plateau, linear decay (the paper's), cosine, one-cycle.

All but plateau are stepped once per optimizer step; plateau once per epoch on val loss.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from .config import RunConfig

Scheduler = LRScheduler | ReduceLROnPlateau


def build_scheduler(cfg: RunConfig, optimizer: Optimizer, steps_per_epoch: int) -> Scheduler:
    """Return the scheduler ``cfg.scheduler`` names, sized for the whole run."""
    total = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "plateau":
        # Halve the LR when val loss has not improved for `plateau_patience` epochs.
        return ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    if cfg.scheduler == "onecycle":
        return OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.25, cycle_momentum=False
        )
    warmup = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return warm * _main_factor(cfg, step, steps_per_epoch, total)

    return LambdaLR(optimizer, factor)


def _main_factor(cfg: RunConfig, step: int, steps_per_epoch: int, total: int) -> float:
    progress = min(step / total, 1.0)
    if cfg.scheduler == "step":
        return cfg.step_gamma ** ((step // steps_per_epoch) // cfg.step_size)
    if cfg.scheduler == "linear":
        return 1.0 - progress
    if cfg.scheduler == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def steps_per_iteration(scheduler: Scheduler) -> bool:
    """Whether the scheduler advances every optimizer step (else once per epoch)."""
    return not isinstance(scheduler, ReduceLROnPlateau)


def current_lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
