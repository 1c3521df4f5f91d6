"""Table lookups for uint8 planes, two pixels per lookup: about twice as fast as a plain np.take.

np.take widens every index to a 64-bit integer before it gathers, so it costs per element, and
that cost dominated the renderer on CPUs with smaller caches. A plane viewed as uint16 has half
the elements; a 65536-entry table then maps both pixels of a pair at once. The pair table takes
some 15 us to build (an outer sum of the 256-entry table with itself): a read-only table (a
look's) keeps its pair table, any other gets one per call.
A contiguous plane goes through in chunks whose widened indices stay in the core's cache. Few
and large: each numpy call gives up the GIL and takes it back, and in a comparison the other
arms' model threads want it at the same moments (docs/performance.md, target 9).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["lut", "pair_table"]

_CHUNK = 1 << 17  # pairs per np.take: 1 MiB of 64-bit indices, 4 chunks for a 720p luma plane
_PAIRS_KEPT = 32  # pair tables a thread keeps (a look has up to 6)
_local = threading.local()  # each worker thread: its own index buffer and pair tables


def pair_table(table: np.ndarray) -> np.ndarray:
    """table[lo] | table[hi] << 8 for every 16-bit pair; symmetric, so either byte order works."""
    wide = table.astype(np.uint16)
    pairs = np.empty((256, 256), np.uint16)
    np.add(np.left_shift(wide, 8)[:, None], wide[None, :], out=pairs)
    return pairs.reshape(-1)


def lut(table: np.ndarray, src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = table[src] for a 256-entry uint8 table; `out` must be a C-contiguous uint8 array."""
    if src.shape == out.shape and src.shape[-1] % 2 == 0 and src.strides[-1] == 1 and out.flags.c_contiguous:
        try:
            pairs, packed = src.view(np.uint16), out.view(np.uint16)
        except ValueError:  # rows start at odd addresses: no 16-bit view
            pass
        else:
            if pairs.flags.c_contiguous:
                _chunked(_pairs_of(table), pairs.reshape(-1), packed.reshape(-1))
            else:
                np.take(_pairs_of(table), pairs, out=packed, mode="clip")
            return out
    np.take(table, src, out=out, mode="clip")
    return out


def _pairs_of(table: np.ndarray) -> np.ndarray:
    """The pair table of `table`: kept per thread while `table` is read-only (so unchanged)."""
    if table.flags.writeable:
        return pair_table(table)
    kept: dict[int, tuple[np.ndarray, np.ndarray]] | None = getattr(_local, "pairs", None)
    if kept is None or len(kept) >= _PAIRS_KEPT:
        kept = _local.pairs = {}
    hit = kept.get(id(table))
    if hit is not None and hit[0] is table:  # holding the table keeps its id from being reused
        return hit[1]
    pairs = pair_table(table)
    kept[id(table)] = (table, pairs)
    return pairs


def _chunked(table: np.ndarray, src: np.ndarray, out: np.ndarray) -> None:
    indices = getattr(_local, "indices", None)
    if indices is None:
        indices = _local.indices = np.empty(_CHUNK, np.intp)
    for start in range(0, src.size, _CHUNK):
        part = src[start : start + _CHUNK]
        np.copyto(indices[: part.size], part)
        np.take(table, indices[: part.size], out=out[start : start + part.size], mode="clip")
