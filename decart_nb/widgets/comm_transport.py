"""Frames over the widget's comm: the fallback when WebRTC cannot connect (UDP blocked, Binder).

The page says `transport {transport: "comm"}`, then sends `frame {seq}` + one JPEG buffer (a camera
session's camera) and acks the kernel's output `frame {seq, width, height}` + one JPEG buffer with
`frame_ack {seq}`; the kernel acks the page's frames the same way (schema: messages.py).

At most one frame is in flight each way, so the newest frame wins and nothing queues on the
websocket: the page sends its next camera frame after the kernel's ack, the kernel its next output
frame after the page's ack (and never faster than the model's fps). JPEG work runs in the media
loop's executor, never on the loop. Every method runs on the media loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc.mediastreams import MediaStreamError

from ..errors import DecartNBError
from ..media.frames import FrameMeta, recv_video
from ..media.jpeg import decode_jpeg, encode_jpeg
from ..media.relay import MailboxTrack
from ..timeouts import ACK_TIMEOUT_S
from .messages import KernelMessage, frame_ack, output_frame

if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from ..session import Session

__all__ = ["CommTransport", "ACK_TIMEOUT_S"]

logger = logging.getLogger("decart_nb")


Send = Callable[[KernelMessage, list[bytes]], None]


class CommTransport:
    """One page's frames over the comm, for one session. Built and closed by the CameraWidget."""

    def __init__(self, session: Session, send: Send) -> None:
        self._session = session
        self._send = send
        self.camera = MailboxTrack()  # the page's camera, read by the pipeline's input slot
        self._decoding = False
        self._next: tuple[bytes, float] | None = None
        self._acked = asyncio.Event()
        self._in_flight: int | None = None
        self._seq = 0
        self._sender: asyncio.Task[None] | None = None
        # The pipeline the sender reads (a model switch makes a new one).
        self._sending_from: Pipeline | None = None
        self.frames_received = 0
        self.frames_sent = 0

    # -- page -> kernel: the camera ----------------------------------------------------------------
    def receive(self, seq: Any, data: bytes, t_in: float) -> None:
        """A camera frame from the page. Acked at once, so the page encodes its next frame while
        this one is decoded; a frame that arrives during a decode replaces the waiting one."""
        self._send(frame_ack(seq), [])
        if self._decoding:
            self._next = (data, t_in)
            return
        self._decoding = True
        asyncio.get_running_loop().create_task(self._decode(data, t_in))

    async def _decode(self, data: bytes, t_in: float) -> None:
        loop = asyncio.get_running_loop()
        job: tuple[bytes, float] | None = (data, t_in)
        try:
            while job is not None and self.camera.readyState == "live":
                spec = self._session.model
                try:
                    frame = await loop.run_in_executor(None, decode_jpeg, job[0], spec.width, spec.height)
                except DecartNBError as exc:
                    self._session.report_error(exc)
                else:
                    frame.opaque = FrameMeta(t_in=job[1])
                    self._deliver(frame)
                job, self._next = self._next, None
        finally:
            self._decoding = False

    def _deliver(self, frame: Any) -> None:
        session = self._session
        pipeline = session.pipeline
        if pipeline is None or pipeline.slot.readyState != "live" or self.camera.readyState != "live":
            return  # between pipelines (a model switch): the next frame goes to the new one
        if pipeline.slot.upstream is not self.camera:
            pipeline.attach_camera(self.camera)
        self.camera.box.put(frame)
        self.frames_received += 1
        session.camera_arrived()

    # -- kernel -> page: the output ----------------------------------------------------------------
    def start_output(self) -> None:
        """Send the output to the page; a (re)started page has no frame in flight."""
        self._in_flight = None
        self._acked.set()
        pipeline = self._session.pipeline
        if self._sender is not None and not self._sender.done() and self._sending_from is pipeline:
            return
        self.stop_output()
        if pipeline is not None:
            self._sending_from = pipeline
            self._sender = asyncio.get_running_loop().create_task(self._send_output(pipeline))

    def acked(self, seq: Any) -> None:
        if seq == self._in_flight:
            self._in_flight = None
            self._acked.set()

    async def _send_output(self, pipeline: Pipeline) -> None:
        track = pipeline.subscribe()
        loop = asyncio.get_running_loop()
        period = 1.0 / max(1, self._session.model.fps)
        last = -period
        try:
            while True:
                try:
                    await asyncio.wait_for(self._acked.wait(), ACK_TIMEOUT_S)
                except asyncio.TimeoutError:
                    logger.info("decart_nb: no ack for output frame %s, sending the next", self._in_flight)
                await asyncio.sleep(max(0.0, last + period - loop.time()))
                try:
                    frame = await recv_video(track)
                except MediaStreamError:
                    return  # the pipeline stopped: a disconnect, or a model switch (the page restarts)
                data = await loop.run_in_executor(None, encode_jpeg, frame)
                self._seq += 1
                self._in_flight = self._seq
                self._acked.clear()
                last = loop.time()
                self._send(output_frame(self._seq, frame.width, frame.height), [data])
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
        self._next = None
        self.camera.stop()
