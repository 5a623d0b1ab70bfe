"""Initialize a model from torchvision's ImageNet weights, a .pth file or a squeezelab run.

Parameters whose shape matches are copied; a classifier whose class count differs keeps its
fresh initialization (the study's objective 5, transfer learning).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

from ..storage import local_run
from .checkpoint import CheckpointError, load_weights


def imagenet_weights(model_name: str) -> dict[str, torch.Tensor]:
    """Fetch torchvision's published ImageNet weights for ``model_name`` (needs a network)."""
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(model_name).DEFAULT
    except (ValueError, KeyError):
        raise CheckpointError(
            f"torchvision publishes no ImageNet weights for {model_name!r}"
        ) from None
    try:
        # torch.hub announces "Downloading ..." even when offline; our error says what matters.
        with contextlib.redirect_stderr(io.StringIO()):
            return weights.get_state_dict(progress=False)
    except Exception as err:
        raise CheckpointError(
            f"could not download torchvision's ImageNet weights for {model_name} ({err}). "
            f"Download {weights.url} elsewhere and pass its path: --init PATH.pth"
        ) from None


def init_from(model: nn.Module, source: str, model_name: str) -> list[str]:
    """Copy matching weights from ``source`` into ``model``; return the re-initialized keys."""
    if source == "imagenet":
        state = imagenet_weights(model_name)
    else:  # a run folder in storage (a transfer study's source model) is fetched first
        with local_run(source) as path:
            state = load_weights(path)
    own = model.state_dict()
    matched, reinit = {}, []
    for key, value in own.items():
        theirs = state.get(key)
        if theirs is not None and theirs.shape == value.shape:
            matched[key] = theirs
        else:
            reinit.append(key)
    unexpected = sorted(set(state) - set(own))
    if not matched:
        raise CheckpointError(
            f"no weights of {source} fit {model_name}: is it a checkpoint of another model?"
        )
    head = set(list(own)[-2:])  # the final layer's weight and bias
    trunk_missing = [k for k in reinit if k not in head and not _is_addition(k)]
    if trunk_missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit {model_name}: missing or mis-shaped "
            f"{trunk_missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(matched, strict=False)
    head_reinit = [k for k in reinit if not _is_addition(k)]
    if head_reinit:
        warnings.warn(
            f"{source}: re-initialized {', '.join(head_reinit)} (the class count differs)",
            stacklevel=2,
        )
    return reinit


def _is_addition(key: str) -> bool:
    """Tensors an ablation adds to the torchvision layout (BN in Fire, bypass convs)."""
    return ".squeeze_bn." in key or ".bypass." in key
