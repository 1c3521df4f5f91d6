"""Bring your own model: `fn(frame: np.ndarray, state) -> np.ndarray`, RGB uint8 in and out."""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np

from ..errors import DecartNBError, ErrorCode
from ..media.frames import from_rgb, to_rgb
from ..state import GenerationState
from .base import Control, FrameEngine

__all__ = ["CallableEngine", "FrameFunction"]

FrameFunction = Callable[[np.ndarray, GenerationState], np.ndarray]


class CallableEngine(FrameEngine):
    """Runs a user function in the newest-frame-wins worker. It is called for every frame, also
    when the state is passthrough (no prompt, no image): the function decides what that means."""

    def __init__(self, fn: FrameFunction, controls: tuple[Control, ...] = ()) -> None:
        super().__init__()
        self.fn = fn
        self.controls = controls
        self.name = getattr(fn, "__name__", "callable")

    skip_passthrough = False

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        out = self.fn(to_rgb(frame), state)
        if not isinstance(out, np.ndarray) or out.ndim != 3 or out.shape[2] != 3:
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR,
                f"{self.name} must return an HxWx3 array, got {getattr(out, 'shape', type(out).__name__)}",
            )
        if out.dtype != np.uint8:
            out = np.clip(out, 0, 255).astype(np.uint8)
        if out.shape[0] % 2 or out.shape[1] % 2:
            out = out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2]
        return from_rgb(out, like=frame)
