"""Canonical Huffman coding of integer symbol streams (Deep Compression, Han et al. 2016, s.4).

A code is fully described by one code length per symbol (stored in the file); codes are
assigned canonically. Lengths are capped at ``MAX_LEN`` bits by flattening the frequencies,
which keeps table-driven decoding small. Encoding and the window computation are vectorized
with numpy; decoding walks the stream with a lookup table.
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_LEN = 20


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Return Huffman code lengths (0 for unused symbols) for symbol ``counts``."""
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), dtype=np.uint8)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    weights = counts[used].astype(np.float64)
    while True:
        depth = _huffman_depths(weights)
        if depth.max() <= max_len:
            lengths[used] = depth
            return lengths
        weights = np.maximum(1.0, np.floor(weights / 2))  # flatten, then rebuild


def _huffman_depths(weights: np.ndarray) -> np.ndarray:
    heap: list[tuple[float, int, tuple[int, ...]]] = [
        (float(w), i, (i,)) for i, w in enumerate(weights)
    ]
    heapq.heapify(heap)
    depth = np.zeros(len(weights), dtype=np.int64)
    tie = len(weights)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            depth[s] += 1
        heapq.heappush(heap, (w1 + w2, tie, s1 + s2))
        tie += 1
    return depth


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Assign canonical codes (shorter first, then by symbol) from code lengths."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        codes[sym] = code
        prev = int(lengths[sym])
        code += 1
    return codes


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Encode ``symbols`` with the code given by ``lengths``; return (bytes, number of bits)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return b"", 0
    if np.any(lengths[symbols] == 0):
        raise ValueError("a symbol to encode has no code (zero length)")
    codes = canonical_codes(lengths)
    sym_len = lengths[symbols].astype(np.int64)
    sym_code = codes[symbols]
    width = int(sym_len.max())
    # (N, width) bit matrix, right-aligned codes; keep each row's last sym_len bits.
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    bits = ((sym_code[:, None] >> shifts) & 1).astype(np.uint8)
    keep = np.arange(width)[None, :] >= (width - sym_len)[:, None]
    stream = bits[keep]
    return np.packbits(stream).tobytes(), int(stream.size)


def decode(data: bytes, n_bits: int, n_symbols: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``n_symbols`` symbols from a stream written by :func:`encode`."""
    if n_symbols == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max())
    codes = canonical_codes(lengths)
    table_sym = np.zeros(1 << width, dtype=np.int64)
    table_len = np.zeros(1 << width, dtype=np.int64)
    for sym in np.flatnonzero(lengths):
        span = 1 << (width - lengths[sym])
        start = codes[sym] << (width - lengths[sym])
        table_sym[start : start + span] = sym
        table_len[start : start + span] = lengths[sym]
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n_bits].astype(np.int64)
    bits = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
    window = np.zeros(n_bits, dtype=np.int64)  # the next `width` bits at every position
    for j in range(width):
        window = (window << 1) | bits[j : j + n_bits]
    out = np.empty(n_symbols, dtype=np.int64)
    sym_at, len_at = table_sym[window].tolist(), table_len[window].tolist()
    pos = 0
    for i in range(n_symbols):
        if pos >= n_bits:
            raise ValueError("Huffman stream ends early (truncated or corrupt)")
        if len_at[pos] == 0:  # no code starts with these bits: the lengths are not a code
            raise ValueError(f"no Huffman code matches the bits at {pos} (corrupt code lengths)")
        out[i] = sym_at[pos]
        pos += len_at[pos]
    if pos != n_bits:
        raise ValueError(
            f"the Huffman stream holds {n_bits} bits but its {n_symbols} symbols take {pos}"
        )
    return out
