"""JPEG frames over the comm: the "jpeg" transport, for browsers without WebCodecs VP8 (or when
`transport="jpeg"` asks for it). The rules it shares with the VP8 link are frame_link.py's.

The page says `transport {transport: "jpeg"}` (an older page: "comm"), then sends `frame {seq}` +
one JPEG buffer (a camera session's camera) and acks the kernel's output `frame {seq, width,
height}` + one JPEG buffer with `frame_ack {seq}`. A camera frame that arrives while one is
decoded replaces the one waiting (JPEG frames stand alone, so any can be dropped).
"""

from __future__ import annotations

import io

import av
from PIL import Image

from ..media.jpeg import decode_jpeg, encode_jpeg
from .frame_link import FrameLink, Incoming, Outgoing
from .messages import KernelMessage, Seq, frame_ack, output_frame

__all__ = ["JpegLink"]


class JpegLink(FrameLink):
    """JPEG frames over the comm (see the module's docstring)."""

    name = "jpeg"

    def _ack(self, seq: Seq) -> KernelMessage:
        return frame_ack(seq)

    def _queue(self, item: Incoming) -> None:
        self._pending = [item]  # the newest wins: a JPEG frame needs no other

    def _decode(
        self, items: list[Incoming], width: int, height: int
    ) -> tuple[av.VideoFrame | None, int, int]:
        data = items[-1].data
        frame = decode_jpeg(data, width, height)
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            return frame, image.width, image.height

    def _encode(self, frame: av.VideoFrame, key: bool) -> Outgoing:
        return Outgoing(encode_jpeg(frame), frame.width, frame.height)

    def _announce(self, seq: int, out: Outgoing) -> KernelMessage:
        return output_frame(seq, out.width, out.height)
