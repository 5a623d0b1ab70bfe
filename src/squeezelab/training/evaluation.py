"""Evaluate a finished run's weights on a split, preprocessing inputs as the run did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..models import get_model, load_weights_into
from .checkpoint import CheckpointError, load_weights
from .config import RunConfig, from_dict
from .layout import CONFIG
from .loop import eval_batches, evaluate, load_splits, preprocess_of
from .runtime import pick_device, resolve_precision


def load_run_model(run_dir: str | Path) -> tuple[torch.nn.Module, RunConfig, int, list[str]]:
    """Rebuild a run's model with its final weights; return (model, config, class count, class
    names in label order: empty for a run stored before they were recorded)."""
    run = Path(run_dir)
    if not (run / CONFIG).is_file():
        raise CheckpointError(f"{run} is not a squeezelab run directory (no config.json)")
    recipe = json.loads((run / CONFIG).read_text())
    cfg = from_dict(recipe["config"], str(run))
    weights = load_weights(run)
    n = recipe["num_classes"]
    model = get_model(cfg.model, num_classes=n, **cfg.model_options())
    load_weights_into(model, weights, f"run {run}'s weights")
    return model, cfg, n, list(recipe.get("classes") or [])


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Return ``{"accuracy", "loss", "n"}`` of a run's final weights on ``split``."""
    model, cfg, num_classes, trained = load_run_model(run_dir)
    return evaluate_model(model, cfg, num_classes, trained, data, split, data_dir, device)


def evaluate_model(
    model: torch.nn.Module,
    cfg: RunConfig,
    num_classes: int,
    trained: list[str],
    data: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (trained as ``cfg`` on ``trained`` classes, when known) on a split
    of ``cfg.data`` (or ``data``), preprocessed as the run was: a run's weights, a compressed
    model's, the same output."""
    if data is not None:
        cfg = cfg.replace(data=data)
    # Evaluate on every image of the split, not a training subset.
    splits = load_splits(cfg.replace(train_subset=None), data_dir)
    if splits.num_classes != num_classes:
        raise ConfigError(
            f"{data or cfg.data} has {splits.num_classes} classes, the model {num_classes}"
        )
    if trained and list(splits.classes) != list(trained):
        differ = [f"{i}: {a} / {b}" for i, (a, b) in enumerate(zip(trained, splits.classes))
                  if a != b]  # fmt: skip
        raise ConfigError(
            f"{data or cfg.data}'s classes are not the ones the run learned, in its label "
            f"order (label: run's / data's: {', '.join(differ[:4])}"
            f"{' ...' if len(differ) > 4 else ''}): its scores would count against the wrong "
            "labels"
        )
    part = splits.get(split)
    dev = pick_device(device)
    model = model.to(dev, memory_format=torch.channels_last)  # type: ignore[call-overload]
    batches = eval_batches(part, cfg, preprocess_of(cfg, dev))
    loss, acc, n = evaluate(
        model, batches, dev, resolve_precision(cfg.precision, dev), cfg.tta_flip
    )
    return {"accuracy": acc, "loss": loss, "n": n}
