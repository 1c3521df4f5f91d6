"""The pipeline's two ends: an input slot that always holds the newest frame, and a broadcast
that fans the output out to the browser and the sinks without ever waiting for them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .frames import VIDEO_TIME_BASE, FrameMeta, meta_of, mirror, recv_video
from .mailbox import Mailbox, ThreadMailbox
from .stats import StreamStats

__all__ = [
    "Broadcast",
    "BroadcastTrack",
    "FrameTap",
    "InputSlot",
    "MailboxTrack",
    "PushTrack",
    "TimedFrame",
]

logger = logging.getLogger("decart_nb")


TimedFrame = tuple[av.VideoFrame, float]  # a frame and when it arrived (time.perf_counter())


class FrameTap:
    """A watcher of one end of the pipeline (a recording): its own one-slot mailbox of timed
    frames, newest wins, so a slow watcher loses frames and never slows the model."""

    def __init__(self, taps: list[FrameTap]) -> None:
        self.box: Mailbox[TimedFrame] = Mailbox()
        self._taps = taps
        taps.append(self)

    async def get(self) -> TimedFrame:
        """The newest frame not yet read, and its arrival time; EOFError once the end closed."""
        return await self.box.get()

    def stop(self) -> None:
        if self in self._taps:
            self._taps.remove(self)
        self.box.close()


def _close_taps(taps: list[FrameTap]) -> None:
    for tap in list(taps):
        tap.stop()


class MailboxTrack(MediaStreamTrack):
    """A video track that plays a one-slot mailbox: whoever fills it, the reader gets the newest."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.box: Mailbox[av.VideoFrame] = Mailbox()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self.box.get()
        except EOFError:
            raise MediaStreamError from None

    def stop(self) -> None:
        self.box.close()
        super().stop()


class PushTrack(MailboxTrack):
    """A mailbox track whose producer (on the loop) can hand each frame straight to its one
    reader: once a reader `connect`s a function, `put` calls it in the producer's own step, so
    no task has to wake (one loop pass each) before the frame moves on. Unconnected, it is an
    ordinary MailboxTrack. Loop thread only."""

    def __init__(self) -> None:
        super().__init__()
        self._sink: Callable[[av.VideoFrame], None] | None = None
        self._on_end: Callable[[], None] | None = None
        # Where its reader's model threads should run (set by a producer that feeds several at
        # once, a comparison's fan-out: media/placement.py); None: wherever the scheduler puts them.
        self.cpus: frozenset[int] | None = None

    @property
    def connected(self) -> bool:
        return self._sink is not None

    def put(self, frame: av.VideoFrame) -> bool:
        """Hand `frame` on: to the reader's function, or into the mailbox (True: it replaced an
        unread frame)."""
        if self._sink is not None:
            self._sink(frame)
            return False
        return self.box.put(frame)

    def connect(self, sink: Callable[[av.VideoFrame], None], on_end: Callable[[], None]) -> None:
        """Send every frame to `sink` from now on (an unread one first); `on_end` once it stops."""
        self._sink, self._on_end = sink, on_end
        waiting = self.box.take()
        if waiting is not None:
            sink(waiting)

    def disconnect(self) -> None:
        self._sink = self._on_end = None

    def stop(self) -> None:
        on_end = self._on_end
        self.disconnect()
        super().stop()
        if on_end is not None:
            on_end()


class InputSlot(MailboxTrack):
    """Reads an upstream track as fast as it delivers (aiortc's own queue never grows) and keeps
    only the newest frame. The upstream can be swapped (a new camera, a reconnect) while the
    pipeline runs. Mirroring happens here, before any model, as in Decart's SDK."""

    def __init__(self, stats: StreamStats, mirror_frames: Callable[[], bool] = lambda: False) -> None:
        super().__init__()
        self._stats = stats
        self._mirror = mirror_frames
        self._pump: asyncio.Task[None] | None = None
        self.upstream: MediaStreamTrack | None = None
        self.on_upstream_end: Callable[[MediaStreamTrack], None] | None = None
        self.error: Exception | None = None  # why the upstream ended, when it failed
        self._timeline_of: MediaStreamTrack | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self._handoff: ThreadMailbox[av.VideoFrame] | None = None
        self._reader: tuple[Callable[[av.VideoFrame], None], Callable[[], None]] | None = None
        self._taps: list[FrameTap] = []

    def tap(self) -> FrameTap:
        """Watch the frames going into the model (after mirroring), each with its FrameMeta.t_in."""
        return FrameTap(self._taps)

    def hand_to_thread(self) -> ThreadMailbox[av.VideoFrame]:
        """Let one worker thread take the newest frame itself: a model then starts on the next
        frame the moment it finishes one, with no round trip through the loop in between."""
        if self._handoff is None:
            self._handoff = ThreadMailbox()
        return self._handoff

    @property
    def cpus(self) -> frozenset[int] | None:
        """The CPUs the model threads reading this slot should run on (its upstream's say)."""
        upstream = self.upstream
        return upstream.cpus if isinstance(upstream, PushTrack) else None

    def hand_to(self, take: Callable[[av.VideoFrame], None], on_end: Callable[[], None]) -> None:
        """Let a function on the loop take each frame in this slot's own step, with no mailbox
        and no task in between (a comparison's fan-out); `on_end` once the slot stops."""
        self._reader = (take, on_end)

    def count_drop(self) -> None:
        """A frame dropped further down, by a step that had not taken the previous one (loop thread)."""
        self._stats.on_drop()

    def attach(self, upstream: MediaStreamTrack) -> None:
        """Read `upstream` from now on: a live PushTrack hands its frames straight in (in its
        producer's step on the loop); any other track is read by a task of this slot's own."""
        self.detach()
        self.upstream = upstream
        if isinstance(upstream, PushTrack) and upstream.readyState == "live":
            upstream.connect(lambda frame: self._push(frame, upstream), lambda: self._ended(upstream))
        else:
            self._pump = asyncio.get_running_loop().create_task(self._run(upstream))

    def detach(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if isinstance(self.upstream, PushTrack):
            self.upstream.disconnect()
        self.upstream = None

    def _ended(self, upstream: MediaStreamTrack, error: Exception | None = None) -> None:
        if self.upstream is not upstream:
            return
        if error is not None:
            self.error = error
        if self.on_upstream_end is not None:
            self.on_upstream_end(upstream)

    async def _run(self, upstream: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await recv_video(upstream)
            except MediaStreamError:
                self._ended(upstream)
                return
            except Exception as exc:  # noqa: BLE001 - kept and reported by the pipeline as its end
                logger.error("decart_nb: the source failed: %r", exc)
                self._ended(upstream, exc)
                return
            try:
                self._take(frame, upstream)
            except Exception as exc:  # noqa: BLE001 - kept and reported by the pipeline as its end
                logger.error("decart_nb: taking a frame failed: %r", exc)
                self._ended(upstream, exc)
                return

    def _push(self, frame: av.VideoFrame, upstream: PushTrack) -> None:
        """A frame handed in by a PushTrack's producer: a failure here ends this slot's input
        (reported as the pipeline's end) and never reaches the producer, which feeds others."""
        try:
            self._take(frame, upstream)
        except Exception as exc:  # noqa: BLE001 - kept and reported by the pipeline as its end
            logger.error("decart_nb: taking a frame failed: %r", exc)
            self._ended(upstream, exc)
            self.detach()

    def _take(self, frame: av.VideoFrame, upstream: MediaStreamTrack) -> None:
        """Stamp (unless the source did), put on the one timeline, mirror, show the taps, and
        keep as the newest frame (for the model's thread, when it takes frames itself)."""
        if not isinstance(frame.opaque, FrameMeta):
            frame.opaque = FrameMeta(t_in=time.perf_counter())
        self._rebase(frame, upstream)
        self._stats.on_input()
        if self._mirror():
            frame = mirror(frame)
        for tap in self._taps:
            tap.box.put((frame, meta_of(frame).t_in))
        if self._reader is not None:
            self._reader[0](frame)
            return
        box = self._handoff if self._handoff is not None else self.box
        if box.put(frame):
            self._stats.on_drop()

    def _rebase(self, frame: av.VideoFrame, upstream: MediaStreamTrack) -> None:
        """Put every upstream on one 90 kHz timeline that never goes back: encoders reject a pts
        that decreases, and a new camera or a reconnect starts its own clock at zero."""
        pts, time_base = frame.pts, frame.time_base  # each read of time_base makes a Fraction
        if pts is None or time_base is None:
            pts = 0
        elif time_base != VIDEO_TIME_BASE:  # already on it: a decoded camera, a comparison's arm
            pts = round(pts * time_base * 90000)
        if upstream is not self._timeline_of:
            self._timeline_of = upstream
            self._offset = 0 if self._last_pts is None else self._last_pts + 3000 - pts
        pts += self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        frame.pts = pts
        if time_base != VIDEO_TIME_BASE:
            frame.time_base = VIDEO_TIME_BASE
        self._last_pts = pts

    def stop(self) -> None:
        self.detach()
        _close_taps(self._taps)
        if self._handoff is not None:
            self._handoff.close()
        reader, self._reader = self._reader, None
        super().stop()
        if reader is not None:
            reader[1]()


class BroadcastTrack(MailboxTrack):
    """One consumer's view of the output: its own one-slot mailbox, newest frame wins."""

    def __init__(self, broadcast: Broadcast) -> None:
        super().__init__()
        self._broadcast = broadcast
        if broadcast.latest is not None:
            self.box.put(broadcast.latest)

    def stop(self) -> None:
        self._broadcast.unsubscribe(self)
        super().stop()


class Broadcast:
    """Publishes each output frame to every subscriber; keeps the newest for snapshots."""

    def __init__(self, stats: StreamStats) -> None:
        self._stats = stats
        self._subscribers: list[BroadcastTrack] = []
        self._frame_waiters: list[tuple[int, asyncio.Future[av.VideoFrame]]] = []
        self._taps: list[FrameTap] = []
        self.latest: av.VideoFrame | None = None

    def subscribe(self) -> BroadcastTrack:
        track = BroadcastTrack(self)
        self._subscribers.append(track)
        return track

    def tap(self) -> FrameTap:
        """Watch the output, each frame timed when published; starts with the newest frame (if
        any), timed now: what the output shows when the watching begins."""
        tap = FrameTap(self._taps)
        if self.latest is not None:
            tap.box.put((self.latest, time.perf_counter()))
        return tap

    def unsubscribe(self, track: BroadcastTrack) -> None:
        if track in self._subscribers:
            self._subscribers.remove(track)

    def publish(self, frame: av.VideoFrame) -> None:
        meta = meta_of(frame)
        self._stats.on_output(meta.t_in, meta.model_ms, frame.width, frame.height)
        self.latest = frame
        for track in self._subscribers:
            track.box.put(frame)
        if self._taps:
            now = time.perf_counter()
            for tap in self._taps:
                tap.box.put((frame, now))
        if self._frame_waiters:
            waiting = []
            for version, fut in self._frame_waiters:
                if fut.done():
                    continue
                if meta.version >= version:
                    fut.set_result(frame)
                else:
                    waiting.append((version, fut))
            self._frame_waiters = waiting

    async def next_frame(self, min_version: int = -1) -> av.VideoFrame:
        """The newest frame made with state `min_version` or later (waits for one if needed)."""
        if self.latest is not None and meta_of(self.latest).version >= min_version:
            return self.latest
        fut: asyncio.Future[av.VideoFrame] = asyncio.get_running_loop().create_future()
        self._frame_waiters.append((min_version, fut))
        try:
            return await fut
        finally:
            if not fut.done():
                fut.cancel()
            # A waiter that gave up leaves now, not at the next frame: a stuck model gets no list.
            self._frame_waiters = [(v, f) for v, f in self._frame_waiters if f is not fut]

    def close(self) -> None:
        for track in list(self._subscribers):
            track.stop()
        _close_taps(self._taps)
        for _, fut in self._frame_waiters:
            if not fut.done():
                fut.cancel()
        self._frame_waiters = []
