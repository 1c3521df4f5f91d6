"""Record the output, the input or both to one mp4 (H.264), encoding off the loop.

Each frame keeps its time: its pts is when it arrived (the input: when it entered the input slot,
FrameMeta.t_in; the output: when it was published) on the 90 kHz clock, counted from the first
frame recorded, so a camera's irregular frames give a variable-frame-rate clip that replays the
same frames at the same times (sources.FileTrack). "both" writes one mp4 with two video streams:
stream 0 the input, stream 1 the output, each titled with its name.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

import av

from ..checks import looks_like_url
from ..errors import DecartNBError, ErrorCode
from .relay import FrameTap

__all__ = [
    "RECORD_WHATS",
    "RecordWhat",
    "Tappable",
    "check_clip_path",
    "check_what",
    "clip_description",
    "clip_suffix",
    "record",
]

RecordWhat = Literal["output", "input", "both"]
RECORD_WHATS: tuple[RecordWhat, ...] = ("output", "input", "both")
_TIME_BASE = Fraction(1, 90000)
_Packet: TypeAlias = "av.Packet[av.VideoStream]"  # a string: Packet is generic only in its stubs
_DESCRIPTIONS: dict[RecordWhat, str] = {  # the mp4's description tag: what the clip holds
    "output": "decart_nb recording: output (the model's output)",
    "input": "decart_nb recording: input (the frames going into the model)",
    "both": "decart_nb recording: both (stream 0: input, stream 1: output)",
}


class Tappable(Protocol):
    """One end of a pipeline a recording can watch (InputSlot, Broadcast)."""

    def tap(self) -> FrameTap: ...


def check_what(what: object) -> RecordWhat:
    if not isinstance(what, str) or what not in RECORD_WHATS:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"what must be one of {', '.join(repr(w) for w in RECORD_WHATS)}, not {what!r:.40}",
        )
    return what


def clip_suffix(what: RecordWhat) -> str:
    """A recording's file suffix in out_dir: `.mp4` for the output, `.input.mp4`, `.both.mp4`."""
    return ".mp4" if what == "output" else f".{what}.mp4"


def clip_description(what: RecordWhat) -> str:
    return _DESCRIPTIONS[what]


async def record(
    ends: Mapping[str, Tappable],
    path: Path,
    seconds: float,
    fps: int,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write `seconds` of frames from each of `ends` (name -> pipeline end, one video stream
    each, in this order) to `path`, with `tags` as the mp4's metadata (title, comment, ...).
    Each frame's pts is its arrival time; the last picture of each stream is held to the end,
    so the clip lasts as long as was recorded even when frames were dropped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    taps = {name: end.tap() for name, end in ends.items()}
    clip = _Clip(path, fps, tags or {}, list(taps))
    clock = _Clock()
    try:
        # One thread encodes every stream: a pump waits for its frame's write, so nothing queues.
        with ThreadPoolExecutor(1, thread_name_prefix="decart_nb-recorder") as executor:
            try:
                deadline = time.perf_counter() + seconds
                pumps = [_pump(tap, clip, name, clock, deadline, executor) for name, tap in taps.items()]
                await asyncio.gather(*pumps)
                end = clock.pts(min(deadline, time.perf_counter()))
                await asyncio.get_running_loop().run_in_executor(executor, clip.close, end)
            except (OSError, ValueError, av.FFmpegError) as exc:
                raise _cannot_write(path, exc) from exc
            finally:
                for tap in taps.values():
                    tap.stop()
    finally:
        clip.discard()  # after the executor finished any write in flight
    return path


async def _pump(
    tap: FrameTap, clip: _Clip, name: str, clock: _Clock, deadline: float, executor: Executor
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return
        try:
            frame, at = await asyncio.wait_for(tap.get(), timeout=remaining)
        except (TimeoutError, EOFError):  # time is up, or the session ended
            return
        await loop.run_in_executor(executor, clip.write, name, frame, clock.pts(at))


class _Clock:
    """Times (perf_counter) to pts, counted from the first frame recorded in any stream."""

    def __init__(self) -> None:
        self.t0: float | None = None

    def pts(self, at: float) -> int:
        if self.t0 is None:
            self.t0 = at
        return max(0, round((at - self.t0) / _TIME_BASE))


def check_clip_path(path: object) -> Path:
    """The recording's path, refused up front (before any frame is waited for) when it cannot
    be an mp4 file: a wrong type, another suffix (the clip is always H.264 in mp4), a directory."""
    if isinstance(path, (int, float)) and not isinstance(path, bool):  # record(5): seconds meant
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"path must be a local file path ending in .mp4, not {path!r:.60}: for {path} seconds saved in "
            f"out_dir write record(seconds={path}), or name the file: record('clip.mp4', {path})",
        )
    if not isinstance(path, (str, os.PathLike)) or looks_like_url(path):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"path must be a local file path ending in .mp4, not {path!r:.60}"
        )
    clip = Path(path)
    if clip.suffix.lower() != ".mp4":
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"Cannot write the recording to {clip}: the path must end in .mp4"
        )
    try:
        is_dir = clip.is_dir()
    except OSError as exc:
        raise _cannot_write(clip, exc) from exc
    if is_dir:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"Cannot write the recording to {clip}: it is a directory"
        )
    return clip


def _cannot_write(path: Path, exc: BaseException) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, f"Cannot write the recording to {path}: {exc}", cause=exc)


class _Stream:
    """One video stream of the clip: its encoder, and the last picture written (held to the end)."""

    def __init__(self, stream: av.VideoStream) -> None:
        self.stream = stream
        self.last_pts = -1
        self.last_frame: av.VideoFrame | None = None

    def encode(self, frame: av.VideoFrame, pts: int) -> list[_Packet]:
        width, height = self.stream.width, self.stream.height
        if (frame.width, frame.height, frame.format.name) != (width, height, "yuv420p"):
            frame = frame.reformat(width=width, height=height, format="yuv420p")  # e.g. a new camera
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")  # own pts/time base
        out.pts, out.time_base = pts, _TIME_BASE
        self.last_pts, self.last_frame = pts, out
        return list(self.stream.encode(out))

    def finish(self, end_pts: int) -> list[_Packet]:
        packets: list[_Packet] = []
        if self.last_frame is not None and end_pts > self.last_pts + 1:
            # Hold the last picture to the end, so the clip lasts as long as was asked.
            packets += self.encode(self.last_frame, end_pts - 1)
        return packets + list(self.stream.encode(None))


class _Clip:
    """The mp4 and its streams, in the recorder's thread. A stream is added with its first frame
    (which gives its size), in the order of `names`: a stream whose turn has not come keeps its
    first and its newest frame until it has. The header needs every stream, so until each has
    had a frame the packets wait (bounded by the recording; in practice a frame or two)."""

    def __init__(self, path: Path, fps: int, tags: dict[str, str], names: list[str]) -> None:
        self.path, self.fps, self.tags, self.names = path, fps, tags, names
        self.container: av.container.OutputContainer | None = None
        self.streams: dict[str, _Stream] = {}
        self._waiting: dict[str, list[tuple[av.VideoFrame, int]]] = {}
        self._held: list[_Packet] = []
        self._lock = threading.Lock()  # discard() may run on another thread after a cancel

    def write(self, name: str, frame: av.VideoFrame, pts: int) -> None:
        with self._lock:
            stream = self.streams.get(name)
            if stream is None:
                self._waiting[name] = [*self._waiting.get(name, [])[:1], (frame, pts)]
                self._add_streams()
            elif pts > stream.last_pts:
                self._mux(stream.encode(frame, pts))

    def _add_streams(self) -> None:
        """Add, in order, each stream whose first frame came; then write what it kept."""
        for name in self.names:
            if name in self.streams:
                continue
            waiting = self._waiting.pop(name, None)
            if waiting is None:
                return
            stream = self.streams[name] = _Stream(self._add_stream(name, waiting[0][0]))
            for frame, pts in waiting:
                if pts > stream.last_pts:
                    self._mux(stream.encode(frame, pts))

    def _add_stream(self, name: str, frame: av.VideoFrame) -> av.VideoStream:
        if self.container is None:
            self.container = av.open(str(self.path), mode="w")
            self.container.metadata.update(self.tags)  # written with the header
        stream = self.container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = frame.width - frame.width % 2, frame.height - frame.height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = _TIME_BASE
        stream.codec_context.time_base = _TIME_BASE
        stream.options = {"preset": "veryfast", "tune": "zerolatency"}
        if len(self.names) > 1:  # which is which, for players (handler) and for ffprobe (title)
            stream.metadata["title"] = stream.metadata["handler_name"] = name
        return stream

    def _mux(self, packets: list[_Packet]) -> None:
        assert self.container is not None
        if len(self.streams) < len(self.names):
            self._held += packets
            return
        for packet in [*self._held, *packets]:
            self.container.mux(packet)
        self._held = []

    def close(self, end_pts: int) -> None:
        with self._lock:
            missing = [name for name in self.names if name not in self.streams]
            if missing:
                raise DecartNBError(
                    ErrorCode.FRAME_TIMEOUT, f"No {' or '.join(missing)} frame arrived while recording"
                )
            assert self.container is not None
            for stream in self.streams.values():
                self._mux(stream.finish(end_pts))
            self.container.close()
            self.container = None

    def discard(self) -> None:
        """Release the file after a failure (a no-op once close() has written it)."""
        with self._lock:
            container, self.container = self.container, None
        if container is not None:
            container.close()
