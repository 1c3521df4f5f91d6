"""Bring your own model: `fn(frame: np.ndarray, state) -> np.ndarray`, RGB uint8 in and out."""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np

from ..errors import DecartNBError, ErrorCode
from ..images import MAX_ARRAY_PIXELS
from ..media.frames import from_rgb, to_rgb
from ..state import GenerationState
from .base import Control, FrameEngine

__all__ = ["CallableEngine", "FrameFunction"]

FrameFunction = Callable[[np.ndarray, GenerationState], np.ndarray]


class CallableEngine(FrameEngine):
    """Runs a user function in the newest-frame-wins worker. It is called for every frame, also
    when the state is passthrough (no prompt, no image): the function decides what that means.

    Staged: the RGB conversions run in their own threads, so the function is called again the
    moment it returns (a 50 ms function gives 19-20 fps instead of 18)."""

    staged = True
    skip_passthrough = False

    def __init__(self, fn: FrameFunction | Callable[..., object], controls: tuple[Control, ...] = ()) -> None:
        super().__init__()
        self.fn: Callable[..., object] = fn  # any callable: what it returns is checked in finish()
        self.controls = controls
        self.name = getattr(fn, "__name__", "callable")

    def prepare(self, frame: av.VideoFrame) -> np.ndarray:
        return to_rgb(frame)

    def infer(self, prepared: np.ndarray, state: GenerationState) -> object:
        return self.fn(prepared, state)

    def finish(self, result: object, frame: av.VideoFrame) -> av.VideoFrame:
        if not isinstance(result, np.ndarray) or result.ndim != 3 or result.shape[2] != 3:
            got = getattr(result, "shape", type(result).__name__)
            raise DecartNBError(ErrorCode.ENGINE_ERROR, f"{self.name} must return an HxWx3 array, got {got}")
        if result.shape[0] * result.shape[1] > MAX_ARRAY_PIXELS:  # from the shape, before any copy
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR,
                f"{self.name} returned {result.shape}: at most {MAX_ARRAY_PIXELS} pixels",
            )
        if result.dtype != np.uint8:
            result = np.clip(result, 0, 255).astype(np.uint8)
        if result.shape[0] % 2 or result.shape[1] % 2:
            result = result[: result.shape[0] // 2 * 2, : result.shape[1] // 2 * 2]
        return from_rgb(result, like=frame)
