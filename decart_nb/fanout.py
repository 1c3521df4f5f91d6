"""A comparison's shared input: one source (the camera, a clip, the pattern) read once and handed
to every arm, so each arm's latency and fps count the same frames.

The shared input is an ordinary Session whose engine is a `Fanout`: its input slot stamps each
frame once (`FrameMeta.t_in`, unless the source did), and the Fanout hands each frame to every
arm's `FeedTrack`. The frame moves in one step on the loop, from the shared input's slot through
the Fanout into each arm's input slot and on to the arm's model thread, with no task to wake
between them (each such wake costs a pass of the loop, which the arms' models keep busy).

Each arm gets a frame object of its own (pts and metadata: an arm's input slot rebases pts in
place and its engine writes metadata, so one shared object would let arms corrupt each other)
over the same pixels: no step of a pipeline writes into its input's pixels (engines write their
own output frame; mirroring makes a new one), so the arms can read one buffer, and a 720p copy
per arm (on the loop before any arm can start, and memory traffic while the models run) is
saved. The frames are made before any arm starts, and the page's echo after all have. Each arm
keeps only the newest frame: a slow arm drops its own frames and never holds up the others. The
Fanout makes no output of its own, so the camera is not encoded and sent back to the page (the
page shows its own preview).

Loop thread only, except `share_frame` and `copy_frame`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .engines.base import Engine
from .media.frames import FrameMeta, carry, meta_of, plane_view, recv_video
from .media.placement import spread
from .media.relay import InputSlot, MailboxTrack, PushTrack
from .media.sources import Feed
from .state import GenerationState

__all__ = ["Fanout", "FeedTrack", "SharedInput", "copy_frame", "share_frame"]

logger = logging.getLogger("decart_nb")


class FeedTrack(PushTrack):
    """One arm's view of the shared input: an arm's input slot takes each frame as it is handed
    out (a one-slot mailbox, newest frame wins, for any other reader)."""

    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self._fanout = fanout

    def stop(self) -> None:
        self._fanout.remove(self)
        super().stop()


class Fanout(Engine):
    """The shared input's engine: every input frame to every arm, each arm a frame of its own over
    the same pixels (the first arm takes the frame itself: nothing else holds it). With `echo` (set
    by the compare view for a source the page has no preview of: a clip, the pattern), another
    goes to its own output for the page to show; without it (a camera, which the page previews
    itself, or no view at all: a sweep) nothing: an echo costs the kernel an encode of every
    frame."""

    name = "fanout"

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self._taps: list[FeedTrack] = []
        self._pump: asyncio.Task[None] | None = None
        self._output: PushTrack | None = None
        self.frames = 0  # frames handed out (to at least one arm)

    @property
    def taps(self) -> int:
        """How many arms take the input now (connected arms)."""
        return len(self._taps)

    def tap(self) -> FeedTrack:
        """A new arm's track; it stays until stopped (the arm disconnects), across the shared
        input's own reconnects."""
        track = FeedTrack(self)
        self._taps.append(track)
        self._place()
        return track

    def remove(self, track: FeedTrack) -> None:
        if track in self._taps:
            self._taps.remove(track)
            self._place()

    def _place(self) -> None:
        """Each arm's model on a CPU of its own while there are several (media/placement.py):
        they all get each frame at the same moment."""
        for track, cpus in zip(self._taps, spread(len(self._taps)), strict=True):
            track.cpus = cpus

    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack:
        self._output = output = PushTrack()  # empty unless echoing: nothing else goes to the page
        if isinstance(source, InputSlot):  # each frame in the slot's own step
            source.hand_to(self.deliver, lambda: self._slot_stopped(output))
        else:
            self._pump = asyncio.get_running_loop().create_task(self._run(source, output))
        return output

    async def apply(self, state: GenerationState) -> None:
        """The shared input transforms nothing: any state is taken as is."""

    async def _run(self, source: MediaStreamTrack, output: MailboxTrack) -> None:
        try:
            while True:
                self.deliver(await recv_video(source))
        except MediaStreamError:  # the source ended (a finite clip, an iterator) or failed
            self._end(output)

    def _slot_stopped(self, output: PushTrack) -> None:
        """The shared input's slot stopped: its source ended (every arm ends with it), or its
        pipeline is being torn down for a reconnect (the arms stay, and stop() follows in the
        same step). Told apart a loop pass later, as a task reading the slot would."""
        asyncio.get_running_loop().call_soon(self._end_unless_stopped, output)

    def _end_unless_stopped(self, output: PushTrack) -> None:
        if self._output is output:  # not stopped (nor started again) since
            self._end(output)

    def _end(self, output: MailboxTrack) -> None:
        for track in list(self._taps):
            track.stop()  # every arm's pipeline ends with it: no arm waits for frames forever
        output.stop()  # the shared input's pipeline ends too (and says why)

    def deliver(self, frame: av.VideoFrame) -> None:
        """Hand `frame` to every arm: their frames first, then every arm at once (the first takes
        the frame itself), then the page's echo. Making them while an arm's model runs would cost
        that arm more than their making: with a CPU per arm, the loop shares one with an arm's
        model, and every step waits for the GIL the models keep taking."""
        taps = list(self._taps)
        echo = self._output if self.echo else None
        if not taps and echo is None:
            return
        if frame.format.name != "yuv420p" and len(taps) + (echo is not None) > 1:
            frame = copy_frame(frame)  # converted once here, then shared: not once per extra arm
        arrival = _Arrival(frame.pts, frame.time_base, replace(meta_of(frame)))  # one stamp for all
        if taps:
            self.frames += 1
            others = [arrival.on(share_frame(frame)) for _ in taps[1:]]
            taps[0].put(frame)  # its slot may rebase pts in place: the echo takes the arrival's
            for track, other in zip(taps[1:], others, strict=True):
                track.put(other)
        if echo is not None:
            echo.put(arrival.on(share_frame(frame)))

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self._output is not None:
            self._output.stop()
            self._output = None


@dataclass(frozen=True)
class _Arrival:
    """A frame's timing and stamp as the Fanout received it."""

    pts: int | None
    time_base: Fraction | None
    meta: FrameMeta

    def on(self, frame: av.VideoFrame) -> av.VideoFrame:
        frame.pts, frame.opaque = self.pts, replace(self.meta)
        if self.time_base is not None:
            frame.time_base = self.time_base
        return frame


class SharedInput(Feed):
    """The source of every arm's Session: each connect opens a new tap of the Fanout."""

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout

    def open(self) -> MediaStreamTrack:
        return self.fanout.tap()

    def __repr__(self) -> str:
        return "<decart_nb shared input>"


def share_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p frame of its own (pts, time base, a copy of the metadata) over `frame`'s pixels,
    which it keeps alive: a few microseconds instead of a copy. Readers only: a write into either
    frame's pixels shows in both. A frame of another format, or of an odd size (which PyAV cannot
    wrap), is converted or copied instead."""
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        return copy_frame(frame)
    planes = tuple(plane_view(plane) for plane in frame.planes)
    return carry(frame, av.VideoFrame.from_dlpack(planes, "yuv420p", frame.width, frame.height))


def copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p frame of its own with the same pixels, pts, time base and (a copy of) metadata.
    Plane by plane into a fresh frame: one copy, not to_ndarray's two."""
    if frame.format.name != "yuv420p":
        return carry(frame, frame.reformat(format="yuv420p"))  # a conversion is a new frame
    out = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for src, dst in zip(frame.planes, out.planes, strict=True):
        plane_view(dst)[:] = plane_view(src)
    return carry(frame, out)
