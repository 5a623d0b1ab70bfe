"""Deep Compression as a pipeline on a user's checkpoint: prune, fine-tune, share, fine-tune,
Huffman-code, write, read back and verify.

``--finetune-epochs E`` fine-tunes E epochs with the pruning masks fixed, then E epochs of
centroid updates after weight sharing (the paper's retrain steps), when ``--data`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import get_model, load_weights_into
from ..storage import local_run
from ..training.checkpoint import CheckpointError, load_weights
from ..training.layout import CHECKPOINT, CONFIG, MODEL
from .prune import (
    ALEXNET_PAPER_KEPT,
    SCOPES,
    apply_masks,
    check_sparsity,
    magnitude_masks,
    make_permanent,
    prunable,
    sparsity_of,
)
from .share import check_bits, freeze_shared, share_weights
from .storage import read_compressed, write_compressed

INDEX_BIT_CHOICES = (2, 3, 4, 5, 6, 8)
PROFILES = ("uniform", "paper-alexnet")


@dataclass
class Loaded:
    """A model to compress, with what is known of how it was trained."""

    model: nn.Module
    name: str
    num_classes: int
    options: dict[str, Any]
    image_size: int
    data: str | None
    config: Any = None
    classes: list[str] = field(default_factory=list)  # a run's class names, label order


def load_source_model(source: str, model: str | None = None, image_size: int = 64) -> Loaded:
    """Load a squeezelab run directory (a folder, or one in storage: ``s3://.../KEY``), or a
    state-dict file with ``model`` naming it."""
    with local_run(source) as path:
        return _load_local(path, source, model, image_size)


def _load_local(path: Path, source: str, model: str | None, image_size: int) -> Loaded:
    if path.name in (MODEL, CHECKPOINT) and (path.parent / CONFIG).is_file():
        path = path.parent  # a file squeezelab wrote in a run directory: use the whole run
    if path.is_dir():
        from ..training.evaluation import load_run_model

        net, cfg, n, classes = load_run_model(path)
        return Loaded(
            net, cfg.model, n, cfg.model_options(), cfg.image_size, cfg.data, cfg, classes
        )
    if not path.is_file():
        raise CheckpointError(f"{source} is neither a run directory nor a weights file")
    if model is None:
        raise ValueError(f"{source} is a weights file: name its architecture with --model")
    state = load_weights(path)
    head = [k for k in state if k.endswith("weight")][-1]
    n = int(state[head].shape[0])
    net = get_model(model, num_classes=n)
    load_weights_into(net, state, f"{source} (as {model})")
    return Loaded(net, model, n, {}, image_size, None)


def layer_settings(
    model: nn.Module, sparsity: float, bits: int, profile: str, fc_bits: int | None
) -> tuple[float | dict[str, float], dict[str, int], dict[str, int]]:
    """Per-layer sparsity, weight bits and index bits (0: pick the smallest encoding).

    ``uniform``: the given sparsity and bits everywhere. ``paper-alexnet``: Deep Compression's
    AlexNet settings (Table 4 kept fractions; 8-bit weights and relative indices in conv
    layers, 5-bit in fully connected ones).
    """
    layers = prunable(model)
    if profile == "paper-alexnet":
        if set(layers) != set(ALEXNET_PAPER_KEPT):
            raise ValueError("the paper-alexnet profile applies to alexnet only")
        bits_of = {n: 8 if isinstance(m, nn.Conv2d) else 5 for n, m in layers.items()}
        return {n: 1.0 - kept for n, kept in ALEXNET_PAPER_KEPT.items()}, bits_of, bits_of
    bits_of = {
        n: (fc_bits if fc_bits and isinstance(m, nn.Linear) else bits) for n, m in layers.items()
    }
    return sparsity, bits_of, {n: 0 for n in layers}


def dense_bytes(model: nn.Module) -> int:
    """Bytes of the model's float32 state (weights, biases, batch-norm statistics)."""
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())


def compress(
    source: str,
    out: str | Path,
    sparsity: float = 0.67,
    bits: int = 6,
    *,
    model: str | None = None,
    data: str | None = None,
    finetune_epochs: int = 0,
    finetune_lr: float = 0.01,
    scope: str = "per_layer",
    profile: str = "uniform",
    fc_bits: int | None = None,
    image_size: int = 64,
    data_dir: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Compress a checkpoint into ``out``; return sizes, ratio and accuracies."""
    check_sparsity(sparsity)
    check_bits(bits)
    if fc_bits is not None:
        check_bits(fc_bits)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    src = load_source_model(source, model, image_size)
    if data is None and src.config is not None:
        data = src.config.data  # a run's own data: its accuracies and fine-tuning images
    if finetune_epochs and data is None:
        raise ValueError("--finetune-epochs needs --data: a loose weights file records no data set")
    net = src.model
    tuner = None
    if data is not None:
        from .finetune import Tuner

        tuner = Tuner(src, data, data_dir, device)
    result: dict[str, Any] = {"dense_bytes": dense_bytes(net), "model": src.name}
    result["accuracy_before"] = tuner.accuracy(net) if tuner else None
    layer_sparsity, layer_bits, index_bits = layer_settings(net, sparsity, bits, profile, fc_bits)
    masks = magnitude_masks(net, layer_sparsity, scope)
    apply_masks(net, masks, fixed=True)
    if tuner and finetune_epochs:
        tuner.fit(net, finetune_epochs, finetune_lr, "fine-tune after pruning")
    make_permanent(net)
    result["accuracy_pruned"] = tuner.accuracy(net) if tuner else None
    share_weights(net, layer_bits)
    if tuner and finetune_epochs:
        tuner.fit(net, finetune_epochs, finetune_lr, "fine-tune shared weights")
    freeze_shared(net)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    sparse = {
        f"{n}.weight": (b, index_bits.get(n) or best_index_bits(state[f"{n}.weight"], b))
        for n, b in layer_bits.items()
    }
    meta = {"model": src.name, "num_classes": src.num_classes, "options": src.options,
            "image_size": src.image_size}  # fmt: skip
    if src.config is not None:  # a run's: `evaluate model.sqzc` splits its data as it did
        meta["config"] = src.config.to_dict()
        meta["classes"] = src.classes
    size = write_compressed(out, state, sparse, meta)
    restored = load_compressed(out)
    result.update(
        compressed_bytes=size,
        ratio=result["dense_bytes"] / size,
        sparsity=sparsity_of(net),
        bits=bits if profile == "uniform" else layer_bits,
        scope=scope,
        profile=profile,
        index_bits={k: ib for k, (_, ib) in sparse.items()},
        roundtrip_max_abs_diff=_max_diff(net, restored, src.image_size),
        accuracy_after=tuner.accuracy(restored) if tuner else None,
        out=str(out),
    )
    return result


def best_index_bits(weight: torch.Tensor, bits: int) -> int:
    """Pick the relative-index width that makes this layer's encoding smallest."""
    from .storage import encode_layer

    return min(INDEX_BIT_CHOICES, key=lambda ib: sum(encode_layer(weight, bits, ib)[0]["sizes"]))


def load_compressed(path: str | Path) -> nn.Module:
    """Rebuild a working model from a compressed file."""
    return _rebuild(*read_compressed(path), str(path))


def load_compressed_run(path: str | Path) -> Loaded:
    """A compressed file read once, as what it was compressed from: its model, and, when it
    came from a run, that run's config and class names (its header keeps them)."""
    state, meta = read_compressed(path)
    config = None
    if meta.get("config"):
        from ..training.config import from_dict

        config = from_dict(meta["config"], f"{path} (its run's config)")
    return Loaded(
        _rebuild(state, meta, str(path)),
        meta["model"],
        meta["num_classes"],
        meta["options"],
        meta["image_size"],
        config.data if config else None,
        config,
        list(meta.get("classes") or []),
    )


def _rebuild(state: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> nn.Module:
    """The model a compressed file's header names, its tensors checked against it."""
    model = get_model(meta["model"], num_classes=meta["num_classes"], **meta["options"])
    load_weights_into(model, state, f"{source} ({meta['model']})")
    return model.eval()


def load_for_inference(
    source: str, model: str | None = None, image_size: int = 64, data_dir: str | None = None
) -> tuple[nn.Module, int, list[torch.Tensor], str]:
    """(model, image size, calibration batches, what they are) of a run, a ``.sqzc`` or a
    state-dict file. A run, and a ``.sqzc`` compressed from one (its header keeps the run's
    config), calibrate on the run's own validation images; a loose weights file on seeded
    noise, and the description says which."""
    from .export import calibration_batches

    if str(source).endswith(".sqzc"):
        src = load_compressed_run(source)
    else:
        src = load_source_model(source, model, image_size)
    net, size, config = src.model, src.image_size, src.config
    if config is None:
        noise = "seeded noise (no data is known for a weights file): agreement on noise only"
        return net, size, calibration_batches(size), noise
    from ..data import Batches
    from ..training.loop import load_splits, preprocess_of

    val = load_splits(config, data_dir).val
    batches = Batches.of(val, 256, preprocess_of(config.replace(image_size=size)))
    what = f"validation images of {config.data} ({len(val):,})"
    return net, size, calibration_batches(size, batches), what


def _max_diff(a: nn.Module, b: nn.Module, image_size: int) -> float:
    x = torch.randn(4, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    a.eval()
    with torch.no_grad():
        return float((a.cpu()(x) - b(x)).abs().max())
