"""The local model's renderer: a Look applied to yuv420p planes with numpy, in reused buffers.

Per frame it only looks up tables (two pixels at a time, lut.py), compares, adds and takes
minima of uint8 planes: a 1280x720 frame costs a few milliseconds on one core (bench/styles.py
measures it). Chroma stays at half resolution throughout; no RGB conversion happens per frame.
Shifts along a row run over the flattened plane: one long contiguous pass instead of one short,
unaligned pass per row. Where a shift wraps from one row into the next it only touches the
border columns, which each step then sets as the row-by-row version would.
"""

from __future__ import annotations

import numpy as np

from .lut import lut
from .styles import Look
from .tables import LookTables, Maps

__all__ = ["Planes", "Scratch", "apply_luts", "blend", "render"]

U8 = np.uint8
_BAND = 360  # rows per band (blur, blend): 2 at 720p; a band's uint16 sums at 1280 wide are 900 KiB each
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
Accs = tuple[np.ndarray, np.ndarray, np.ndarray]  # uint16 sums for a box blur


class Scratch:
    """Work buffers for one frame size, reused frame after frame (the worker is one thread)."""

    def __init__(self, h: int, w: int) -> None:
        ch, cw = (h + 1) // 2, (w + 1) // 2
        self.shape = (h, w)
        self.src, self.blur, self.tone, self.out = (np.empty((h, w), U8) for _ in range(4))
        self.e, self.t1, self.t2 = (np.empty((h, w), U8) for _ in range(3))
        self.mask = np.empty((h, w), np.bool_)
        self.accs = _sums(h, w)
        self.usrc, self.vsrc, self.u, self.v = (np.empty((ch, cw), U8) for _ in range(4))
        self.ublur, self.vblur, self.half = (np.empty((ch, cw), U8) for _ in range(3))
        # where the reference-image tables write before a strength blend
        self.steered = (np.empty((h, w), U8), np.empty((ch, cw), U8), np.empty((ch, cw), U8))
        self.uv = np.empty((ch, cw), np.uint16)  # U * 256 + V, to index a rotation's tables
        self.caccs = _sums(ch, cw)
        self.blend_accs = (self.accs[:2], self.caccs[:2], self.caccs[:2])


def _sums(h: int, w: int) -> Accs:
    return np.empty((h, w), np.uint16), np.empty((h, w), np.uint16), np.empty((h, w), np.uint16)


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
        y = _box(y, look.blur, s.blur, s.accs)
    elif not y.flags.c_contiguous:  # a padded frame plane: the row shifts need one flat run
        np.copyto(s.src, y)
        y = s.src
    yt = lut(t.tone, y, s.tone)
    if t.edge_dark is not None or t.edge_glow is not None:
        _outline(y, yt, t, look.thick_edges, s)
    if t.pal_y is not None and t.pal_u is not None and t.pal_v is not None:
        half = s.half  # one luma sample per chroma pixel, contiguous so that lut() takes pairs
        np.copyto(half, yt[::2, ::2])
        uo, vo = lut(t.pal_u, half, s.u), lut(t.pal_v, half, s.v)
        yo = lut(t.pal_y, yt, s.out)
    else:
        yo = yt
        uo, vo = _chroma(u, v, t, s)
    if look.chroma_blur > 0:
        uo = _box(uo, look.chroma_blur, s.ublur, s.caccs)
        vo = _box(vo, look.chroma_blur, s.vblur, s.caccs)
    _texture(y, yo, maps, s)
    return yo, uo, vo


def _chroma(u: np.ndarray, v: np.ndarray, t: LookTables, s: Scratch) -> tuple[np.ndarray, np.ndarray]:
    if t.u_lut is not None and t.v_lut is not None:
        return lut(t.u_lut, u, s.u), lut(t.v_lut, v, s.v)
    assert t.u_mix is not None and t.v_mix is not None
    # a rotation mixes the planes: one 65536-entry table per plane, indexed by U * 256 + V
    uv = s.uv
    np.multiply(u, 256, out=uv, dtype=np.uint16)
    np.add(uv, v, out=uv)
    return np.take(t.u_mix, uv, out=s.u, mode="clip"), np.take(t.v_mix, uv, out=s.v, mode="clip")


def _outline(src: np.ndarray, yt: np.ndarray, t: LookTables, thick: bool, s: Scratch) -> None:
    """Darken (ink) and/or brighten (glow) `yt` along the source's luma edges."""
    e, t1, t2 = s.e, s.t1, s.t2
    fs, fe, f1 = src.reshape(-1), e.reshape(-1), t1.reshape(-1)  # flat runs (src is C-contiguous)
    # |dx| and |dy| across two pixels (a blurred step still shows), without leaving uint8:
    # max(a, b) - min(a, b)
    np.maximum(fs[2:], fs[:-2], out=fe[1:-1])
    np.minimum(fs[2:], fs[:-2], out=f1[1:-1])
    np.subtract(fe[1:-1], f1[1:-1], out=fe[1:-1])
    e[:, 0] = e[:, -1] = 0
    np.maximum(src[2:], src[:-2], out=t1[1:-1])
    np.minimum(src[2:], src[:-2], out=t2[1:-1])
    np.subtract(t1[1:-1], t2[1:-1], out=t1[1:-1])
    t1[0] = t1[-1] = 0
    np.maximum(e, t1, out=e)
    if thick:  # dilate by one pixel right and down
        np.maximum(fe[1:], fe[:-1], out=f1[1:])
        t1[:, 0] = e[:, 0]
        np.maximum(t1[1:], t1[:-1], out=e[1:])
        e[0] = t1[0]
    if t.edge_dark is not None:
        lut(t.edge_dark, e, t1)
        np.minimum(yt, t1, out=t1)
        np.subtract(yt, t1, out=yt)
    if t.edge_glow is not None:
        lut(t.edge_glow, e, t1)
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


def _box(src: np.ndarray, r: int, dst: np.ndarray, accs: Accs) -> np.ndarray:
    """A (2r+1)^2 box blur in uint16 sums; the r-pixel border keeps the source (no dark frame).
    Bands of _BAND output rows keep the sums in the core's cache. Not in place: a band reads
    source rows that the band above has written."""
    assert dst is not src
    h, w = src.shape
    if h <= 2 * r or w <= 2 * r:
        np.copyto(dst, src)
        return dst
    if not src.flags.c_contiguous:  # a padded frame plane: the flat runs need one block
        src = np.ascontiguousarray(src)
    flat, area = src.reshape(-1), (2 * r + 1) ** 2
    pairs, rows, sums = (acc.reshape(-1) for acc in accs)
    for top in range(r, h - r, _BAND):
        bottom = min(top + _BAND, h - r)
        band = flat[(top - r) * w : (bottom + r) * w]  # the output rows and r rows either side
        n = band.size
        _window(band, r, 1, pairs[:n], rows[:n])  # along each row
        _window(rows[:n], r, w, pairs[:n], sums[:n])  # then down each column
        inner = sums[r * w : n - r * w]
        np.floor_divide(inner, area, out=inner)  # exact, and vectorised for a constant divisor
        np.copyto(dst[top:bottom, r : w - r], inner.reshape(bottom - top, w)[:, r : w - r], casting="unsafe")
    _copy_border(src, dst, r)
    return dst


def _window(x: np.ndarray, r: int, step: int, pairs: np.ndarray, out: np.ndarray) -> None:
    """out[i] = x[i - r*step] + ... + x[i + r*step] (flat arrays, for every i with all 2r+1 terms):
    sums of neighbouring pairs first, so 2r+1 terms take r+1 additions instead of 2r."""
    n = x.size
    np.add(x[: n - step], x[step:], out=pairs[: n - step], dtype=np.uint16)
    span = out[r * step : n - r * step]
    np.add(pairs[: span.size], x[2 * r * step :], out=span, dtype=np.uint16)
    for m in range(1, r):
        np.add(span, pairs[2 * m * step : 2 * m * step + span.size], out=span)


def _copy_border(src: np.ndarray, dst: np.ndarray, r: int) -> None:
    h, w = src.shape
    dst[:r], dst[h - r :] = src[:r], src[h - r :]
    dst[r : h - r, :r], dst[r : h - r, w - r :] = src[r : h - r, :r], src[r : h - r, w - r :]


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
    for plane, table, out in zip(planes, luts, outs, strict=True):
        lut(table, plane, out)


def blend(
    a: np.ndarray, b: np.ndarray, weight: int, out: np.ndarray, acc1: np.ndarray, acc2: np.ndarray
) -> None:
    """out = (a * (256 - weight) + b * weight) >> 8, in uint16 (weight in 0..256). In bands of
    _BAND rows, so that the five passes find their data in the core's own cache."""
    for top in range(0, a.shape[0], _BAND):
        rows = slice(top, top + _BAND)
        a16, b16 = acc1[: a[rows].shape[0]], acc2[: a[rows].shape[0]]
        np.multiply(a[rows], 256 - weight, out=a16, dtype=np.uint16)
        np.multiply(b[rows], weight, out=b16, dtype=np.uint16)
        np.add(a16, b16, out=a16)
        np.right_shift(a16, 8, out=a16)
        np.copyto(out[rows], a16, casting="unsafe")
