"""One optimizer step: forward under autocast, loss in float32, backward, update.

The training loop, compression fine-tuning and the throughput benchmarks all step through
:func:`train_step`, so a change to how a step is taken (a scaler, a loss) lands everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from .runtime import autocast


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    device: torch.device,
    *,
    label_smoothing: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Take one step on batch ``(x, y)``; return (loss, logits), detached, on the device.

    Nothing here waits for the device: reading the loss is left to the caller.
    """
    with autocast(precision, device):
        logits = model(x)
    loss = nn.functional.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), logits.detach()
