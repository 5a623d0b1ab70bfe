"""The run directory: its recipe, atomic JSON writes, and checks before (re)starting a run."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import SqueezelabError
from ..fileio import write_text
from .checkpoint import TrainingState, load_checkpoint
from .config import RunConfig, field_info
from .layout import CHECKPOINT, CONFIG, METRICS_FILE, MODEL, RESULT  # noqa: F401  (re-exported)
from .runtime import cpu_name


class RunDirError(SqueezelabError, RuntimeError):
    """A run directory holds another run, or a finished one was asked to start again."""


@contextlib.contextmanager
def lock_dir(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` while training into ``out``: a second writer fails at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (not POSIX: no lock)
        yield
        return
    with open(out / ".lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunDirError(
                f"{out} is being trained into by {holder}; wait for it to finish, or choose "
                "another --out"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def prepare_dir(out: Path, cfg: RunConfig, resume: bool) -> TrainingState | None:
    """Create ``out``, or with ``resume`` return its last checkpoint's state (None if none)."""
    if (out / CHECKPOINT).is_file() or (out / RESULT).is_file():
        if not resume:
            raise RunDirError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        check_same_run(out, cfg)
        return load_checkpoint(out / CHECKPOINT) if (out / CHECKPOINT).is_file() else None
    out.mkdir(parents=True, exist_ok=True)
    return None


def check_same_run(out: Path, cfg: RunConfig) -> None:
    """Refuse to resume a directory that holds a run of another config."""
    path = out / CONFIG
    if not path.is_file():
        return
    stored = json.loads(path.read_text())["config"]
    # A field the run's squeezelab did not have yet held its default.
    differ = sorted(
        k for k, v in cfg.to_dict().items() if stored.get(k, field_info(k).default) != v
    )
    if differ:
        raise RunDirError(
            f"{out} holds a run with a different config (fields {', '.join(differ)}); "
            "choose another --out"
        )


def provenance(
    cfg: RunConfig,
    dev: torch.device,
    precision: str,
    num_classes: int,
    train_images: int | None = None,
    eval_images: tuple[int, int] | None = None,
    classes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The resolved config with what produced it (package, torch, git commit, device), and
    the images each split holds: whether an accuracy is above chance depends on how many
    images it was measured on (``results.records.at_chance``)."""
    val_images, test_images = eval_images or (None, None)
    return {
        "config": cfg.to_dict(),
        "key": cfg.key(),
        "num_classes": num_classes,
        "train_images": train_images,
        "val_images": val_images,
        "test_images": test_images,
        "classes": list(classes),  # label order: evaluating on other data checks it
        "squeezelab": __version__,
        "torch": torch.__version__,
        "git_commit": _git_commit(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),  # the machine's: the load average counts all of them
    }


@functools.cache
def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
