"""Frames over the widget's comm (or the page socket): the fallback when WebRTC cannot connect
(UDP blocked, Binder).

Vocabulary (docs/architecture.md): the *transport* is what carries the video, "webrtc", "codec"
(VP8 chunks) or "jpeg" (JPEG frames); the *pipe* is what carries a link's messages, "comm" (the
widget's comm) or "socket" (the page socket, media_socket.py).

Two links share this file's `FrameLink`: JPEG frames (`JpegLink`, jpeg_link.py) and VP8 chunks
(`CodecLink`, codec_link.py). Their common rules (schema: messages.py):
- Every frame is one custom message with ONE buffer; the receiver acks it at once on receipt
  (a VP8 chunk once decoded: codec_link.py).
- At most `window()` frames are in flight each way (JPEG 1; VP8 the bandwidth-delay product in
  chunks, 2 to 10: media/rate.py says why), so the newest frame wins and nothing queues on the
  websocket: the page sends its next camera frame
  once an ack frees the window, the kernel its next output frame likewise (an unacked frame
  counts as lost after ACK_TIMEOUT_S), never faster than its fps.
- Encoding and decoding run in the media loop's executor, one job at a time, never on the loop.
  Every method runs on the media loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError

from ..errors import DecartNBError
from ..media.frames import FrameMeta, recv_video
from ..media.relay import MailboxTrack
from ..session_core import LinkFigures
from ..timeouts import ACK_TIMEOUT_S
from .messages import KernelMessage, PageMessage, Seq

if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from ..session_port import SessionPort

__all__ = ["ACK_TIMEOUT_S", "FrameLink", "Incoming", "LinkMeter", "Outgoing", "Send"]

logger = logging.getLogger("decart_nb")

Send = Callable[[KernelMessage, list[bytes]], None]
METER_WINDOW_S = 1.0  # kbps and fps are over the last second


class LinkMeter:
    """Bytes, frames and frame size of one direction of a link (loop thread)."""

    def __init__(self) -> None:
        self._sent: deque[tuple[float, int]] = deque(maxlen=512)
        self.width = 0
        self.height = 0

    def add(self, nbytes: int) -> None:
        self._sent.append((time.perf_counter(), nbytes))

    def size(self, width: int, height: int) -> None:
        if width and height:
            self.width, self.height = width, height

    def figures(self) -> dict[str, float]:
        """kbps and fps over the last second, and the newest frame's size."""
        since = time.perf_counter() - METER_WINDOW_S
        recent = [n for t, n in list(self._sent) if t >= since]
        return {
            "kbps": round(sum(recent) * 8 / 1000 / METER_WINDOW_S, 1),
            "fps": round(len(recent) / METER_WINDOW_S, 1),
            "width": self.width,
            "height": self.height,
        }


@dataclass
class Incoming:
    """A frame from the page as it arrived: its bytes, when, and what its message said."""

    seq: Seq
    data: bytes
    t_in: float
    content: PageMessage


@dataclass
class Outgoing:
    """An encoded output frame, ready to send."""

    data: bytes
    width: int
    height: int
    key: bool = False


class FrameLink:
    """One page's frames over the comm or the page socket, for one session: what the JPEG and the
    VP8 link share.
    Built and closed by the CameraWidget. Subclasses say how frames are acked, queued, decoded,
    encoded and announced."""

    name = ""  # its transport: what `active_transport` and `stats["transport"]` say
    window = 1  # output frames that may be unacked at once (a link may size it: `_window`)
    # A camera frame is acked on receipt, or once decoded (so a busy kernel reads as a slow link
    # to the page and frames cannot pile up before the decoder).
    ack_on_receipt = True

    def __init__(self, port: SessionPort, send: Send) -> None:
        self._port = port
        self._send = send
        self.camera = MailboxTrack()  # the page's camera, read by the pipeline's input slot
        self._pending: list[Incoming] = []
        self._unacked_in: list[Seq] = []  # seqs of the camera frames received, not yet acked
        self._decoding = False
        self._room = asyncio.Event()  # set while fewer than `window` output frames are unacked
        self._unacked: dict[int, tuple[float, int]] = {}  # seq -> (sent at, bytes), oldest first
        self._seq = 0
        self._pipe = 0  # counts the pipes the output went over that were lost (pipe_lost)
        self._sender: asyncio.Task[None] | None = None
        # The pipeline the sender reads (a model switch makes a new one).
        self._sending_from: Pipeline | None = None
        self.frames_received = 0
        self.frames_sent = 0
        self.meter_in = LinkMeter()
        self.meter_out = LinkMeter()

    # -- what a transport says -----------------------------------------------------------------------
    def _ack(self, seq: Seq) -> KernelMessage:
        raise NotImplementedError

    def _queue(self, item: Incoming) -> None:
        """Put a received frame in `_pending` (the decoder takes all of it, oldest first)."""
        raise NotImplementedError

    def _decode(
        self, items: list[Incoming], width: int, height: int
    ) -> tuple[av.VideoFrame | None, int, int]:
        """Executor thread: the newest frame of `items` at width x height, and its size as sent."""
        raise NotImplementedError

    def _decode_failed(self, error: DecartNBError) -> None:
        self._port.report_error(error)

    def _encode(self, frame: av.VideoFrame, key: bool) -> Outgoing:
        """Executor thread: one output frame for the page."""
        raise NotImplementedError

    def _announce(self, seq: int, out: Outgoing) -> KernelMessage:
        raise NotImplementedError

    def _period(self) -> float:
        return 1.0 / max(1, self._port.session.model.fps)

    def _window(self) -> int:
        """Output frames that may be unacked now."""
        return self.window

    def _update_room(self) -> None:
        if len(self._unacked) < self._window():
            self._room.set()
        else:
            self._room.clear()

    def _delivered(self, nbytes: int, seconds: float) -> None:
        """The page acked an output frame of `nbytes` after `seconds`."""

    def _lost(self) -> None:
        """No ack came for the output frame in flight within ACK_TIMEOUT_S."""

    def _encoded(self, seconds: float) -> None:
        """An output frame took `seconds` to encode, wall clock (its wait for the executor too)."""

    def _take_key(self) -> bool:
        """Whether the next output frame must be a key frame (asked for since the last one)."""
        return False

    def figures(self) -> LinkFigures:
        """This link's figures for session.stats (loop thread)."""
        out: LinkFigures = {"transport": self.name}
        for direction, meter in (("in", self.meter_in), ("out", self.meter_out)):
            for key, value in meter.figures().items():
                out[f"transport_{key}_{direction}"] = value
        return out

    # -- page -> kernel: the camera ----------------------------------------------------------------
    def receive(self, seq: Seq, data: bytes, t_in: float, content: PageMessage | None = None) -> None:
        """A camera frame from the page, acked at once (`ack_on_receipt`) or once decoded."""
        self._unacked_in.append(seq)
        self.meter_in.add(len(data))
        self._queue(Incoming(seq, data, t_in, content or {}))
        if self._pending and not self._decoding:
            self._decoding = True
            asyncio.get_running_loop().create_task(self._decode_pending())
        if self.ack_on_receipt or not self._decoding:  # not decoding: it was dropped
            self._ack_received()

    def _ack_received(self, upto: Seq = None) -> None:
        """Ack the frames received so far, or those up to the one numbered `upto`."""
        count = len(self._unacked_in)
        if upto is not None and upto in self._unacked_in:
            count = self._unacked_in.index(upto) + 1
        for seq in self._unacked_in[:count]:
            self._send(self._ack(seq), [])
        del self._unacked_in[:count]

    async def _decode_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending and self.camera.readyState == "live":
                items, self._pending = self._pending, []
                spec = self._port.session.model
                try:
                    frame, width, height = await loop.run_in_executor(
                        None, self._decode, items, spec.width, spec.height
                    )
                except DecartNBError as exc:
                    self._decode_failed(exc)
                    continue
                finally:
                    self._ack_received(items[-1].seq)
                self.meter_in.size(width, height)
                if frame is not None:
                    frame.opaque = FrameMeta(t_in=items[-1].t_in)
                    self._deliver(frame)
        finally:
            self._decoding = False
            self._ack_received()  # what was dropped meanwhile

    def _deliver(self, frame: av.VideoFrame) -> None:
        port = self._port
        pipeline = port.pipeline
        if pipeline is None or pipeline.slot.readyState != "live" or self.camera.readyState != "live":
            return  # between pipelines (a model switch): the next frame goes to the new one
        if pipeline.slot.upstream is not self.camera:
            pipeline.attach_camera(self.camera)
        self.camera.box.put(frame)
        self.frames_received += 1
        port.camera_arrived()

    # -- kernel -> page: the output ----------------------------------------------------------------
    def start_output(self) -> None:
        """Send the output to the page; a (re)started page has no frame in flight."""
        self._unacked.clear()
        self._room.set()
        pipeline = self._port.pipeline
        if self._sender is not None and not self._sender.done() and self._sending_from is pipeline:
            return
        self.stop_output()
        if pipeline is not None:
            self._sending_from = pipeline
            self._sender = asyncio.get_running_loop().create_task(self._send_output(pipeline))

    def pipe_lost(self) -> None:
        """The pipe the output went over (the media socket) closed: the frames in flight on it are
        gone, so nothing waits for their acks and the next frame needs none of them."""
        self._pipe += 1
        self._unacked.clear()
        self._room.set()

    def acked(self, seq: Seq) -> None:
        sent = self._unacked.pop(seq, None) if isinstance(seq, int) else None
        if sent is not None:
            self._delivered(sent[1], time.perf_counter() - sent[0])  # may resize the window
            self._update_room()

    async def _wait_for_room(self) -> bool:
        """Until fewer than `_window()` frames are unacked; True when the oldest was given up as lost."""
        while not self._room.is_set():
            oldest, (sent_at, _) = next(iter(self._unacked.items()))
            try:
                await asyncio.wait_for(self._room.wait(), sent_at + ACK_TIMEOUT_S - time.perf_counter())
            except TimeoutError:
                logger.info("decart_nb: no ack for output frame %s, sending the next", oldest)
                del self._unacked[oldest]
                self._room.set()
                self._lost()
                return True
        return False

    async def _send_output(self, pipeline: Pipeline) -> None:
        track = pipeline.subscribe()
        loop = asyncio.get_running_loop()
        last = -self._period()
        try:
            while True:
                key = await self._wait_for_room()  # a lost chunk broke the chain of delta frames
                await asyncio.sleep(max(0.0, last + self._period() - loop.time()))
                try:
                    frame = await recv_video(track)
                except MediaStreamError:
                    return  # the pipeline stopped: a disconnect, or a model switch (the page restarts)
                taken = loop.time()  # the period counts from here: the encode is part of it
                started, pipe = time.perf_counter(), self._pipe
                out = await loop.run_in_executor(None, self._encode, frame, self._take_key() or key)
                self._encoded(time.perf_counter() - started)
                if not out.data:
                    continue  # the encoder skipped the frame: nothing is in flight
                if pipe != self._pipe and not out.key:
                    continue  # it follows frames lost with their pipe: the next one starts afresh
                self._seq += 1
                self._unacked[self._seq] = (time.perf_counter(), len(out.data))
                self._update_room()
                last = taken
                self._send(self._announce(self._seq, out), [out.data])
                self.meter_out.add(len(out.data))
                self.meter_out.size(out.width, out.height)
                self.frames_sent += 1
        finally:
            track.stop()

    def stop_output(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    def close(self) -> None:
        """Stop sending and end the camera track (the input slot's reader stops with it)."""
        self.stop_output()
        self._pending = []
        self.camera.stop()
