"""Deep Compression: pruning, weight sharing, Huffman coding, the storage format, export."""

from .pipeline import compress, load_compressed
from .prune import magnitude_masks, sparsity_of
from .share import kmeans_1d, share_weights
from .storage import FormatError, read_compressed, write_compressed

__all__ = [
    "FormatError",
    "compress",
    "kmeans_1d",
    "load_compressed",
    "magnitude_masks",
    "read_compressed",
    "share_weights",
    "sparsity_of",
    "write_compressed",
]
