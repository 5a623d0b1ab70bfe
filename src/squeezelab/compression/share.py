"""Weight sharing by k-means (Deep Compression, section 3).

Each layer's surviving weights are clustered into ``2**bits`` centroids, initialized linearly
between the smallest and largest weight (the paper's best initialization). During fine-tuning
a layer's weight is ``centroids[index] * mask``: autograd gathers the gradients of each
cluster's weights into its centroid (the paper's centroid update), averaged over the cluster
so that the learning rate keeps its meaning.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .prune import prunable


def check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}")


def kmeans_1d(values: torch.Tensor, k: int, iters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster 1-D ``values`` into ``k`` centroids (linear init); return (centroids, index)."""
    lo, hi = float(values.min()), float(values.max())
    centroids = torch.linspace(lo, hi, k, dtype=torch.float64)
    x = values.double()
    index = torch.zeros_like(x, dtype=torch.long)
    for _ in range(iters):
        # Nearest centroid of sorted centroids: compare with midpoints.
        order = torch.argsort(centroids)
        c = centroids[order]
        index = order[torch.bucketize(x, (c[1:] + c[:-1]) / 2)]
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, index, x)
        counts = torch.bincount(index, minlength=k)
        moved = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.allclose(moved, centroids):
            break
        centroids = moved
    return centroids.float(), index


class SharedWeight(nn.Module):
    """A parametrization: the weight is ``centroids[index]``, zero where pruned."""

    index: torch.Tensor
    mask: torch.Tensor
    counts: torch.Tensor

    def __init__(self, centroids: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        self.centroids = nn.Parameter(centroids)
        self.register_buffer("index", index)
        self.register_buffer("mask", mask)
        alive = index[mask.bool()]
        self.register_buffer("counts", torch.bincount(alive, minlength=len(centroids)).float())
        # Autograd sums the gradients of a cluster's weights (the paper's update); dividing by
        # the cluster size moves a centroid as plain SGD would move each of its weights.
        self.centroids.register_hook(lambda grad: grad / self.counts.clamp(min=1.0))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return self.centroids[self.index] * self.mask


def share_weights(model: nn.Module, bits: int | dict[str, int]) -> dict[str, SharedWeight]:
    """Cluster every prunable layer's non-zero weights and tie them to their centroids."""
    shared = {}
    for name, m in prunable(model).items():
        b = bits.get(name, 8) if isinstance(bits, dict) else bits
        check_bits(b)
        w = m.weight.detach()
        mask = (w != 0).float()
        alive = w[mask.bool()]
        k = 1 << b
        if alive.numel() == 0:
            centroids, idx = torch.zeros(k), torch.zeros(0, dtype=torch.long)
        else:
            centroids, idx = kmeans_1d(alive, min(k, alive.numel()))
            centroids = torch.cat([centroids, centroids[-1:].expand(k - len(centroids))])
        index = torch.zeros(w.numel(), dtype=torch.long, device=w.device)
        index[mask.flatten().bool()] = idx.to(w.device)
        p = SharedWeight(centroids.to(w.device), index.view_as(w), mask)
        parametrize.register_parametrization(m, "weight", p, unsafe=True)
        shared[name] = p
    return shared


def freeze_shared(model: nn.Module) -> None:
    """Replace the parametrizations by their current weights (plain tensors again)."""
    for m in prunable(model).values():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
