"""Precomputed tables for a Look: 256-entry LUTs (per look) and texture maps (per look and size).

Everything here runs once per state, never per frame; the renderer only indexes and adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .styles import Look

__all__ = ["CHROMA_OFFSET", "LookTables", "Maps", "look_maps", "look_tables", "rgb_to_yuv"]

CHROMA_OFFSET = 2048  # chroma sums are shifted by this so they index a table from 0
_X = np.arange(256, dtype=np.float64)


def rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range, as the pipeline's frames use (float arrays)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.257 * r + 0.504 * g + 0.098 * b + 16
    u = -0.148 * r - 0.291 * g + 0.439 * b + 128
    v = 0.439 * r - 0.368 * g - 0.071 * b + 128
    return y, u, v


def _u8(values: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


def _tone(look: Look) -> np.ndarray:
    x = _X / 255.0
    if look.invert:
        x = 1.0 - x
    x = x**look.gamma
    x = (x - 0.5) * look.contrast + 0.5 + look.brightness / 255.0
    x = look.lift + np.clip(x, 0.0, 1.0) * (1.0 - look.lift)
    if look.levels >= 2:
        x = _posterize(x, look.levels)
    return _u8(x * 255.0)


def _posterize(x: np.ndarray, levels: int, ramp: float = 0.2) -> np.ndarray:
    """Bands with a short linear ramp (a fifth of a band) between them: camera noise near a
    boundary then wobbles the shade a little instead of flipping pixels between two bands."""
    t = x * (levels - 1)
    base = np.floor(t)
    step = np.clip((t - base - 0.5) / ramp + 0.5, 0.0, 1.0)
    banded: np.ndarray = np.minimum(base + step, levels - 1) / (levels - 1)
    return banded


def _posterize_chroma(c: np.ndarray, levels: int) -> np.ndarray:
    if levels < 2:
        return c
    step = 256.0 / levels
    return 128.0 + np.round((c - 128.0) / step) * step


def _palette(anchors: tuple[tuple[int, int, int], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Luma index -> (Y, U, V) of the palette's colour, interpolated between anchors."""
    stops = np.linspace(0, 255, len(anchors))
    rgb = np.stack([np.interp(_X, stops, [a[i] for a in anchors]) for i in range(3)], axis=-1)
    return rgb_to_yuv(rgb)


@dataclass(frozen=True)
class LookTables:
    """256-entry tables. With a palette, `pal_*` map the toned luma to the output pixel; otherwise
    chroma goes through the single-plane `u_lut` and `v_lut`, or, when the hue rotates (which
    mixes the planes), through the 65536-entry `u_mix[U * 256 + V]` and `v_mix`."""

    tone: np.ndarray
    edge_dark: np.ndarray | None
    edge_glow: np.ndarray | None
    pal_y: np.ndarray | None = None
    pal_u: np.ndarray | None = None
    pal_v: np.ndarray | None = None
    u_lut: np.ndarray | None = None
    v_lut: np.ndarray | None = None
    u_mix: np.ndarray | None = None
    v_mix: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Read-only: lut() may then keep each table's pair table for as long as the look lives.
        for table in vars(self).values():
            if table is not None:
                table.setflags(write=False)


def _edge_table(strength: float, threshold: int, top: float) -> np.ndarray | None:
    if strength <= 0:
        return None
    ramp = np.clip((_X - threshold) * (255.0 / 48.0), 0, 255)  # full effect 48 levels above threshold
    return _u8(ramp * strength * top / 255.0)


@lru_cache(maxsize=16)  # a rotating look holds two 64 KiB tables
def look_tables(look: Look) -> LookTables:
    edge_dark = _edge_table(look.edges, look.edge_threshold, 230.0)
    edge_glow = _edge_table(look.glow, look.edge_threshold, 255.0)
    tone = _tone(look)
    s, tu, tv = look.saturation, look.tint[0], look.tint[1]
    if look.palette:
        y, u, v = _palette(look.palette)
        u = _posterize_chroma(128.0 + s * (u - 128.0) + tu, look.chroma_levels)
        v = _posterize_chroma(128.0 + s * (v - 128.0) + tv, look.chroma_levels)
        return LookTables(tone, edge_dark, edge_glow, pal_y=_u8(y), pal_u=_u8(u), pal_v=_u8(v))
    if look.hue == 0.0:
        u = _posterize_chroma(128.0 + s * (_X - 128.0) + tu, look.chroma_levels)
        v = _posterize_chroma(128.0 + s * (_X - 128.0) + tv, look.chroma_levels)
        return LookTables(tone, edge_dark, edge_glow, u_lut=_u8(u), v_lut=_u8(v))
    # Rotation mixes the planes: U' = post[u_a[U] + u_b[V]], V' = post[v_a[V] + v_b[U]] (each
    # term rounded on its own), tabulated for every (U, V): one lookup per pixel and plane.
    cos, sin = math.cos(math.radians(look.hue)), math.sin(math.radians(look.hue))
    c = _X - 128.0
    sums = np.arange(2 * CHROMA_OFFSET, dtype=np.float64) - CHROMA_OFFSET
    post = _u8(_posterize_chroma(np.clip(sums, 0, 255), look.chroma_levels))

    def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [U, V] -> post[a[U] + b[V]]
        total = np.rint(a)[:, None] + np.rint(b)[None, :]
        taken: np.ndarray = np.take(post, total.astype(np.intp).reshape(-1), mode="clip")
        return taken

    return LookTables(
        tone,
        edge_dark,
        edge_glow,
        u_mix=mix(CHROMA_OFFSET + 128.0 + tu + s * cos * c, -s * sin * c),
        v_mix=mix(s * sin * c, CHROMA_OFFSET + 128.0 + tv + s * cos * c),
    )


@dataclass(frozen=True)
class Maps:
    """Full-size uint8 maps: `ink_at` inks a pixel whose source luma is below it (hatching,
    halftone); `add`/`sub` brighten/darken (grain, paper, canvas, scanlines, grid, vignette)."""

    ink_at: np.ndarray | None
    ink: int
    add: np.ndarray | None
    sub: np.ndarray | None


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((h, w), dtype=np.float32)


def _smooth_noise(seed: int, h: int, w: int, cell: int) -> np.ndarray:
    """Unit noise that varies over about `cell` pixels (bilinear between random knots)."""
    knots = _noise(seed, h // cell + 2, w // cell + 2)
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    rows = np.stack([np.interp(xs, np.arange(knots.shape[1]), row) for row in knots])
    cols = np.stack([np.interp(ys, np.arange(knots.shape[0]), col) for col in rows.T], axis=1)
    return cols.astype(np.float32)


def _pattern(kind: str, h: int, w: int, amount: float) -> tuple[np.ndarray | None, np.ndarray | float]:
    """(ink threshold map or None, signed texture) for a texture kind; fixed seeds, so the texture
    is part of the look."""
    yy, xx = np.ogrid[0:h, 0:w]
    if kind == "hatch":
        diag = np.maximum(((xx + yy) % 7 == 0) * np.float32(150), ((xx - yy) % 7 == 0) * np.float32(95))
        return _u8(diag * amount), 0.0
    if kind == "halftone":
        cell = 8
        dy, dx = (yy % cell) - cell / 2 + 0.5, (xx % cell) - cell / 2 + 0.5
        radius = np.sqrt(dx * dx + dy * dy) / (cell / math.sqrt(2) / 2)  # 0 centre .. ~1.4 corner
        return _u8(np.clip(1.0 - radius, 0, 1) * 190 * amount), 0.0
    if kind == "paper":
        return None, (_smooth_noise(11, h, w, 32) * 6 + _noise(12, h, w) * 4) * amount
    if kind == "canvas":
        weave = np.sin(xx * math.pi / 2).astype(np.float32) * np.sin(yy * math.pi / 2).astype(np.float32)
        return None, (weave * 10 + _noise(13, h, w) * 3) * amount
    if kind == "scanlines":
        return None, np.broadcast_to(((yy % 3) == 2) * np.float32(-90.0 * amount), (h, w))
    if kind == "grid":
        return None, (((xx % 8) == 7) | ((yy % 8) == 7)) * np.float32(-60.0 * amount)
    return None, 0.0


@lru_cache(maxsize=4)  # each entry holds up to three frame-sized maps
def look_maps(look: Look, h: int, w: int) -> Maps:
    ink_at, signed = _pattern(look.texture, h, w, look.texture_amount)
    if look.grain > 0:
        signed = signed + _noise(7, h, w) * np.float32(14 * look.grain)
    if look.vignette > 0:
        yy, xx = np.ogrid[0:h, 0:w]
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2  # 0 centre, 2 corners
        amount = min(look.vignette, 0.8)  # style, 'cinematic' and 'vignette' stack; corners stay visible
        signed = signed - (np.clip(r2 - 0.25, 0, None) * (110 * amount)).astype(np.float32)
    field = np.broadcast_to(np.asarray(signed, np.float32), (h, w))
    add = _u8(np.clip(field, 0, None)) if (field > 0.5).any() else None
    sub = _u8(np.clip(-field, 0, None)) if (field < -0.5).any() else None
    return Maps(ink_at, 110 if look.texture == "hatch" else 200, add, sub)
