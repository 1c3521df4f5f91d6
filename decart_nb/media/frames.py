"""YUV 4:2:0 frames as numpy planes, and the metadata each frame carries through the kernel.

The pipeline stays in yuv420p end to end (decoder -> model -> encoder): the planes cost nothing,
an RGB round trip (for user functions) about 2 ms per 720p frame with reused swscale contexts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from av.video.reformatter import VideoReformatter

__all__ = [
    "VIDEO_TIME_BASE",
    "FrameMeta",
    "carry",
    "from_planes",
    "from_rgb",
    "luma_view",
    "meta_of",
    "mirror",
    "plane_view",
    "recv_video",
    "to_planes",
    "to_rgb",
]

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)


@dataclass
class FrameMeta:
    """Kept in `frame.opaque`: when the frame entered the kernel and which state made it.

    PyAV keys opaque objects by id() and forgets the key when ANY frame holding it is freed, so
    two frames must never share one FrameMeta: `carry` gives each frame its own copy.
    """

    t_in: float
    version: int = -1
    model_ms: float = 0.0


def carry(like: av.VideoFrame, frame: av.VideoFrame) -> av.VideoFrame:
    """Give `frame` the timing (pts, time base) and a copy of the metadata of `like`."""
    frame.pts = like.pts
    if like.time_base is not None:
        frame.time_base = like.time_base
    meta = like.opaque
    frame.opaque = replace(meta) if isinstance(meta, FrameMeta) else None
    return frame


async def recv_video(track: MediaStreamTrack) -> av.VideoFrame:
    """The next frame of a video track (typed: aiortc's recv() may return audio or packets)."""
    frame = await track.recv()
    if not isinstance(frame, av.VideoFrame):
        raise TypeError(f"expected a video frame, got {type(frame).__name__}")
    return frame


def meta_of(frame: av.VideoFrame) -> FrameMeta:
    meta = frame.opaque
    if not isinstance(meta, FrameMeta):
        meta = FrameMeta(t_in=time.perf_counter())
        frame.opaque = meta
    return meta


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def to_planes(frame: av.VideoFrame) -> Planes:
    """(Y, U, V) uint8 arrays of an even-sized frame, converted to yuv420p if needed."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    buf = frame.to_ndarray()
    h, w = frame.height, frame.width
    y = buf[:h]
    u = buf[h : h + h // 4].reshape(h // 2, w // 2)
    v = buf[h + h // 4 :].reshape(h // 2, w // 2)
    return y, u, v


def from_planes(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, like: av.VideoFrame | None = None
) -> av.VideoFrame:
    """A yuv420p frame from planes; keeps `like`'s pts, time base and metadata."""
    h, w = y.shape
    buf = np.empty((h * 3 // 2, w), dtype=np.uint8)
    buf[:h] = y
    buf[h : h + h // 4] = u.reshape(h // 4, w)
    buf[h + h // 4 :] = v.reshape(h // 4, w)
    frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
    return carry(like, frame) if like is not None else frame


def plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A writable (height, width) view of a plane's pixels, without its row padding (no copy)."""
    rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.height * plane.line_size)
    return rows.reshape(plane.height, plane.line_size)[:, : plane.width]


def luma_view(frame: av.VideoFrame) -> np.ndarray:
    """A writable view of a yuv420p frame's luma plane (no copy)."""
    return plane_view(frame.planes[0])


# One swscale context per thread, reused: a fresh frame's own reformat() builds a new one each time
# (720p: yuv->rgb 3.5 ms instead of 0.45 ms, rgb->yuv 4.3 ms instead of 1.5 ms).
_reformatters = threading.local()


def _reformatter() -> VideoReformatter:
    reformatter = getattr(_reformatters, "r", None)
    if reformatter is None:
        reformatter = _reformatters.r = VideoReformatter()
    return reformatter


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return _reformatter().reformat(frame, format="rgb24").to_ndarray()


def from_rgb(rgb: np.ndarray, like: av.VideoFrame | None = None) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
    frame = _reformatter().reformat(frame, format="yuv420p")
    return carry(like, frame) if like is not None else frame


def mirror(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame flipped left to right (what a selfie camera's viewer expects)."""
    y, u, v = to_planes(frame)
    return from_planes(y[:, ::-1], u[:, ::-1], v[:, ::-1], like=frame)
