"""Headless sources: a stamped test pattern, a looped video file, a still image, numpy frames.

Each is a MediaStreamTrack paced at its frame rate. A source that falls behind skips ahead
instead of bursting, so it never builds a backlog downstream.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from PIL import Image

from ..checks import looks_like_url
from ..errors import DecartNBError, ErrorCode
from ..images import MAX_ARRAY_PIXELS, load_image
from ..models import ModelSpec
from .device import check_device, device_path, make_device_track
from .frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, FrameMeta, from_planes, from_rgb
from .stamp import write_stamp

__all__ = [
    "ArrayTrack",
    "Feed",
    "FileTrack",
    "ImageTrack",
    "PacedTrack",
    "PatternTrack",
    "check_source",
    "make_source",
]

_END = object()


class Feed:
    """A source fed by another pipeline in this kernel (a comparison's shared input): `open()`
    gives a fresh track each time a session connects. Subclassed by what feeds it."""

    def open(self) -> MediaStreamTrack:
        raise NotImplementedError


VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".y4m", ".m4v", ".gif"}


class PacedTrack(MediaStreamTrack):
    """Base: calls `_make(n)` for frame n at `fps`; stamps pts (90 kHz) and kernel-entry time."""

    kind = "video"

    def __init__(self, fps: float) -> None:
        super().__init__()
        self.fps = fps
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        due = self._start + self._n / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1.0 / self.fps:
            self._n = int((now - self._start) * self.fps)  # behind: skip ahead, never burst
        frame = await self._make(self._n)
        frame.pts = int(self._n * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        frame.opaque = FrameMeta(t_in=time.perf_counter())
        self._n += 1
        return frame

    async def _make(self, n: int) -> av.VideoFrame:
        raise NotImplementedError


class PatternTrack(PacedTrack):
    """A moving test card at the model's size, frame number stamped in the top rows."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(fps)
        self.width, self.height = width, height
        self._card = _test_card(width, height)

    async def _make(self, n: int) -> av.VideoFrame:
        y2, u2, v2 = self._card
        w = self.width
        shift = (n * 8) % w  # the card scrolls 8 px a frame: motion for the codec and the model
        y = np.ascontiguousarray(y2[:, shift : shift + w])
        u = u2[:, shift // 2 : shift // 2 + w // 2]
        v = v2[:, shift // 2 : shift // 2 + w // 2]
        write_stamp(y, n)
        return from_planes(y, u, v)


def _test_card(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour bars, a luma ramp and a checker band, twice as wide as the frame so it can scroll."""
    bars_rgb = np.array(
        [
            [235, 235, 235],
            [235, 235, 16],
            [16, 235, 235],
            [16, 235, 16],
            [235, 16, 235],
            [235, 16, 16],
            [16, 16, 235],
            [40, 40, 40],
        ],
        dtype=np.float32,
    )
    xs = np.arange(2 * width)
    bar = bars_rgb[(xs * 8 // width) % 8]
    rgb = np.repeat(bar[None, :, :], height, axis=0)
    ramp = np.linspace(16, 235, 2 * width, dtype=np.float32)
    third = height // 3
    rgb[third : 2 * third] = ramp[None, :, None]
    yy, xx = np.mgrid[0 : height - 2 * third, 0 : 2 * width]
    checker = ((yy // 40 + xx // 40) % 2) * 180 + 40
    rgb[2 * third :] = checker[:, :, None]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.257 * r + 0.504 * g + 0.098 * b + 16
    u = -0.148 * r - 0.291 * g + 0.439 * b + 128
    v = 0.439 * r - 0.368 * g - 0.071 * b + 128
    sub = (slice(None, None, 2), slice(None, None, 2))
    return (
        np.clip(y, 0, 255).astype(np.uint8),
        np.clip(u[sub], 0, 255).astype(np.uint8),
        np.clip(v[sub], 0, 255).astype(np.uint8),
    )


class ImageTrack(PacedTrack):
    """A still image, resized to the model's size, repeated at fps."""

    def __init__(self, image: np.ndarray, width: int, height: int, fps: float) -> None:
        super().__init__(fps)
        resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
        self._frame = from_rgb(np.asarray(resized))

    async def _make(self, n: int) -> av.VideoFrame:
        y = self._frame.to_ndarray()
        return av.VideoFrame.from_ndarray(y, format="yuv420p")


class ArrayTrack(PacedTrack):
    """RGB uint8 frames from an iterator; the track ends when the iterator does. The iterator runs
    in its own thread: a slow one (a device read, a decoder) must not stall the media loop."""

    def __init__(self, frames: Iterable[np.ndarray], width: int, height: int, fps: float) -> None:
        super().__init__(fps)
        self._frames: Iterator[np.ndarray] = iter(frames)
        self.width, self.height = width, height
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="decart_nb-frames")

    async def _make(self, n: int) -> av.VideoFrame:
        frame = await asyncio.get_running_loop().run_in_executor(self._executor, self._next_frame)
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def _next_frame(self) -> av.VideoFrame | None:
        arr = next(self._frames, _END)  # StopIteration cannot cross into a future
        if arr is _END:
            return None
        arr = np.asarray(arr)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise DecartNBError(
                ErrorCode.SOURCE_ERROR,
                f"Iterator frames must be HxWx3 uint8 RGB arrays, got {arr.shape} {arr.dtype}",
            )
        if arr.shape[0] * arr.shape[1] > MAX_ARRAY_PIXELS:  # from the shape, before any copy
            raise DecartNBError(
                ErrorCode.SOURCE_ERROR,
                f"Iterator frames must be at most {MAX_ARRAY_PIXELS} pixels, got {arr.shape}",
            )
        if arr.shape[:2] != (self.height, self.width):
            arr = np.asarray(Image.fromarray(arr).resize((self.width, self.height)))
        return from_rgb(arr)

    def stop(self) -> None:
        super().stop()
        self._executor.shutdown(wait=False)


_RESYNC_S = 0.5  # a file replay this late moves its clock on instead of catching up


class FileTrack(PacedTrack):
    """A video file, looped, scaled to the model's size; decoding runs off the loop.

    Frames play at the file's own times (their pts), not at an average rate: a recording's
    irregular gaps replay as they were recorded, and a constant-rate file plays at its rate. When
    the file loops, time goes on from the end of the file (its duration). A replay a little
    behind (a busy machine) skips the frames already overtaken by their successor, so the rest
    keep their times; one further behind than _RESYNC_S moves its clock on. It never bursts.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"Cannot read video file {path}: {exc}", cause=exc
            ) from exc
        rate = self._stream.average_rate
        super().__init__(float(rate) if rate else fps)  # the gap for frames without a time
        self.path, self.width, self.height = path, width, height
        self._frames = self._container.decode(self._stream)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="decart_nb-file")
        self._times = _FileTimes(self._stream, 1.0 / self.fps)
        self._origin: float | None = None
        self._pending: tuple[av.VideoFrame, float] | None = None  # decoded, not yet due

    def _next_frame(self) -> tuple[av.VideoFrame, float]:
        for _ in range(2):
            frame = next(self._frames, None)
            if frame is not None:
                at = self._times.of(frame)
                out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
                # The file's own picture types mean nothing downstream, and libvpx makes a key frame
                # of every frame marked I (a y4m file marks them all). rtc/encoder.py clears the
                # mark itself; aiortc's own VP8 encoder (with an untested aiortc) does not.
                out.pict_type = av.video.frame.PictureType.NONE
                return out, at
            self._times.loop_over()
            self._container.seek(0)
            self._frames = self._container.decode(self._stream)
        raise DecartNBError(ErrorCode.SOURCE_ERROR, f"{self.path} has no decodable video frames")

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame, at = self._pending if self._pending is not None else await self._decode()
        self._pending = None
        now = time.perf_counter()
        if self._start is None:
            self._start = self._origin = now - at
        late = now - (self._start + at)
        if late < 0:
            await asyncio.sleep(-late)
        elif late > _RESYNC_S:
            self._start = now - at  # a stall: move the clock on, never burst
        else:
            frame, at = await self._catch_up(frame, at)
        assert self._origin is not None
        frame.pts = round((self._start + at - self._origin) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        frame.opaque = FrameMeta(t_in=time.perf_counter())
        return frame

    async def _catch_up(self, frame: av.VideoFrame, at: float) -> tuple[av.VideoFrame, float]:
        """A little late: skip the frames whose successor is due already, so the frames that
        play keep the file's times; the first not yet due waits for the next recv()."""
        assert self._start is not None
        while True:
            following = await self._decode()
            now = time.perf_counter()
            if self._start + following[1] > now:
                self._pending = following
                return frame, at
            frame, at = following
            if now - (self._start + at) > _RESYNC_S:  # the decoder cannot keep up: go on from here
                self._start = now - at
                return frame, at

    async def _decode(self) -> tuple[av.VideoFrame, float]:
        if self.readyState != "live":  # stopped while catching up
            raise MediaStreamError
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._next_frame)

    def stop(self) -> None:
        if self.readyState == "live":
            # Closed by the decoder's thread, after a decode in flight: closing the container
            # under a running decode crashes the process.
            self._executor.submit(self._container.close)
            self._executor.shutdown(wait=False)
        super().stop()


class _FileTimes:
    """When each decoded frame of a looped file plays, in seconds from the first frame: its own
    time in the file, plus the length of the passes before. Decoder thread only."""

    def __init__(self, stream: av.VideoStream, gap: float) -> None:
        self._gap = gap  # for a frame without a time, or one that does not move forward
        self._end: float | None = None  # where the file ends, in its own time
        if stream.duration is not None and stream.time_base is not None:
            self._end = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
        self._first: float | None = None  # the file's time of its first frame
        self._offset = 0.0  # the passes before this one
        self._last: float | None = None

    def of(self, frame: av.VideoFrame) -> float:
        t = frame.time
        if t is not None and self._first is None:
            self._first = t
        if t is None or self._first is None:
            at = 0.0 if self._last is None else self._last + self._gap
        else:
            at = t - self._first + self._offset
        if self._last is not None and at <= self._last:
            at = self._last + self._gap
        self._last = at
        return at

    def loop_over(self) -> None:
        """The file ended: the next pass starts where this one's file ended (or a gap after
        its last frame, when the file does not say how long it is)."""
        if self._last is None:
            return
        floor = self._last + self._gap
        if self._end is not None and self._first is not None:
            self._offset = max(self._offset + self._end - self._first, floor)
        else:
            self._offset = floor


def check_source(source: object) -> str:
    """What kind of source this is ("camera", "pattern", "device", "video", "image", "iterator",
    "feed"),
    or INVALID_INPUT; cheap (nothing is decoded or opened), so the Session checks it first."""
    if isinstance(source, str) and source in ("camera", "pattern"):
        return source
    if isinstance(source, Feed):
        return "feed"
    if device_path(source) is not None:
        check_device(cast(str, source))  # a missing camera says so here, with its own code
        return "device"
    if looks_like_url(source):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Source {str(source)[:60]!r} is a URL: decart_nb never fetches URLs. Download the file "
            "and pass its path",
        )
    if isinstance(source, (str, os.PathLike)):
        return _check_source_path(Path(source), source)
    if isinstance(source, (Image.Image, np.ndarray)):
        return "image"
    if isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray, memoryview, Mapping)):
        return "iterator"
    raise DecartNBError(
        ErrorCode.INVALID_INPUT,
        f"Unsupported source {type(source).__name__}: use 'camera', 'pattern', 'device[:PATH]', "
        "a video or image path, a PIL image or an iterator of RGB arrays",
    )


def _check_source_path(path: Path, given: object) -> str:
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. a name too long
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"Source {str(given)[:100]!r}: {exc}", cause=exc
        ) from exc
    if not exists:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Source {str(given)[:100]!r} is not 'camera', 'pattern', 'device[:PATH]' or an existing file",
        )
    if is_dir:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"Source {str(given)[:100]!r} is a directory, not a file"
        )
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


async def make_source(source: object, spec: ModelSpec) -> MediaStreamTrack | None:
    """The track for a Session's `source`, on the media loop; None for "camera" (the connected
    peer supplies it)."""
    w, h, fps = spec.width, spec.height, spec.fps
    kind = check_source(source)
    if kind == "camera":
        return None
    if kind == "pattern":
        return PatternTrack(w, h, fps)
    if kind == "feed":
        return cast(Feed, source).open()
    if kind == "device":  # opened in the loop's executor: a camera can take a while to start
        return await make_device_track(cast(str, source), w, h, fps)
    if isinstance(source, (Image.Image, np.ndarray)):
        return ImageTrack(load_image(source, max_side=None), w, h, fps)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return (
            FileTrack(path, w, h, fps)
            if kind == "video"
            else ImageTrack(load_image(path, max_side=None), w, h, fps)
        )
    return ArrayTrack(cast(Iterable[np.ndarray], source), w, h, fps)
