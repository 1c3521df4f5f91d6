"""A machine-readable frame number in the pixels: a row of black/white blocks that survives VP8/H.264.

32 blocks across the top-left 16 luma rows (32 px wide from 1024 px frames up, narrower on smaller
frames): 24 bits of frame number, 8 bits of check.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STAMP_ROWS", "copy_stamp", "read_stamp", "stamp_width", "write_stamp"]

STAMP_ROWS, BITS = 16, 32
_WHITE, _BLACK = 235, 16
_MIN_BLOCK = 8


def _block(width: int) -> int:
    return min(32, width // BITS)


def stamp_width(width: int) -> int:
    """How many columns the stamp covers on a frame this wide (0: too narrow to stamp)."""
    block = _block(width)
    return block * BITS if block >= _MIN_BLOCK else 0


def _check(number: int) -> int:
    b = number.to_bytes(3, "big")
    return (b[0] ^ b[1] ^ b[2] ^ 0xA5) & 0xFF


def _bits(number: int) -> np.ndarray:
    word = ((number & 0xFFFFFF) << 8) | _check(number & 0xFFFFFF)
    return np.array([(word >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=bool)


def write_stamp(y: np.ndarray, number: int) -> None:
    """Write `number` (mod 2**24) into a luma plane in place (no-op on frames under 256 px)."""
    width = stamp_width(y.shape[1])
    if not width or y.shape[0] < STAMP_ROWS:
        return
    row = np.where(_bits(number), _WHITE, _BLACK).astype(np.uint8)
    y[:STAMP_ROWS, :width] = np.repeat(row, width // BITS)[None, :]


def read_stamp(y: np.ndarray) -> int | None:
    """The stamped number, or None when the top rows carry no valid stamp."""
    width = stamp_width(y.shape[1])
    if not width or y.shape[0] < STAMP_ROWS:
        return None
    block = width // BITS
    # Sample each block's centre: codecs smear edges, not centres.
    band = y[4:12, :width].reshape(8, BITS, block)[:, :, block // 4 : block - block // 4]
    bits = band.mean(axis=(0, 2)) > 128
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    number, check = word >> 8, word & 0xFF
    return number if _check(number) == check else None


def copy_stamp(src_y: np.ndarray, dst_y: np.ndarray) -> None:
    """Carry the input's stamp onto a model's output, so latency can be read after the model."""
    width = stamp_width(src_y.shape[1])
    if width and src_y.shape[1] == dst_y.shape[1]:
        dst_y[:STAMP_ROWS, :width] = src_y[:STAMP_ROWS, :width]
