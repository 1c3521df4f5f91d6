"""Record the output to an mp4 (H.264), encoding off the loop."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError

from ..checks import looks_like_url
from ..errors import DecartNBError, ErrorCode
from .relay import Broadcast

__all__ = ["check_clip_path", "record"]

_TIME_BASE = Fraction(1, 90000)


async def record(
    broadcast: Broadcast, path: Path, seconds: float, fps: int, tags: dict[str, str] | None = None
) -> Path:
    """Write `seconds` of output frames to `path`, with `tags` as the mp4's metadata (title,
    comment, ...); timestamps follow the wall clock, so the clip's duration is the recorded
    duration even when the model drops frames."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    track = broadcast.subscribe()
    loop = asyncio.get_running_loop()
    writer = _Writer(path, fps, tags or {})
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="decart_nb-recorder") as executor:
            try:
                t0 = time.perf_counter()
                deadline = t0 + seconds
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        frame = await asyncio.wait_for(track.recv(), timeout=remaining)
                    except (TimeoutError, MediaStreamError):  # time is up, or the session ended
                        break
                    pts = round((time.perf_counter() - t0) / _TIME_BASE)
                    await loop.run_in_executor(executor, writer.write, frame, pts)
                end_pts = round(min(seconds, time.perf_counter() - t0) / _TIME_BASE)
                await loop.run_in_executor(executor, writer.close, end_pts)
            except (OSError, ValueError, av.FFmpegError) as exc:
                raise _cannot_write(path, exc) from exc
            finally:
                track.stop()
    finally:
        writer.discard()  # after the executor finished any write in flight
    return path


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


class _Writer:
    def __init__(self, path: Path, fps: int, tags: dict[str, str]) -> None:
        self.path, self.fps, self.tags = path, fps, tags
        self.container: av.container.OutputContainer | None = None
        self.stream: av.VideoStream | None = None
        self.last_pts = -1
        self.last_frame: av.VideoFrame | None = None

    def _open(self, frame: av.VideoFrame) -> None:
        self.container = av.open(str(self.path), mode="w")
        self.container.metadata.update(self.tags)  # written with the header
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width, self.stream.height = frame.width, frame.height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = _TIME_BASE
        self.stream.codec_context.time_base = _TIME_BASE
        self.stream.options = {"preset": "veryfast", "tune": "zerolatency"}

    def write(self, frame: av.VideoFrame, pts: int) -> None:
        if self.container is None:
            self._open(frame)
        if pts <= self.last_pts:
            return
        out = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
        out = av.VideoFrame.from_ndarray(out.to_ndarray(), format="yuv420p")  # own pts/time base
        out.pts, out.time_base = pts, _TIME_BASE
        self.last_pts, self.last_frame = pts, out
        assert self.stream is not None and self.container is not None
        for packet in self.stream.encode(out):
            self.container.mux(packet)

    def close(self, end_pts: int) -> None:
        if self.container is None or self.stream is None:
            raise DecartNBError(ErrorCode.FRAME_TIMEOUT, "No output frame arrived while recording")
        if self.last_frame is not None and end_pts > self.last_pts:
            # Hold the last picture to the end, so the clip lasts as long as was asked.
            tail = av.VideoFrame.from_ndarray(self.last_frame.to_ndarray(), format="yuv420p")
            tail.pts, tail.time_base = end_pts - 1, _TIME_BASE
            for packet in self.stream.encode(tail):
                self.container.mux(packet)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def discard(self) -> None:
        """Release the file after a failure (a no-op once close() has written it)."""
        container, self.container = self.container, None
        if container is not None:
            container.close()
