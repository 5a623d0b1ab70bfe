"""Image sources decoded once into uint8 arrays: CIFAR pickles, image folders, synthetic.

Every source yields a :class:`ImageSet` of ``(N, H, W, 3)`` uint8 images and int64 labels.
Decoded arrays are cached as ``.npz`` (no pickles) keyed by the source file's content hash, so
50,000 JPEGs are decoded once, not every epoch or every run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import stat
import tarfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..fileio import write_with
from .images import DataError, ImageSet
from .synthetic import make_synthetic

CACHE_ENV = "SQUEEZELAB_DATA_DIR"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
# The largest image file read (declared and actual size); raise it for huge images.
MAX_IMAGE_BYTES = int(os.environ.get("SQUEEZELAB_MAX_IMAGE_BYTES", 64 << 20))
# The most image bytes one source may hold in all, checked from the declared sizes before any
# image is read (a zip of 100 entries of 63 MB each is 6 GB, each entry under the cap above).
MAX_SOURCE_BYTES = int(os.environ.get("SQUEEZELAB_MAX_SOURCE_BYTES", 4 << 30))
# The largest member of a CIFAR archive read (an official batch is 31 MB).
MAX_CIFAR_MEMBER_BYTES = 256 << 20


@dataclass(frozen=True)
class CifarInfo:
    """Where a CIFAR release comes from and how its python-format archive is laid out."""

    url: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    meta: tuple[str, bytes]  # (file, key of the class names)


CIFAR = {
    "cifar10": CifarInfo(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        label_key=b"labels",
        meta=("batches.meta", b"label_names"),
    ),
    "cifar100": CifarInfo(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        label_key=b"fine_labels",
        meta=("meta", b"fine_label_names"),
    ),
}


@dataclass
class Source:
    """A loaded source: the training images and, where the source has one, its test set."""

    name: str
    train: ImageSet
    test: ImageSet | None = None


def cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache directory: ``data_dir``, else ``$SQUEEZELAB_DATA_DIR``, else ~/.cache."""
    if data_dir is not None:
        path = Path(data_dir)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "squeezelab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_source(
    spec: str, data_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Source:
    """Load a data source by name (``cifar10``, ``cifar100``, ``synthetic``) or path."""
    if spec == "synthetic":
        return Source("synthetic", make_synthetic(2000, seed=0), make_synthetic(500, seed=1))
    if spec.startswith("synthetic:"):
        n = _parse_int(spec.split(":", 1)[1], spec)
        return Source(spec, make_synthetic(n, seed=0), make_synthetic(max(n // 4, 10), seed=1))
    if spec in CIFAR:
        return _load_cifar(spec, _find_cifar(spec, data_dir), data_dir)
    path = _local_path(spec)
    for name, info in CIFAR.items():
        if _looks_like_cifar(path, info.folder):
            return _load_cifar(name, path, data_dir)
    return Source(str(path), _cached(path, data_dir, progress, _decode_image_folder))


def check_source(spec: str, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Check, without decoding a single image, that ``spec`` names data that can be loaded: a
    generated set, CIFAR present (or fetched: offline, the message says how to give a path),
    an existing folder or archive file. A study checks each of its sources once, before any
    run is registered, so a missing file is one line, not one failure per run."""
    if spec == "synthetic":
        return
    if spec.startswith("synthetic:"):
        _parse_int(spec.split(":", 1)[1], spec)
        return
    if spec in CIFAR:
        _find_cifar(spec, data_dir)
        return
    path = _local_path(spec)
    if path.is_dir():
        _require_images(path)


def _require_images(path: Path) -> None:
    """A folder source holds at least one image (found without reading any): a folder
    holding only an archive of the images is a common slip, and the message names the
    archive to pass instead."""
    archives: list[str] = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            lower = name.lower()
            if lower.endswith(IMAGE_SUFFIXES):
                return
            if lower.endswith(ARCHIVE_SUFFIXES) and len(archives) < 3:
                archives.append(str(Path(root, name)))
    hint = f"; it holds {', '.join(archives)}: pass that file as the data" if archives else ""
    raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}){hint}")


# Data paths that this process reads from a local copy instead (see ``local_copies``).
_COPIES: dict[str, Path] = {}


@contextlib.contextmanager
def local_copies(copies: dict[str, Path]) -> Iterator[None]:
    """Read data source ``spec`` from ``copies[spec]`` while the block runs: a run on a node
    that lacks the driver's data path reads the copy that storage brought to it."""
    _COPIES.update(copies)
    try:
        yield
    finally:
        for spec in copies:
            _COPIES.pop(spec, None)


def _local_path(spec: str) -> Path:
    """The existing folder or regular file ``spec`` names, or a DataError saying what it is."""
    path = _COPIES.get(spec) or Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"data source {spec!r} is neither a known name (cifar10, cifar100, synthetic) "
            f"nor an existing path"
        )
    _check_kind(path)
    return path


def _check_kind(path: Path) -> None:
    """A data path is a folder or a regular file (through any links): a FIFO or a device
    (a link to /dev/zero named data.tar.gz) would block or never end."""
    mode = path.stat().st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise DataError(f"data source {path} is {kind}: give a folder or an archive file")


def _parse_int(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"bad data source {spec!r}: expected synthetic:N, N an integer") from None
    if value < 20:
        raise DataError(f"bad data source {spec!r}: N must be at least 20")
    return value


# --- CIFAR, official python format -------------------------------------------------------


def _find_cifar(name: str, data_dir: str | os.PathLike[str] | None) -> Path:
    info = CIFAR[name]
    root = cache_dir(data_dir)
    archive = root / Path(info.url).name
    if (root / info.folder).is_dir():
        return root / info.folder
    if archive.is_file():
        return archive
    try:
        from torchvision.datasets.utils import download_url

        download_url(info.url, str(root), md5=info.md5)
    except Exception as err:
        raise DataError(
            f"{name} is not in {root} and could not be downloaded ({err}). Download "
            f"{info.url} and pass its path with --data PATH, or put it in {root} "
            f"(or set --data-dir / ${CACHE_ENV})."
        ) from None
    return archive


def _looks_like_cifar(path: Path, folder: str) -> bool:
    if path.is_dir():
        return (path / folder).is_dir() or path.name == folder
    # Official archive names: cifar-10-python.tar.gz, cifar-100-python.tar.gz.
    stem = "cifar-10-python" if folder.startswith("cifar-10-") else "cifar-100-python"
    return path.name.startswith(stem) and path.name.endswith((".tar.gz", ".tgz", ".tar"))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle CIFAR batches only: dicts of bytes, lists and numpy arrays, nothing callable."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copyreg", "_reconstructor"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(data: bytes, where: str) -> dict:
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:
        raise DataError(f"corrupt CIFAR batch {where}: {err}") from None
    if not isinstance(batch, dict):
        raise DataError(f"corrupt CIFAR batch {where}: not a dictionary")
    return batch


def _cifar_members(path: Path, folder: str, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """The archive's (or folder's) members named in ``wanted``, each checked against
    ``MAX_CIFAR_MEMBER_BYTES`` before it is read; other members are never read."""

    def check(where: str, size: int) -> None:
        if size > MAX_CIFAR_MEMBER_BYTES:
            raise DataError(
                f"{where} is {size:,} bytes: an official CIFAR batch is about 31 MB (cap "
                f"{MAX_CIFAR_MEMBER_BYTES:,})"
            )

    if path.is_dir():
        base = path / folder if (path / folder).is_dir() else path
        for f in sorted(base.iterdir()):
            if f.name in wanted and f.is_file():
                check(str(f), f.stat().st_size)
                yield f.name, f.read_bytes()
        return
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in wanted:
                    check(f"{path}:{member.name}", member.size)
                    stream = tar.extractfile(member)
                    yield name, stream.read() if stream is not None else b""
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"corrupt archive {path}: {err}") from None


def _load_cifar(name: str, path: Path, data_dir: str | os.PathLike[str] | None) -> Source:
    info = CIFAR[name]
    wanted = {*info.train, *info.test, info.meta[0]}
    files = dict(_cifar_members(path, info.folder, wanted))
    n_classes = 10 if name == "cifar10" else 100
    missing = [f for f in (*info.train, *info.test) if f not in files]
    if missing:
        raise DataError(f"{path} is not an official {name} archive: missing {missing}")

    def read(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for f in names:
            batch = _read_batch(files[f], f"{path}:{f}")
            try:
                raw = np.asarray(batch[b"data"])
                if raw.dtype != np.uint8:
                    raise ValueError(f"pixels must be uint8, found {raw.dtype}")
                found = np.asarray(batch[info.label_key], dtype=np.int64)
                if found.size and (found.min() < 0 or found.max() >= n_classes):
                    raise ValueError(
                        f"labels must lie in 0..{n_classes - 1}, found {found.min()}..{found.max()}"
                    )
                labels.append(found)
                images.append(raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                if len(labels[-1]) != len(images[-1]):
                    raise ValueError(f"{len(images[-1])} images but {len(labels[-1])} labels")
            except (KeyError, ValueError, TypeError) as err:
                raise DataError(f"malformed CIFAR batch {path}:{f}: {err}") from None
        return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)

    meta_file, meta_key = info.meta
    classes = [str(i) for i in range(n_classes)]
    if meta_file in files:
        names = _read_batch(files[meta_file], f"{path}:{meta_file}").get(meta_key)
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train, test = read(info.train), read(info.test)
    return Source(name, ImageSet(*train, classes), ImageSet(*test, classes))


# --- Image folders and archives ----------------------------------------------------------


def _cached(
    path: Path,
    data_dir: str | os.PathLike[str] | None,
    progress: bool,
    decode: Callable[[Path, bool], ImageSet],
) -> ImageSet:
    key = content_hash(path)
    target = cache_dir(data_dir) / f"images-{key}.npz"
    if target.is_file():
        try:
            with np.load(target, allow_pickle=False) as z:
                return ImageSet(z["images"], z["labels"], [str(c) for c in z["classes"]])
        except Exception:
            target.unlink(missing_ok=True)  # a broken cache entry is rebuilt, never trusted
    images = decode(path, progress)
    write_with(
        target,
        lambda tmp: np.savez(
            tmp, images=images.images, labels=images.labels, classes=np.array(images.classes)
        ),
    )
    return images


def content_digest(path: Path) -> str:
    """:func:`content_hash`, computed once per version of a file (path, size, time)."""
    st = path.stat()
    return _digest(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return content_hash(Path(path))


def content_hash(path: Path) -> str:
    """SHA-256 (24 hex digits) of a file's bytes, or of a folder's file names, sizes, times."""
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    else:  # a folder: hash the names, sizes and modification times of its files
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _iter_image_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (relative path, bytes) of every image file in a folder or archive.

    Entries that climb out of the archive (``../``, absolute paths) and files larger than
    ``MAX_IMAGE_BYTES`` (declared or actual) are errors naming the entry; nothing is read
    beyond the cap.
    """
    name = path.name.lower()
    try:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    _check_size(f"{path}:{f.relative_to(path)}", f.stat().st_size)
                    yield f.relative_to(path).as_posix(), f.read_bytes()
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                        _check_entry(path, info.filename, info.file_size)
                        with z.open(info) as entry:
                            yield info.filename, _read_capped(entry, f"{path}:{info.filename}")
        elif any(name.endswith(s) for s in (".tar", ".tar.gz", ".tgz")):
            with tarfile.open(path) as tar:
                for m in tar:
                    if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                        _check_entry(path, m.name, m.size)
                        yield m.name, _read_capped(tar.extractfile(m), f"{path}:{m.name}")
        else:
            raise DataError(
                f"{path}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive of class folders"
            )
    except DataError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise DataError(f"corrupt archive {path}: {err}") from None
    except (RuntimeError, NotImplementedError) as err:  # encrypted / unsupported zip entries
        raise DataError(f"unreadable archive {path}: {err}") from None


def _listing(path: Path) -> tuple[list[tuple[str, int]], set[str]]:
    """(image entries with their declared sizes, folder entries) of a folder or an archive,
    from its directory alone: nothing is decompressed beyond a tar's headers."""
    name = path.name.lower()
    if path.is_dir():
        files = [
            (f.relative_to(path).as_posix(), f.stat().st_size)
            for f in path.rglob("*")
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        ]
        dirs = {d.relative_to(path).as_posix() for d in path.rglob("*") if d.is_dir()}
        return files, dirs
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
        files = [
            (i.filename, i.file_size)
            for i in infos
            if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES
        ]
        return files, {i.filename.rstrip("/") for i in infos if i.is_dir()}
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    files = [
        (m.name, m.size)
        for m in members
        if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES
    ]
    return files, {m.name.rstrip("/") for m in members if m.isdir()}


def _bounded_listing(path: Path) -> set[str]:
    """List a folder or an archive once, before any image is read: refuse it when its images
    declare more than ``MAX_SOURCE_BYTES`` in all, and return its folder entries (for the
    empty-class check). Anything else is left to the reader to name."""
    if not (path.is_dir() or path.name.lower().endswith(ARCHIVE_SUFFIXES)):
        return set()
    try:
        files, folders = _listing(path)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise DataError(f"corrupt archive {path}: {err}") from None
    total = sum(size for _, size in files)
    if total > MAX_SOURCE_BYTES:
        raise DataError(
            f"{path} declares {total:,} bytes of images in {len(files):,} files, over the "
            f"{MAX_SOURCE_BYTES:,}-byte cap for one source (raise it with "
            "SQUEEZELAB_MAX_SOURCE_BYTES)"
        )
    return folders


def _check_entry(archive: Path, entry: str, size: int) -> None:
    parts = entry.replace("\\", "/").split("/")
    if entry.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
        raise DataError(f"{archive}: entry {entry!r} points outside the archive; refusing it")
    _check_size(f"{archive}:{entry}", size)


def _check_size(where: str, size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise DataError(
            f"{where} is {size:,} bytes, over the {MAX_IMAGE_BYTES:,}-byte cap for one image "
            "(raise it with SQUEEZELAB_MAX_IMAGE_BYTES)"
        )


def _read_capped(f: IO[bytes] | None, where: str) -> bytes:
    data = f.read(MAX_IMAGE_BYTES + 1) if f is not None else b""
    _check_size(where, len(data))
    return data


def _class_of(rel: str) -> str | None:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    return "/".join(parts[:-1]) if len(parts) >= 2 else None


def _decode_image_folder(path: Path, progress: bool) -> ImageSet:
    from tqdm import tqdm

    folders = _bounded_listing(path)  # the total bounded before the first image is read
    files = sorted(_iter_image_files(path), key=lambda item: item[0])
    if not files:
        if path.is_dir():
            _require_images(path)  # raises, naming an archive inside if there is one
        raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    found = {_class_of(rel) for rel, _ in files}
    dirs = {d for d in found if d is not None}
    if None in found:
        raise DataError(f"{path}: images must sit in class folders (found one at the top level)")
    # Class folders sit at the top level or under one common top folder.
    tops = {d.split("/")[0] for d in dirs}
    strip = len(tops) == 1 and all("/" in d for d in dirs)
    labels_of = {d: (d.split("/", 1)[1] if strip else d) for d in dirs}
    classes = sorted(set(labels_of.values()))
    empty = _empty_class_folders(folders, dirs, strip)
    if empty:
        raise DataError(f"{path}: class folder(s) without images: {', '.join(empty)}")
    if len(classes) < 2:
        raise DataError(
            f"{path}: found {len(classes)} class ({', '.join(classes)}); classification needs "
            "at least two class folders"
        )
    index = {c: i for i, c in enumerate(classes)}
    images, labels = [], []
    for rel, data in tqdm(
        files, desc=f"decoding {path.name}", disable=None if progress else True, unit="img"
    ):
        images.append(_decode(data, f"{path}:{rel}"))
        labels.append(index[labels_of[_class_of(rel) or ""]])
    if len({im.shape for im in images}) > 1:
        # Mixed sizes: every image becomes a square of the most common shorter side.
        side = Counter(min(im.shape[:2]) for im in images).most_common(1)[0][0]
        odd = sum(im.shape[:2] != (side, side) for im in images)
        warnings.warn(
            f"{path}: images of several sizes; {odd} of {len(images)} resized and centre-cropped "
            f"to {side}x{side}, the most common size",
            stacklevel=2,
        )
        images = [_center_square(im, side) for im in images]
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes)


def _empty_class_folders(folders: set[str], with_images: set[str], strip: bool) -> list[str]:
    """Class folders (a folder's or an archive's folder entries) that hold no image: on disk
    and in an archive alike an error, not a class silently dropped."""
    top = next(iter({d.split("/")[0] for d in with_images if d}), "") if strip else ""
    depth = 2 if strip else 1
    candidates = {
        d for d in folders if d.count("/") == depth - 1 and (not strip or d.startswith(top + "/"))
    }
    full = {d for d in with_images if d}
    covered = {c for c in candidates if any(f == c or f.startswith(c + "/") for f in full)}
    return sorted(c.split("/")[-1] for c in candidates - covered)


def _decode(data: bytes, where: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit, then decodes: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"image {where} is too large to decode safely: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"corrupt image {where}: {err}") from None


def _center_square(im: np.ndarray, side: int) -> np.ndarray:
    """Resize the shorter side to ``side`` and crop the centre square (mixed-size folders)."""
    h, w = im.shape[:2]
    scale = side / min(h, w)
    pil = Image.fromarray(im).resize((max(side, round(w * scale)), max(side, round(h * scale))))
    left, top = (pil.width - side) // 2, (pil.height - side) // 2
    return np.asarray(pil.crop((left, top, left + side, top + side)))
