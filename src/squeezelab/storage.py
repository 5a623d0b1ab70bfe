"""One storage location for every run's artifacts: a folder, an NFS path or an fsspec URL.

On a cluster whose nodes share no disk, a run trains in node-local scratch and its files
(checkpoint, metrics, config, final weights, TensorBoard events) are copied to storage as it
goes: after every epoch's checkpoint and once at the end, when storage is made to mirror the
run's folder (the resume checkpoint goes once the run has finished). A run moved to another
node starts by pulling its folder from storage, and resumes there. Storage is
``STORAGE/KEY/FILE`` for any URL fsspec opens (``s3://bucket/prefix``, ``gs://...``, a plain
path); only the study's driver writes the SQLite store, which never lives here.

Each file is written under a temporary name and moved into place, so a reader (a run resumed
on another node) never sees half a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import SqueezelabError

SKIP = frozenset({".lock"})  # a run folder's own lock stays on its node


class StorageError(SqueezelabError, OSError):
    """Run storage cannot be reached, read or written."""


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a location by URL (``s3://...``) rather than a local path."""
    return "://" in str(path) and not str(path).startswith("file://")


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a URL or a path alike (a URL's ``//`` kept)."""
    return "/".join([str(root).rstrip("/"), *parts])


def scratch_root() -> Path:
    """Where runs train on this node: ``$SQUEEZELAB_SCRATCH``, else the system's temp folder;
    under Ray, one folder per node (so nodes sharing a machine never share scratch)."""
    root = Path(os.environ.get("SQUEEZELAB_SCRATCH") or tempfile.gettempdir()) / "squeezelab"
    node = _ray_node()
    return root / f"node-{node[:12]}" if node else root


def _ray_node() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


class Storage:
    """A run-artifact location (``url``): ``push`` a run folder there, ``pull`` one back."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        import fsspec

        text = str(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as err:  # an unknown protocol, a missing backend
            raise StorageError(f"storage {text!r}: {err}") from None
        self.url = text.rstrip("/")
        self.root = str(root).rstrip("/")

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    def _call(self, what: str, fn: Any, *args: Any, missing: bool = False) -> Any:
        """``fn(*args)`` with every failure as one StorageError naming what was being done;
        with ``missing``, a FileNotFoundError passes through (the caller reads "nothing
        there")."""
        try:
            return fn(*args)
        except Exception as err:  # OSError, and a backend's own (credentials, network)
            if missing and isinstance(err, FileNotFoundError):
                raise
            reason = str(err) or type(err).__name__
            raise StorageError(f"could not {what} in storage {self.url}: {reason}") from None

    def push(self, local: Path, key: str, mirror: bool = False) -> None:
        """Copy run folder ``local`` to ``STORAGE/key``; with ``mirror``, also remove what the
        folder no longer holds (the resume checkpoint of a finished run)."""
        names = {p.relative_to(local).as_posix() for p in local.rglob("*")
                 if p.is_file() and p.name not in SKIP}  # fmt: skip
        for name in sorted(names):
            self.put(local / name, key, name)
        if mirror:
            for name in self.files(key) - names:
                self._call("remove a file", self.fs.rm, self.path(key, name))

    def put(self, src: Path, key: str, name: str) -> None:
        """Write one file to ``STORAGE/key/name``, under a temporary name first."""
        dest = self.path(key, name)
        part = f"{dest}.part-{uuid.uuid4().hex[:8]}"
        self._call("make a folder", self.fs.makedirs, dest.rsplit("/", 1)[0], True)
        self._call("write a file", self.fs.put_file, str(src), part)
        self._call("move a file into place", self.fs.mv, part, dest)

    def files(self, key: str) -> set[str]:
        """The files under ``STORAGE/key``, relative to it (empty when there are none)."""
        base = self.path(key)
        try:
            found = self._call("list files", self.fs.find, base, missing=True)
        except FileNotFoundError:
            return set()
        prefix = base.rstrip("/") + "/"
        return {str(f)[len(prefix) :] for f in found if str(f).startswith(prefix)
                and ".part-" not in str(f)}  # fmt: skip

    def run_keys(self) -> set[str]:
        """The run folders in storage (their keys)."""
        try:
            entries = self._call("list folders", self.fs.ls, self.root, False, missing=True)
        except FileNotFoundError:
            return set()
        names = {str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries}
        return {n for n in names if not n.startswith(".")}

    def pull(self, key: str, local: Path) -> bool:
        """Replace run folder ``local`` by ``STORAGE/key``; False (and ``local`` untouched)
        when storage holds nothing of it."""
        names = self.files(key)
        if not names:
            return False
        if local.exists():
            shutil.rmtree(local)
        for name in sorted(names):
            self.get(key, name, local / name)
        return True

    def get(self, key: str, name: str, dest: Path) -> Path:
        """Copy ``STORAGE/key/name`` to ``dest`` (written aside, then renamed)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f"{dest.name}.part")
        try:
            self._call("read a file", self.fs.get_file, self.path(key, name), str(part),
                       missing=True)  # fmt: skip
        except FileNotFoundError:
            raise StorageError(f"storage {self.url} holds no {key}/{name}") from None
        part.replace(dest)
        return dest

    def exists(self, key: str, name: str) -> bool:
        return bool(self._call("look for a file", self.fs.exists, self.path(key, name)))

    def remove(self, key: str, name: str) -> None:
        if self.exists(key, name):
            self._call("remove a file", self.fs.rm, self.path(key, name))

    def probe(self) -> None:
        """Write, read back and remove a small file: raise StorageError naming what failed."""
        key, text = f".probe-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe"
            src.write_text(text)
            self.put(src, key, "probe")
            back = self.get(key, "probe", Path(tmp) / "back").read_text()
        self._call("remove a file", self.fs.rm, self.path(key), True)
        if back != text:
            raise StorageError(f"storage {self.url} gave back other bytes than were written")


@dataclasses.dataclass(frozen=True)
class RunsAt:
    """Where a study's run folders go, ``root/KEY``: a local folder (``storage`` None), or a
    storage location (a folder or an fsspec URL) each run is pushed to as it trains."""

    root: str
    storage: Storage | None = None

    @classmethod
    def of(cls, storage: str | None, runs_dir: str | os.PathLike[str]) -> RunsAt:
        """Storage when one is given (probed: unwritable storage is one line now, not a
        failed run each), else the local folder ``runs_dir``."""
        if not storage:
            return cls(str(Path(runs_dir)))
        where = Storage(storage)
        where.probe()
        return cls(where.url, where)

    def run(self, key: str) -> str:
        """Run ``key``'s folder: a path, or a URL in storage."""
        return join(self.root, key)

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """Whether local ``path`` lies in a run folder here (not yet made: a run to come)."""
        if is_url(self.root):
            return False
        return Path(self.root).resolve() in Path(path).expanduser().resolve().parents

    def drop(self, key: str, name: str) -> None:
        """Remove file ``name`` of run ``key`` (nothing when it is not there)."""
        if self.storage is not None:
            self.storage.remove(key, name)
        else:
            (Path(self.root) / key / name).unlink(missing_ok=True)


def read_text(location: str) -> str:
    """The text of a file named by a path or a storage URL (``s3://bucket/runs/KEY/...``)."""
    if not is_url(location):
        return Path(location).read_text()
    import fsspec

    try:
        with fsspec.open(location, "rt") as stream:
            return str(stream.read())
    except OSError:
        raise
    except Exception as err:  # a backend's own errors (credentials, network) as one kind
        raise StorageError(f"could not read {location}: {err}") from None


@contextlib.contextmanager
def local_run(location: str) -> Iterator[Path]:
    """A run folder on this node while the block runs: a local path as it is; a run folder in
    storage (``STORAGE/KEY``) copied into a private folder in this node's scratch and removed
    afterwards, so runs sharing a node never read a copy another is replacing."""
    if not is_url(location):
        yield Path(location)
        return
    root, key = location.rstrip("/").rsplit("/", 1)
    fetched = scratch_root() / "fetched"
    fetched.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=fetched) as tmp:
        local = Path(tmp) / key
        if not Storage(root).pull(key, local):
            raise StorageError(f"storage {root} holds no run folder {key}")
        yield local
