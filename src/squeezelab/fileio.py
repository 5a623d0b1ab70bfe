"""Atomic file writes: write aside, fsync, rename; a failure names the path and the cause.

Every file squeezelab writes (run files, checkpoints, compressed and exported models, the
report) goes through :func:`atomic_path`: the data lands in a temporary file beside the target,
is flushed to disk and only then renamed over it. A write that fails (a full disk, a read-only
folder) leaves the previous file as it was, removes its temporary file and raises a
:class:`WriteError` of one line, instead of a library's traceback or a truncated file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import SqueezelabError


class WriteError(SqueezelabError, OSError):
    """A file could not be written; the previous one at that path is unchanged."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by the suffix
    keep their format) to write; on success it replaces ``path``, fsynced."""
    target = Path(path)
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, SqueezelabError):
            raise
        if isinstance(err, OSError):
            raise WriteError(f"could not write {target}: {_cause(err)}") from err
        if type(err).__name__ == "SafetensorError":  # how safetensors reports a full disk
            raise WriteError(f"could not write {target}: {err}") from err
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode())


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> None:
    """Atomically write a file a library writes by path (``torch.jit.save``, ONNX, PNG)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _cause(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__
