"""Device, precision and random-number handling for a run."""

from __future__ import annotations

import contextlib
import functools
import platform
import random
from pathlib import Path

import numpy as np
import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(requested: str | None = None) -> torch.device:
    """Return ``requested``, else CUDA when present, else the CPU."""
    if requested:
        from .config import ConfigError

        try:
            dev = torch.device(requested)
        except RuntimeError:
            raise ConfigError(
                f"--device {requested!r} is not a device: use cpu, cuda or cuda:N"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"--device {requested}: no CUDA GPU is available here (torch.cuda.is_available() "
                "is False); use --device cpu or leave --device out"
            )
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)"
            )
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def _cpuinfo() -> str:
    """``/proc/cpuinfo``, read once per process ('' where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16_units() -> bool:
    """Whether the CPU has bf16 matrix instructions (AMX or AVX-512 BF16)."""
    flags = _cpuinfo()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_name() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), as a run records it: two
    CPUs of one store can differ in speed by 5x and in what ``auto`` precision means."""
    for line in _cpuinfo().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "cpu"


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``auto`` into what pays on ``device``: bf16 on GPUs and bf16-capable CPUs."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16_units() else "fp32"


def configure_backend(precision: str, device: torch.device) -> None:
    """Fix how a GPU computes, so that a run's numbers do not depend on what runs beside it.

    cuDNN picks its algorithms by heuristics, not by timing (``benchmark`` timing would pick
    differently under a neighbour's load), deterministic ones; fp32 means fp32 (no TF32,
    which the faithful preset's study did not have); mixed precision may use TF32.
    """
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Return the autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(data_generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Capture every RNG state the training loop draws from."""
    state = {"torch": torch.get_rng_state(), "data": data_generator.get_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = s
    return state


def set_rng_state(state: dict[str, torch.Tensor], data_generator: torch.Generator) -> None:
    """Restore the states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    data_generator.set_state(state["data"])
    if torch.cuda.is_available():
        cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run on ``device``: the GPU's free memory, or the host's available
    memory (Linux's MemAvailable); None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
