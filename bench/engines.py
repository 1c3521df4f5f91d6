"""The model costs both pipelines run, as plain `fn(rgb, state) -> rgb` functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MODELS", "PAINT_LEVELS", "PAINT_ROWS", "Model", "paint_level"]

Model = Callable[[np.ndarray, Any], np.ndarray] | None

# The paint model fills these rows with a grey that depends on the prompt: a state change is
# visible in the pixels of the frames that come back over the wire.
PAINT_ROWS = slice(480, 700)
PAINT_LEVELS = {"dark": 30, "bright": 225}


def sleep_50ms(rgb: np.ndarray, state: Any) -> np.ndarray:
    time.sleep(0.050)
    return rgb


def paint(rgb: np.ndarray, state: Any) -> np.ndarray:
    rgb[PAINT_ROWS] = PAINT_LEVELS.get(getattr(state, "prompt", None) or "dark", 30)
    return rgb


def paint_level(luma: np.ndarray) -> str | None:
    """Which prompt painted this frame (read from the decoded luma), or None."""
    mean = float(luma[PAINT_ROWS, 64:-64].mean())
    if mean < 70:
        return "dark"
    if mean > 180:
        return "bright"
    return None


#: name -> model (None: passthrough, no model at all)
MODELS: dict[str, Model] = {"passthrough": None, "sleep50": sleep_50ms, "paint": paint}
