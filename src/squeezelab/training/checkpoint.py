"""Checkpoints as single safetensors files, written atomically; nothing is ever unpickled.

A checkpoint holds the model's state, the optimizer's tensors, every RNG state (as uint8
tensors) and, in the string metadata, the epoch, optimizer hyper-parameters, scheduler state
and the metrics history as JSON. It is written to a temporary file then renamed, so a kill at
any moment leaves either the previous checkpoint or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import SqueezelabError
from ..fileio import atomic_path
from .layout import RESULT

FORMAT = "squeezelab-checkpoint-v1"


class CheckpointError(SqueezelabError, RuntimeError):
    """A checkpoint or weights file is missing, truncated or not squeezelab's."""


@dataclass
class TrainingState:
    """What a run needs to continue exactly where it stopped."""

    epoch: int  # epochs completed
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    scaler: dict[str, Any] | None = None
    ema: dict[str, torch.Tensor] | None = None  # the weight average, when the run keeps one


def save_checkpoint(path: str | os.PathLike[str], state: TrainingState) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.items()}
    opt_meta: dict[str, Any] = {"param_groups": state.optimizer["param_groups"], "state": {}}
    for pid, pstate in state.optimizer["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                opt_meta["state"].setdefault(str(pid), {})[key] = value
    for name, value in state.rng.items():
        tensors[f"rng.{name}"] = value.cpu().contiguous()
    for name, value in (state.ema or {}).items():
        tensors[f"ema.{name}"] = value.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "epoch": str(state.epoch),
        "optimizer": json.dumps(opt_meta),
        "scheduler": json.dumps(_jsonable(state.scheduler)),
        "history": json.dumps(state.history),
        "scaler": json.dumps(state.scaler),
    }
    save_atomic(tensors, path, metadata)


def save_atomic(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike[str], metadata: dict[str, str]
) -> None:
    """Write a safetensors file with a checksum, atomically (temporary file, fsync, rename)."""
    path = Path(path)
    metadata = {**metadata, "sha256": checksum(tensors, metadata)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, and the other metadata."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for key in sorted(k for k in metadata if k != "sha256"):
        h.update(f"{key}={metadata[key]}|".encode())
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike[str]) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    path = Path(path)
    tensors, metadata = _read(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a squeezelab checkpoint (no {FORMAT} marker)")
    try:
        opt_meta = json.loads(metadata["optimizer"])
        optimizer: dict[str, Any] = {"param_groups": opt_meta["param_groups"], "state": {}}
        for pid, extra in opt_meta["state"].items():
            optimizer["state"][int(pid)] = dict(extra)
        model, rng, ema = {}, {}, {}
        for key, value in tensors.items():
            group, _, rest = key.partition(".")
            if group == "model":
                model[rest] = value
            elif group == "rng":
                rng[rest] = value
            elif group == "ema":
                ema[rest] = value
            elif group == "optimizer":
                pid, _, name = rest.partition(".")
                optimizer["state"].setdefault(int(pid), {})[name] = value
        return TrainingState(
            epoch=int(metadata["epoch"]),
            model=model,
            optimizer=optimizer,
            scheduler=json.loads(metadata["scheduler"]),
            rng=rng,
            history=json.loads(metadata["history"]),
            scaler=json.loads(metadata.get("scaler", "null")),
            ema=ema or None,
        )
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: malformed checkpoint metadata ({err})") from None


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load model weights from a run directory, a checkpoint, a .safetensors or a .pth file."""
    path = Path(path)
    if path.is_dir():
        result = path / RESULT
        if result.is_file() and json.loads(result.read_text()).get("diverged"):
            raise CheckpointError(
                f"the run in {path} diverged (non-finite loss): it has no usable weights"
            )
        for name in ("model.safetensors", "checkpoint.safetensors"):
            if (path / name).is_file():
                return load_weights(path / name)
        raise CheckpointError(f"{path} holds no model.safetensors or checkpoint.safetensors")
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix in (".pth", ".pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"cannot read {path} as a state dict: {err}") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(f"{path} is not a state dict of tensors")
        return state
    tensors, metadata = _read(path)
    if metadata.get("format") == FORMAT:
        return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    return tensors


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt): {err}"
        ) from None
    # Files written before checksums existed carry none and are read as they are.
    if "sha256" in metadata and checksum(tensors, metadata) != metadata["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its contents do not match their checksum"
        )
    return tensors, metadata


def _jsonable(value: Any) -> Any:
    """Drop what JSON cannot hold (e.g. LambdaLR's lambda placeholders stay None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None
