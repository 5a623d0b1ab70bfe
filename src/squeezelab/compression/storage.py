"""The Deep Compression storage format (Han et al. 2016, Figure 2 and section 4).

Every pruned, shared layer is stored as a sparse list of (relative index, weight code):

- relative index: the gap to the previous non-zero weight in ``index_bits`` bits; a gap that
  does not fit is bridged by filler entries (gap ``2**index_bits - 1``, the filler code);
- weight code: the position of the weight's value in the layer's codebook (``2**bits``
  float32 centroids); one extra symbol marks filler entries;
- both streams Huffman-coded with per-layer canonical codes (code lengths stored).

Other tensors (biases, batch norm) are stored as float32. The file::

    b"SQZ2" | u32 header length | JSON header | blobs (codebooks, code lengths, streams)
           | u32 CRC-32

The CRC-32 covers every byte before it (any single-bit flip, and almost every other
corruption, is a :class:`FormatError`), and every header value is bounded before anything
is allocated. Version-1 files (``b"SQZC"``, no CRC) are still read. The compressed size
reported is the size of this file, in bytes.
"""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SqueezelabError
from ..fileio import write_bytes
from ..training.config import field_info
from . import huffman

MAGIC = b"SQZ2"
MAGIC_V1 = b"SQZC"
VERSION = 2
MAX_ELEMENTS = 1 << 30  # per tensor: far above any network squeezelab builds
MAX_CODE_LENGTH = 24  # Huffman code lengths are capped at 20 when written
MAX_CLASSES = 100_000


class FormatError(SqueezelabError, RuntimeError):
    """A compressed file is truncated, corrupt or not squeezelab's."""


def _entries(
    flat_nonzero: np.ndarray, codes: np.ndarray, index_bits: int, filler: int
) -> tuple[np.ndarray, np.ndarray]:
    """Turn non-zero positions and their codes into (gap, code) entries with fillers."""
    max_gap = (1 << index_bits) - 1
    gaps = np.diff(np.concatenate([[-1], flat_nonzero])) - 1
    n_fill = gaps // (max_gap + 1)  # fillers needed before each real entry
    total = len(gaps) + int(n_fill.sum())
    gap_out = np.full(total, max_gap, dtype=np.int64)
    code_out = np.full(total, filler, dtype=np.int64)
    real = np.arange(len(gaps)) + np.cumsum(n_fill)
    gap_out[real] = gaps - n_fill * (max_gap + 1)
    code_out[real] = codes
    return gap_out, code_out


def encode_layer(weight: torch.Tensor, bits: int, index_bits: int) -> tuple[dict, list[bytes]]:
    """Encode one shared, pruned weight tensor; return its header entry and blobs."""
    flat = weight.detach().cpu().flatten().numpy().astype(np.float32)
    nonzero = np.flatnonzero(flat)
    values, codes = np.unique(flat[nonzero], return_inverse=True)
    if len(values) > (1 << bits):
        raise ValueError(
            f"a layer holds {len(values)} distinct weights, more than 2**{bits}: share first"
        )
    codebook = np.zeros(1 << bits, dtype=np.float32)
    codebook[: len(values)] = values
    filler = 1 << bits
    gaps, wcodes = _entries(nonzero, codes, index_bits, filler)
    w_len = huffman.code_lengths(np.bincount(wcodes, minlength=filler + 1))
    i_len = huffman.code_lengths(np.bincount(gaps, minlength=1 << index_bits))
    w_data, w_bits = huffman.encode(wcodes, w_len)
    i_data, i_bits = huffman.encode(gaps, i_len)
    blobs = [codebook.tobytes(), w_len.tobytes(), i_len.tobytes(), w_data, i_data]
    entry = {
        "kind": "sparse",
        "shape": list(weight.shape),
        "bits": bits,
        "index_bits": index_bits,
        "entries": len(gaps),
        "nonzero": len(nonzero),
        "weight_bits": w_bits,
        "index_bits_total": i_bits,
        "sizes": [len(b) for b in blobs],
    }
    return entry, blobs


def decode_layer(entry: dict, blobs: list[bytes]) -> torch.Tensor:
    """Rebuild a weight tensor from its header entry and blobs."""
    bits, index_bits = entry["bits"], entry["index_bits"]
    codebook = np.frombuffer(blobs[0], dtype=np.float32)
    if not np.all(np.isfinite(codebook)):
        raise FormatError("corrupt compressed layer: a codebook value is not finite")
    w_len = np.frombuffer(blobs[1], dtype=np.uint8)
    i_len = np.frombuffer(blobs[2], dtype=np.uint8)
    if max(w_len.max(initial=0), i_len.max(initial=0)) > MAX_CODE_LENGTH:
        raise FormatError(f"corrupt compressed layer: a code length above {MAX_CODE_LENGTH}")
    n = entry["entries"]
    wcodes = huffman.decode(blobs[3], entry["weight_bits"], n, w_len)
    gaps = huffman.decode(blobs[4], entry["index_bits_total"], n, i_len)
    positions = np.cumsum(gaps + 1) - 1
    real = wcodes != (1 << bits)
    out = np.zeros(int(np.prod(entry["shape"])), dtype=np.float32)
    if len(positions) and positions[real].max(initial=-1) >= out.size:
        raise FormatError("corrupt compressed layer: an index points past the tensor")
    out[positions[real]] = codebook[wcodes[real]]
    del index_bits
    return torch.from_numpy(out).view(entry["shape"])


def write_compressed(
    path: str | Path,
    state: dict[str, torch.Tensor],
    sparse: dict[str, tuple[int, int]],
    meta: dict[str, Any],
) -> int:
    """Write ``state``; tensors named in ``sparse`` (name -> (bits, index_bits)) compressed."""
    header: dict[str, Any] = {"version": VERSION, "meta": meta, "tensors": []}
    blobs: list[bytes] = []
    for name, tensor in state.items():
        if name in sparse:
            entry, parts = encode_layer(tensor, *sparse[name])
        else:
            data = tensor.detach().cpu().contiguous()
            dtype = "int64" if data.dtype == torch.int64 else "float32"
            parts = [data.numpy().astype(dtype).tobytes()]
            entry = {"kind": "dense", "shape": list(data.shape), "dtype": dtype,
                     "sizes": [len(parts[0])]}  # fmt: skip
        entry["name"] = name
        header["tensors"].append(entry)
        blobs.extend(parts)
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)
    payload += struct.pack("<I", zlib.crc32(payload))
    write_bytes(path, payload)
    return len(payload)


def read_compressed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_compressed`; return (state dict, meta)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"compressed model {path} does not exist")
    data = path.read_bytes()
    if len(data) < 8 or data[:4] not in (MAGIC, MAGIC_V1):
        raise FormatError(f"{path} is not a squeezelab compressed model")
    if data[:4] == MAGIC_V1:
        warnings.warn(
            f"{path} is a version-1 compressed model, written without a checksum: corruption "
            "in it cannot be detected (compress the run again to write version 2)",
            stacklevel=2,
        )
    if data[:4] == MAGIC:
        if len(data) < 12 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
            raise FormatError(f"{path} is corrupt or truncated: its CRC-32 does not match")
        data = data[:-4]
    (head_len,) = struct.unpack("<I", data[4:8])
    if 8 + head_len > len(data):
        raise FormatError(f"{path} is truncated: its header runs past the end of the file")
    try:
        header = json.loads(data[8 : 8 + head_len])
        entries, meta = header["tensors"], header["meta"]
        if not isinstance(entries, list) or not isinstance(meta, dict):
            raise TypeError("tensors must be a list, meta a table")
        for entry in entries:
            _check_entry(entry)
        _check_meta(meta)
    except (ValueError, KeyError, TypeError) as err:
        raise FormatError(f"{path}: malformed header ({err})") from None
    offset = 8 + head_len
    state = {}
    for entry in entries:
        parts = []
        for size in entry["sizes"]:
            if offset + size > len(data):
                raise FormatError(f"{path} is truncated (tensor {entry['name']})")
            parts.append(data[offset : offset + size])
            offset += size
        try:
            if entry["kind"] == "sparse":
                state[entry["name"]] = decode_layer(entry, parts)
            else:
                arr = np.frombuffer(parts[0], dtype=entry["dtype"]).copy()
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ValueError("a value is not finite (NaN or infinite)")
                state[entry["name"]] = torch.from_numpy(arr).view(entry["shape"])
        except (ValueError, IndexError, RuntimeError) as err:
            raise FormatError(f"{path}: corrupt tensor {entry['name']} ({err})") from None
    if offset != len(data):
        raise FormatError(f"{path}: {len(data) - offset} bytes after the last tensor")
    return state, meta


def _int(entry: dict, key: str, low: int, high: int) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} = {value!r} outside {low}..{high}")
    return value


def _check_entry(entry: Any) -> None:
    """Bound every header value of one tensor before anything is allocated or decoded."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise TypeError(f"a tensor entry without a name: {entry!r:.80}")
    shape, sizes = entry.get("shape"), entry.get("sizes")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_ELEMENTS for d in shape
    ):
        raise ValueError(f"tensor {entry['name']}: bad shape {shape!r:.80}")
    elements = int(np.prod(shape, dtype=np.float64))
    if elements > MAX_ELEMENTS:
        raise ValueError(f"tensor {entry['name']}: {elements} elements")
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes
    ):
        raise ValueError(f"tensor {entry['name']}: bad blob sizes")
    if entry.get("kind") == "dense":
        if entry.get("dtype") not in ("float32", "int64") or len(sizes) != 1:
            raise ValueError(f"tensor {entry['name']}: bad dense entry")
        if sizes[0] != elements * np.dtype(entry["dtype"]).itemsize:
            raise ValueError(f"tensor {entry['name']}: {sizes[0]} bytes for shape {shape}")
    elif entry.get("kind") == "sparse":
        bits = _int(entry, "bits", 1, 16)
        index_bits = _int(entry, "index_bits", 1, 16)
        if len(sizes) != 5 or sizes[:3] != [4 << bits, (1 << bits) + 1, 1 << index_bits]:
            raise ValueError(f"tensor {entry['name']}: blob sizes do not fit bits/index_bits")
        _int(entry, "weight_bits", 0, 8 * sizes[3])
        _int(entry, "index_bits_total", 0, 8 * sizes[4])
        # Every entry takes at least one bit of each stream.
        _int(entry, "entries", 0, min(entry["weight_bits"], entry["index_bits_total"]))
    else:
        raise ValueError(f"tensor {entry['name']}: unknown kind {entry.get('kind')!r}")


MAX_IMAGE_SIZE = int(field_info("image_size").spec.high or 0)  # a run's own bound on it


def _check_meta(meta: dict) -> None:
    """Bound the header's model description before anything is built from it: the class
    count, the input size (an export allocates a batch of it) and the options' types (their
    values and the model's size are checked when the model is built, before allocation)."""
    classes = meta.get("num_classes", 1)
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"num_classes = {classes!r}")
    if "image_size" in meta:
        _int(meta, "image_size", 1, MAX_IMAGE_SIZE)
    if not isinstance(meta.get("model", ""), str) or not isinstance(meta.get("options", {}), dict):
        raise TypeError("meta: model must be a name, options a table")
