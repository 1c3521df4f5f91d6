"""The results row: its columns, and rows for items that could not run."""

from __future__ import annotations

from typing import Any

from ..errors import DecartNBError
from .items import Item

__all__ = ["COLUMNS", "ITEM_FAULTS", "new_row", "error_row"]

#: The columns of results.csv, in order (a metrics hook's columns follow them).
COLUMNS = (
    "index",
    "prompt",
    "image",
    "source",
    "seed",
    "repeat",
    "enhance",
    "state_version",
    "first_frame_ms",
    "fps_out",
    "latency_ms_p50",
    "latency_ms_p95",
    "model_ms_p50",
    "frames_out",
    "frames_dropped",
    "mean_r",
    "mean_g",
    "mean_b",
    "diff_vs_passthrough",
    "snapshot",
    "clip",
    "error_code",
    "error",
    "engine_errors",
    "attempts",
    "worker",
    "key",
)

# Failures that are the item's own (its input, the user's metrics hook): a new session would fail
# the same way, so they are recorded at once. Any other failure is the session's: it is replaced
# and the item retried once.
METRICS_ERROR = "METRICS_ERROR"
ITEM_FAULTS = frozenset({"INVALID_INPUT", METRICS_ERROR})


def new_row(item: Item, enhance: bool) -> dict[str, Any]:
    return dict.fromkeys(COLUMNS) | item.describe() | {"enhance": enhance}


def error_row(item: Item, enhance: bool, exc: BaseException) -> dict[str, Any]:
    row = new_row(item, enhance)
    if isinstance(exc, DecartNBError):
        return row | {"error_code": exc.code, "error": exc.message}
    return row | {"error_code": type(exc).__name__, "error": str(exc) or repr(exc)}
