"""Reference-image colour steering: move each YUV plane's mean and spread toward the image's.

The image's statistics are computed once per state; per frame the output's statistics are read
from a sparse sample (1 pixel in 16) and turned into three 256-entry tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tables import rgb_to_yuv

__all__ = ["ColourTarget", "colour_target", "transfer_luts"]

_X = np.arange(256, dtype=np.float64)
_SPREAD_LIMITS = (0.25, 4.0)  # never stretch or squash a plane's contrast more than this


@dataclass(frozen=True)
class ColourTarget:
    means: tuple[float, float, float]
    stds: tuple[float, float, float]
    weights: tuple[float, float, float]  # how far each plane moves toward the image (0..1)


def colour_target(image: np.ndarray, with_prompt: bool) -> ColourTarget:
    """The Y, U, V statistics of an RGB uint8 image. With a prompt the style keeps more of its
    own luma and colour; without one the image steers almost entirely."""
    planes = rgb_to_yuv(image)
    weights = (0.35, 0.8, 0.8) if with_prompt else (0.6, 1.0, 1.0)
    return ColourTarget(
        means=(float(planes[0].mean()), float(planes[1].mean()), float(planes[2].mean())),
        stds=(float(planes[0].std()), float(planes[1].std()), float(planes[2].std())),
        weights=weights,
    )


def transfer_luts(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, target: ColourTarget
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One table per plane mapping these planes' statistics toward the target's."""
    samples = (y[::4, ::4], u[::2, ::2], v[::2, ::2])
    luts = []
    for plane, mean, std, weight in zip(samples, target.means, target.stds, target.weights, strict=True):
        here_mean, here_std = _mean_std(plane)
        gain = float(np.clip(std / max(here_std, 1.0), *_SPREAD_LIMITS))
        moved = mean + (_X - here_mean) * gain
        luts.append(np.clip(np.rint(_X + weight * (moved - _X)), 0, 255).astype(np.uint8))
    return luts[0], luts[1], luts[2]


def _mean_std(plane: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation from exact integer sums: three times faster than
    plane.mean() and plane.std() on a strided uint8 sample (and no BLAS call)."""
    x = plane.astype(np.int64)
    total, squares = int(x.sum()), int(np.square(x, out=x).sum())
    mean = total / x.size
    return mean, max(squares / x.size - mean * mean, 0.0) ** 0.5
