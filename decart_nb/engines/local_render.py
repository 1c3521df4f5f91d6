"""The local model's renderer: a Look applied to yuv420p planes with numpy, in reused buffers.

Per frame it only indexes 256-entry tables (np.take), compares, adds and takes minima of uint8
planes: a 1280x720 frame costs a few milliseconds on one core (bench/styles.py measures it).
Chroma stays at half resolution throughout; no RGB conversion happens per frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .local_tables import LookTables, Maps
from .styles import Look

__all__ = ["Planes", "Scratch", "render", "blend", "apply_luts"]

U8 = np.uint8
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


class Scratch:
    """Work buffers for one frame size, reused frame after frame (the worker is one thread)."""

    def __init__(self, h: int, w: int) -> None:
        ch, cw = (h + 1) // 2, (w + 1) // 2
        self.shape = (h, w)
        self.src, self.blur, self.tone, self.out = (np.empty((h, w), U8) for _ in range(4))
        self.e, self.t1, self.t2 = (np.empty((h, w), U8) for _ in range(3))
        self.mask = np.empty((h, w), np.bool_)
        self.acc1, self.acc2 = np.empty((h, w), np.uint16), np.empty((h, w), np.uint16)
        self.usrc, self.vsrc, self.u, self.v = (np.empty((ch, cw), U8) for _ in range(4))
        # where the reference-image tables write before a strength blend
        self.steered = (np.empty((h, w), U8), np.empty((ch, cw), U8), np.empty((ch, cw), U8))
        self.c16a, self.c16b = np.empty((ch, cw), np.int16), np.empty((ch, cw), np.int16)
        self.cacc1, self.cacc2 = np.empty((ch, cw), np.uint16), np.empty((ch, cw), np.uint16)
        self.blend_accs = ((self.acc1, self.acc2), (self.cacc1, self.cacc2), (self.cacc1, self.cacc2))


def render(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, look: Look, t: LookTables, maps: Maps, s: Scratch
) -> Planes:
    """The look applied to one frame's planes; the results live in `s` until the next frame."""
    if look.pixel >= 2:
        y, u, v = (
            _blocks(y, look.pixel, s.src),
            _blocks(u, look.pixel // 2, s.usrc),
            _blocks(v, look.pixel // 2, s.vsrc),
        )
    if look.blur > 0:
        y = _box(y, look.blur, s.blur, s.acc1, s.acc2)
    yt = np.take(t.tone, y, out=s.tone)
    if t.edge_dark is not None or t.edge_glow is not None:
        _outline(y, yt, t, look.thick_edges, s)
    if t.pal_y is not None and t.pal_u is not None and t.pal_v is not None:
        half = yt[::2, ::2]
        uo, vo = np.take(t.pal_u, half, out=s.u), np.take(t.pal_v, half, out=s.v)
        yo = np.take(t.pal_y, yt, out=s.out)
    else:
        yo = yt
        uo, vo = _chroma(u, v, t, s)
    if look.chroma_blur > 0:
        uo = _box(uo, look.chroma_blur, uo, s.cacc1, s.cacc2)
        vo = _box(vo, look.chroma_blur, vo, s.cacc1, s.cacc2)
    _texture(y, yo, maps, s)
    return yo, uo, vo


def _chroma(u: np.ndarray, v: np.ndarray, t: LookTables, s: Scratch) -> tuple[np.ndarray, np.ndarray]:
    if t.u_lut is not None and t.v_lut is not None:
        return np.take(t.u_lut, u, out=s.u), np.take(t.v_lut, v, out=s.v)
    assert t.u_a is not None and t.u_b is not None and t.v_a is not None and t.v_b is not None
    assert t.post is not None
    a, b = s.c16a, s.c16b
    np.add(np.take(t.u_a, u, out=a), np.take(t.u_b, v, out=b), out=a)
    uo = np.take(t.post, a, out=s.u, mode="clip")
    np.add(np.take(t.v_a, v, out=a), np.take(t.v_b, u, out=b), out=a)
    vo = np.take(t.post, a, out=s.v, mode="clip")
    return uo, vo


def _outline(src: np.ndarray, yt: np.ndarray, t: LookTables, thick: bool, s: Scratch) -> None:
    """Darken (ink) and/or brighten (glow) `yt` along the source's luma edges."""
    e, t1, t2 = s.e, s.t1, s.t2
    # |dx| and |dy| across two pixels (a blurred step still shows), without leaving uint8:
    # max(a, b) - min(a, b)
    np.maximum(src[:, 2:], src[:, :-2], out=e[:, 1:-1])
    np.minimum(src[:, 2:], src[:, :-2], out=t1[:, 1:-1])
    np.subtract(e[:, 1:-1], t1[:, 1:-1], out=e[:, 1:-1])
    e[:, 0] = e[:, -1] = 0
    np.maximum(src[2:], src[:-2], out=t1[1:-1])
    np.minimum(src[2:], src[:-2], out=t2[1:-1])
    np.subtract(t1[1:-1], t2[1:-1], out=t1[1:-1])
    t1[0] = t1[-1] = 0
    np.maximum(e, t1, out=e)
    if thick:  # dilate by one pixel right and down
        np.maximum(e[:, 1:], e[:, :-1], out=t1[:, 1:])
        t1[:, 0] = e[:, 0]
        np.maximum(t1[1:], t1[:-1], out=e[1:])
        e[0] = t1[0]
    if t.edge_dark is not None:
        np.take(t.edge_dark, e, out=t1)
        np.minimum(yt, t1, out=t1)
        np.subtract(yt, t1, out=yt)
    if t.edge_glow is not None:
        np.take(t.edge_glow, e, out=t1)
        np.subtract(255, yt, out=t2)
        np.minimum(t1, t2, out=t1)
        np.add(yt, t1, out=yt)


def _texture(src: np.ndarray, yo: np.ndarray, maps: Maps, s: Scratch) -> None:
    t1 = s.t1
    if maps.ink_at is not None:  # ink where the source is darker than the pattern's threshold
        np.less(src, maps.ink_at, out=s.mask)
        np.multiply(s.mask.view(U8), maps.ink, out=t1)
        np.minimum(yo, t1, out=t1)
        np.subtract(yo, t1, out=yo)
    if maps.add is not None:
        np.subtract(255, yo, out=t1)
        np.minimum(t1, maps.add, out=t1)
        np.add(yo, t1, out=yo)
    if maps.sub is not None:
        np.minimum(yo, maps.sub, out=t1)
        np.subtract(yo, t1, out=yo)


@lru_cache(maxsize=16)
def _divide_table(n: int) -> np.ndarray:
    return (np.arange(255 * n + 1) // n).astype(U8)


def _box(src: np.ndarray, r: int, dst: np.ndarray, acc1: np.ndarray, acc2: np.ndarray) -> np.ndarray:
    """A (2r+1)^2 box blur in uint16 sums; the r-pixel border keeps the source (no dark frame)."""
    h, w = src.shape
    if h <= 2 * r or w <= 2 * r:
        np.copyto(dst, src)
        return dst
    np.copyto(acc1, src)
    for k in range(1, r + 1):
        np.add(acc1[:, k:], src[:, :-k], out=acc1[:, k:])
        np.add(acc1[:, :-k], src[:, k:], out=acc1[:, :-k])
    np.copyto(acc2, acc1)
    for k in range(1, r + 1):
        np.add(acc2[k:], acc1[:-k], out=acc2[k:])
        np.add(acc2[:-k], acc1[k:], out=acc2[:-k])
    inner = (slice(r, h - r), slice(r, w - r))
    if dst is not src:
        np.copyto(dst, src)
    np.take(_divide_table((2 * r + 1) ** 2), acc2[inner], out=dst[inner])
    return dst


def _blocks(src: np.ndarray, b: int, out: np.ndarray) -> np.ndarray:
    """Pixel art: each b x b block takes its mean (4 samples; a single one picks up noise)."""
    h, w = src.shape
    q = max(b // 4, 1)
    small: np.ndarray | None = None
    for dy in (q, b - 1 - q):
        for dx in (q, b - 1 - q):
            rows = np.minimum(np.arange(dy, h + b - 1, b)[: -(-h // b)], h - 1)
            cols = np.minimum(np.arange(dx, w + b - 1, b)[: -(-w // b)], w - 1)
            part = src[rows][:, cols].astype(np.uint16)
            small = part if small is None else small + part
    assert small is not None
    small = ((small + 2) >> 2).astype(U8)
    wide = np.repeat(small, b, axis=1)[:, :w]
    if h % b == 0:
        out.reshape(h // b, b, w)[:] = wide[:, None, :]
    else:
        out[:] = np.repeat(wide, b, axis=0)[:h]
    return out


def apply_luts(
    planes: tuple[np.ndarray, ...], luts: tuple[np.ndarray, ...], outs: tuple[np.ndarray, ...]
) -> None:
    for plane, lut, out in zip(planes, luts, outs, strict=True):
        np.take(lut, plane, out=out)


def blend(
    a: np.ndarray, b: np.ndarray, weight: int, out: np.ndarray, acc1: np.ndarray, acc2: np.ndarray
) -> None:
    """out = (a * (256 - weight) + b * weight) >> 8, in uint16 (weight in 0..256)."""
    np.multiply(a, 256 - weight, out=acc1, dtype=np.uint16)
    np.multiply(b, weight, out=acc2, dtype=np.uint16)
    np.add(acc1, acc2, out=acc1)
    np.right_shift(acc1, 8, out=acc1)
    np.copyto(out, acc1, casting="unsafe")
