"""Measuring one item on a connected session: its own frames' timings, and how its snapshot looks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from aiortc.mediastreams import MediaStreamError
from PIL import Image

from .. import ui_pump
from ..errors import DecartNBError, ErrorCode
from ..media.frames import meta_of, recv_video
from ..media.relay import BroadcastTrack
from ..session import Session
from ..session_port import port_of
from ..timeouts import FRAME_TIMEOUT_S

__all__ = ["FRAME_TIMEOUT_S", "FrameLog", "dropped", "looks", "settle", "small", "timings"]

_METRIC_SIZE = (160, 90)  # metrics are computed on a small copy: colours and looks, not pixels

Frame = tuple[float, float, int, float]  # (arrival, t_in, state version, model ms)


class FrameLog:
    """Every output frame's timing, appended on the loop thread and read from the sweep's."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._track: BroadcastTrack | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, session: Session) -> None:
        pipeline = port_of(session).pipeline  # on the loop, as the port asks
        if pipeline is None:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "The session is not connected: call connect() first")
        self._track = pipeline.broadcast.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._watch(self._track))

    async def _watch(self, track: BroadcastTrack) -> None:
        try:
            while True:
                frame = await recv_video(track)
                meta = meta_of(frame)
                self.frames.append((time.perf_counter(), meta.t_in, meta.version, meta.model_ms))
        except MediaStreamError:
            return  # the pipeline stopped

    def clear(self) -> None:
        """Forget earlier items' frames (a long run would keep them all); a late frame of the old
        state that lands after this is told apart by its state version."""
        self.frames.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._track is not None:
            self._track.stop()


def dropped(session: Session) -> int:
    return int(session.stats.get("frames_dropped", 0))


def settle(log: FrameLog, start: int, version: int, seconds: float, frames: int | None) -> None:
    """Let the new state run: `seconds`, or until `frames` of its frames came out."""
    if frames is None:
        ui_pump.sleep(seconds)  # the page's messages go on arriving (sweep(session=...))
        return
    deadline = time.monotonic() + FRAME_TIMEOUT_S + seconds
    while sum(1 for f in log.frames[start:] if f[2] == version) < frames:
        if time.monotonic() > deadline:
            raise DecartNBError(
                ErrorCode.FRAME_TIMEOUT, f"Fewer than {frames} frames of the new state within the timeout"
            )
        ui_pump.sleep(0.02)


def timings(frames: list[Frame], version: int, t_set: float) -> dict[str, float | None]:
    """Rate and latency of this item's own frames (not a rolling window over earlier items)."""
    mine = [f for f in frames if f[2] == version]
    if not mine:
        return {"frames_out": 0}
    arrivals = [f[0] for f in mine]
    span = arrivals[-1] - arrivals[0]
    latency = np.array([(f[0] - f[1]) * 1000.0 for f in mine])
    return {
        "first_frame_ms": round((arrivals[0] - t_set) * 1000.0, 1),
        "fps_out": round((len(mine) - 1) / span, 1) if span > 0 else None,
        "latency_ms_p50": round(float(np.percentile(latency, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latency, 95)), 1),
        "model_ms_p50": round(float(np.median([f[3] for f in mine])), 1),
        "frames_out": len(mine),
    }


def looks(picture: Image.Image, reference: np.ndarray | None) -> dict[str, float | None]:
    """Mean colour, and the mean absolute difference from the passthrough input (0-255)."""
    tiny = small(picture)
    r, g, b = (round(float(c), 1) for c in tiny.reshape(-1, 3).mean(axis=0))
    diff = None if reference is None else round(float(np.abs(tiny - reference).mean()), 1)
    return {"mean_r": r, "mean_g": g, "mean_b": b, "diff_vs_passthrough": diff}


def small(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB").resize(_METRIC_SIZE, Image.Resampling.BILINEAR), np.int16)
