"""VP8 video over the comm or the page socket: the "codec" transport, real video where WebRTC
cannot connect. The rules it shares with the JPEG link are frame_link.py's.

The page says `transport {transport: "codec", codec: "vp8"}` when its WebCodecs can encode and
decode VP8 (else it uses JPEG, jpeg_link.py). Then, each way (schema: messages.py):
`chunk {seq, key, width, height}` + one buffer = one VP8 frame, acked with `chunk_ack {seq}` by
each side once decoded (so a receiver too busy to decode reads as a slow link and nothing piles
up before a decoder), at most the sender's RateController's `window` chunks in flight (the
bandwidth-delay product in chunks, IN_FLIGHT 2 to MAX_IN_FLIGHT 10: media/rate.py's rule 5);
`keyframe {}` asks the other side's next frame to be a key frame.

A delta frame needs every frame before it, so nothing received is skipped: every chunk is decoded
in order and only the newest decoded frame goes to the pipeline. What breaks the chain (a gap in
the sequence, a chunk that does not decode, more than MAX_PENDING chunks behind) drops the chunks
up to the next key frame and asks the page for one. The sender's side encodes only what it sends:
the newest output frame when the window has room, at the bitrate, size and frame rate
its RateController (media/rate.py) picks from the acks; a key frame on the page's request, on a new
rung and after a lost chunk.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import av

from ..errors import DecartNBError
from ..media.rate import IN_FLIGHT, RateController
from ..media.vp8 import Vp8Decoder, Vp8Encoder, is_key_chunk
from ..session_core import LinkFigures
from ..timeouts import KEYFRAME_REQUEST_EVERY_S
from .frame_link import FrameLink, Incoming, Outgoing, Send
from .messages import KernelMessage, Seq, chunk_ack, keyframe, output_chunk

if TYPE_CHECKING:
    from ..session_port import SessionPort

__all__ = ["KEYFRAME_REQUEST_EVERY_S", "MAX_PENDING", "CodecLink"]

logger = logging.getLogger("decart_nb")

MAX_PENDING = 30  # chunks waiting for the decoder (a second at 30 fps): past that, start again at a key


class CodecLink(FrameLink):
    """VP8 chunks over the comm (see the module's docstring)."""

    name = "codec"
    window = IN_FLIGHT
    ack_on_receipt = False

    def __init__(self, port: SessionPort, send: Send) -> None:
        super().__init__(port, send)
        self._decoder = Vp8Decoder()
        self._encoder = Vp8Encoder()
        # A cancelled sender's encode may still run in the executor when a new sender starts.
        self._encoding = threading.Lock()
        self.rate: RateController | None = None  # the output's; made for the model's size
        self._last_seq: Seq = None
        self._need_key = True  # a decoder starts at a key frame
        self._key_asked_at = float("-inf")
        self._send_key = True
        self.keyframes_asked = 0

    # -- page -> kernel ----------------------------------------------------------------------------
    def _ack(self, seq: Seq) -> KernelMessage:
        return chunk_ack(seq)

    def _queue(self, item: Incoming) -> None:
        follows = isinstance(item.seq, int) and item.seq - 1 == self._last_seq
        self._last_seq = item.seq
        if is_key_chunk(item.data):
            self._need_key = False
            self._pending = [item]  # a key frame needs nothing before it
            return
        if not follows and not self._need_key:
            logger.info("decart_nb: camera chunk %s came after a gap; asking for a key frame", item.seq)
            self._need_key = True
        if not self._need_key and len(self._pending) >= MAX_PENDING:
            logger.warning(
                "decart_nb: %s camera chunks wait for the decoder; starting at a key frame", MAX_PENDING
            )
            self._pending, self._need_key = [], True
        if self._need_key:
            self._ask_key()
            return
        self._pending.append(item)

    def _ask_key(self, now: bool = False) -> None:
        t = time.perf_counter()
        if now or t - self._key_asked_at >= KEYFRAME_REQUEST_EVERY_S:
            self._key_asked_at = t
            self.keyframes_asked += 1
            self._send(keyframe(), [])

    def _decode(
        self, items: list[Incoming], width: int, height: int
    ) -> tuple[av.VideoFrame | None, int, int]:
        newest: av.VideoFrame | None = None
        for item in items:  # every chunk, in order: the next delta frame refers to this one
            newest = self._decoder.decode(item.data) or newest
        if newest is None:
            return None, 0, 0
        return self._decoder.scaled(newest, width, height), newest.width, newest.height

    def _decode_failed(self, error: DecartNBError) -> None:
        # What arrived meanwhile builds on the broken chain, unless it starts at a key frame.
        if not (self._pending and is_key_chunk(self._pending[0].data)):
            self._pending, self._need_key = [], True
            self._ask_key(now=True)
        super()._decode_failed(error)

    # -- kernel -> page ----------------------------------------------------------------------------
    def start_output(self) -> None:
        spec = self._port.session.model
        if self.rate is None or (self.rate.rungs[0].width, self.rate.rungs[0].height) != (
            spec.width,
            spec.height,
        ):
            self.rate = RateController(spec.width, spec.height, spec.fps)
        self._send_key = True  # a (re)started page decodes from a key frame
        super().start_output()

    def pipe_lost(self) -> None:
        super().pipe_lost()
        self._send_key = True  # the chunks it would refer to are gone

    def keyframe_requested(self) -> None:
        """The page's decoder needs a key frame: the next chunk is one."""
        self._send_key = True

    def _take_key(self) -> bool:
        key, self._send_key = self._send_key, False
        return key

    def _period(self) -> float:
        return 1.0 / self.rate.fps if self.rate is not None else super()._period()

    def _window(self) -> int:
        return self.rate.window if self.rate is not None else IN_FLIGHT

    def _encode(self, frame: av.VideoFrame, key: bool) -> Outgoing:
        rate = self.rate
        assert rate is not None  # made by start_output, before the sender
        rung = rate.rung
        with self._encoding:
            data, is_key = self._encoder.encode(frame, rung.width, rung.height, rate.kbps, rate.fps, key)
        return Outgoing(data, rung.width, rung.height, is_key)

    def _announce(self, seq: int, out: Outgoing) -> KernelMessage:
        return output_chunk(seq, out.key, out.width, out.height)

    def _delivered(self, nbytes: int, seconds: float) -> None:
        if self.rate is not None and self.rate.on_ack(nbytes, seconds, time.perf_counter()):
            logger.info("decart_nb: output rung %s at %.0f kbps", self.rate.rung, self.rate.kbps)

    def _encoded(self, seconds: float) -> None:
        if self.rate is not None:
            self.rate.on_encoded(seconds)

    def _lost(self) -> None:
        if self.rate is not None:
            self.rate.on_lost(time.perf_counter())

    def figures(self) -> LinkFigures:
        out = super().figures()
        if self.rate is not None:
            out["transport_target_kbps_out"] = round(self.rate.kbps, 1)
        return out
