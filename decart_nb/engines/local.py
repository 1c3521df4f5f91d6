"""The embedded local model: fast CPU looks picked by prompt words (placeholder; see styles)."""

from __future__ import annotations

import av
import numpy as np

from ..media.frames import from_planes, to_planes
from ..state import GenerationState
from .base import Control, FrameEngine

__all__ = ["LocalEngine"]


class LocalEngine(FrameEngine):
    name = "local"
    controls = (Control("strength", "Strength", 0.0, 1.0, 0.05, 1.0, "0 returns the input, 1 the full look"),)

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        y, u, v = to_planes(frame)
        if state.prompt and "noir" in state.prompt.lower():
            u = np.full_like(u, 128)
            v = np.full_like(v, 128)
        else:
            y = 255 - y
        return from_planes(y, u, v, like=frame)
