"""The fake camera's pictures: which clip Chromium's fake camera loops in a bench run.

- "plain" is write_stamped_clip (smooth bars and a moving disc: cheap to encode).
- "detailed" is what a real camera sends: fine texture and sharp edges over the whole frame, the
  view panning a little every frame and an object crossing it, and sensor noise that changes every
  frame (luma and chroma). Noise and fine texture are what make a realtime VP8 encoder spend its
  bits and its time: nothing repeats exactly from one frame to the next.

Every picture carries the frame stamp (decart_nb.media.stamp) that the bench reads to count
presented frames; the detailed picture keeps the rows around the stamp flat and free of noise,
so the stamp stays readable after the codec. Generated from a seed: the same clip every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from decart_nb.media.stamp import STAMP_ROWS, write_stamp

from .lab import write_stamped_clip

__all__ = ["CLEAN_ROWS", "NOISE_SIGMA", "PICTURES", "detailed_frames", "write_clip"]

PICTURES = ("plain", "detailed")
SEED = 24
NOISE_SIGMA = 5.0  # luma levels: a webcam indoors (chroma gets half)
PAN_PX = (3, 1)  # the view moves this many pixels a frame (x, y): a hand-held camera
# The stamp's rows and a margin under them stay flat grey without noise: a codec smears noise
# over block edges, and a stamp block read as the wrong bit counts no frame.
CLEAN_ROWS = STAMP_ROWS + 16
_CLEAN_GREY = 128


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A still scene larger than the frame: fine grain, hard-edged tiles of many sizes, thin lines."""
    grain = rng.integers(0, 256, size=(height, width), dtype=np.int16)
    # Tiles: random rectangles of random brightness, edges everywhere.
    tiles = np.zeros((height, width), dtype=np.int16)
    for _ in range(600):
        h, w = rng.integers(8, 120, size=2)
        y0, x0 = rng.integers(0, height - h), rng.integers(0, width - w)
        tiles[y0 : y0 + h, x0 : x0 + w] = rng.integers(20, 236)
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = (np.sin(xx * 0.9 + yy * 0.35) > 0).astype(np.int16) * 40  # 1-7 px lines
    scene: np.ndarray = 0.55 * tiles + 0.25 * grain + stripes
    out: np.ndarray = np.clip(scene, 16, 235).astype(np.int16)
    return out


def detailed_frames(count: int, width: int = 1280, height: int = 720) -> Iterator[tuple[np.ndarray, ...]]:
    """`count` frames (y, u, v as uint8 planes, yuv420p), stamped with their number, one at a time."""
    rng = np.random.default_rng(SEED)
    pan_x, pan_y = PAN_PX
    scene = _texture(rng, height + pan_y * count + 2, width + pan_x * count + 2)
    chroma = _texture(rng, (height + pan_y * count) // 2 + 2, (width + pan_x * count) // 2 + 2)
    yy, xx = np.mgrid[0:height, 0:width]
    for n in range(count):
        y = scene[n * pan_y : n * pan_y + height, n * pan_x : n * pan_x + width].copy()
        cx, cy = int(width * (0.15 + 0.7 * n / max(1, count))), height // 2
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (height // 6) ** 2
        y[disc] = y[disc] // 2 + 110  # an object crossing: the texture shows through, darker
        y = y + rng.normal(0.0, NOISE_SIGMA, size=y.shape)
        cy0, cx0 = n * pan_y // 2, n * pan_x // 2
        u, v = (
            0.5 * chroma[cy0 : cy0 + height // 2, cx0 + k : cx0 + k + width // 2]
            + 64
            + rng.normal(0.0, NOISE_SIGMA / 2, size=(height // 2, width // 2))
            for k in (0, 1)
        )
        planes = [np.clip(p, 16, 240).astype(np.uint8) for p in (y, u, v)]
        planes[0][:CLEAN_ROWS] = _CLEAN_GREY
        write_stamp(planes[0], n)
        yield tuple(planes)


def _write_detailed(path: Path, seconds: float, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    count = max(1, round(seconds * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for planes in detailed_frames(count, width, height):
            out.write(b"FRAME\n")
            for plane in planes:
                out.write(plane.tobytes())
    return path


def write_clip(path: Path, picture: str = "plain", seconds: float = 4.0) -> Path:
    """A stamped 1280x720@30 y4m clip of the named picture."""
    if picture == "plain":
        return write_stamped_clip(path, seconds=seconds)
    if picture == "detailed":
        return _write_detailed(path, seconds)
    raise ValueError(f"unknown picture {picture!r}; pictures: {', '.join(PICTURES)}")
