"""A machine-readable frame number in the pixels: a row of black/white blocks that survives VP8/H.264.

32 blocks of 32x16 luma pixels across the top-left: 24 bits of frame number, 8 bits of check.
"""

from __future__ import annotations

import numpy as np

__all__ = ["write_stamp", "read_stamp", "copy_stamp", "STAMP_ROWS", "STAMP_WIDTH"]

BLOCK_W, STAMP_ROWS, BITS = 32, 16, 32
STAMP_WIDTH = BLOCK_W * BITS
_WHITE, _BLACK = 235, 16


def _check(number: int) -> int:
    b = number.to_bytes(3, "big")
    return (b[0] ^ b[1] ^ b[2] ^ 0xA5) & 0xFF


def _bits(number: int) -> np.ndarray:
    word = ((number & 0xFFFFFF) << 8) | _check(number & 0xFFFFFF)
    return np.array([(word >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=bool)


def write_stamp(y: np.ndarray, number: int) -> None:
    """Write `number` (mod 2**24) into a luma plane in place. Needs a plane >= 1024 wide."""
    row = np.where(_bits(number), _WHITE, _BLACK).astype(np.uint8)
    y[:STAMP_ROWS, :STAMP_WIDTH] = np.repeat(row, BLOCK_W)[None, :]


def read_stamp(y: np.ndarray) -> int | None:
    """The stamped number, or None when the top row carries no valid stamp."""
    if y.shape[0] < STAMP_ROWS or y.shape[1] < STAMP_WIDTH:
        return None
    # Sample each block's centre: codecs smear edges, not centres.
    band = y[4:12, :STAMP_WIDTH].reshape(8, BITS, BLOCK_W)[:, :, 8:24]
    bits = band.mean(axis=(0, 2)) > 128
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    number, check = word >> 8, word & 0xFF
    return number if _check(number) == check else None


def copy_stamp(src_y: np.ndarray, dst_y: np.ndarray) -> None:
    """Carry the input's stamp onto a model's output, so latency can be read after the model."""
    if src_y.shape[1] >= STAMP_WIDTH and dst_y.shape[1] >= STAMP_WIDTH:
        dst_y[:STAMP_ROWS, :STAMP_WIDTH] = src_y[:STAMP_ROWS, :STAMP_WIDTH]
