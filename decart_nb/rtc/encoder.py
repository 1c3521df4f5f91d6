"""The kernel's VP8 encoder: aiortc's realtime settings, without the temporal denoiser and one
speed step faster.

Two changes, both on the path of every output frame:
- aiortc encodes with `noise-sensitivity 4`, libvpx's temporal denoiser, meant for noisy camera
  sensors. The kernel encodes a model's output (or a test card), where there is no sensor noise to
  remove; at 1280x720 the denoiser made each frame cost 4.2 ms instead of 2.7 ms.
- aiortc's fixed speed `cpu-used -6` becomes `-8`. On a detailed camera picture at 1.5 Mbit/s
  (`python -m bench.output_encoder`) a 720p frame's encode took 16-37 % less time, for
  under 0.2 dB of PSNR: at this bitrate the bits, not the speed, set the quality.
The rate control (CBR within aiortc's bitrate range, re-opened when the target moves by over
10 %), keyframes on request and the RTP packetization stay aiortc's.
"""

from __future__ import annotations

import logging

import aiortc
import av
from aiortc import RTCRtpTransceiver
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from av.frame import Frame
from av.video.codeccontext import VideoCodecContext

__all__ = ["SPEED", "OutputVp8Encoder", "use_output_encoder"]

logger = logging.getLogger("decart_nb")

#: aiortc releases whose RTCRtpSender creates its encoder lazily in this attribute.
TESTED_AIORTC = ("1.16.0",)
_ENCODER_ATTR = "_RTCRtpSender__encoder"
SPEED = -8  # libvpx's `cpu-used`, negative: a fixed speed (aiortc: -6; the module docstring)


def _options(bitrate: int, speed: int = SPEED) -> dict[str, str]:
    return {
        "bufsize": str(bitrate),  # a 1 s rate-control buffer
        "cpu-used": str(speed),
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),  # minrate = maxrate = bit_rate: CBR
        "maxrate": str(bitrate),
        "noise-sensitivity": "0",  # aiortc: 4, the temporal denoiser
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }


class OutputVp8Encoder(Vp8Encoder):
    """aiortc's Vp8Encoder, opening its libvpx context with the kernel's two changes. `speed`
    is there for the benchmark (bench/output_encoder.py), which sets it to compare speeds."""

    speed = SPEED

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        if self.codec is not None and self._needs_new_context(frame):
            self.codec = None
        # libvpx makes a key frame of any frame marked I, and a decoded clip keeps its own marks
        # (a y4m clip's: all I); passed through, they would go out as key frames. On request only.
        kinds = av.video.frame.PictureType
        frame.pict_type = kinds.I if force_keyframe else kinds.NONE
        if self.codec is None:
            self.codec = self._open(frame.width, frame.height)
        data = b"".join(bytes(packet) for packet in self.codec.encode(frame))
        payloads = self._packetize(data, self.picture_id)
        assert frame.pts is not None and frame.time_base is not None  # the sender stamps every frame
        timestamp = convert_timebase(frame.pts, frame.time_base, VIDEO_TIME_BASE)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, timestamp

    def _needs_new_context(self, frame: av.VideoFrame) -> bool:
        codec = self.codec
        assert codec is not None
        opened_at = codec.bit_rate or self.target_bitrate
        moved = abs(self.target_bitrate - opened_at) / opened_at
        return frame.width != codec.width or frame.height != codec.height or moved > 0.1

    def _open(self, width: int, height: int) -> VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.bit_rate = self.target_bitrate
        codec.pix_fmt = "yuv420p"
        codec.gop_size = 3000  # keyframes only on request (PLI/FIR)
        codec.qmin, codec.qmax = 2, 56
        codec.options = _options(self.target_bitrate, self.speed)
        codec.thread_count = 1  # aiortc's choice below 3 cores; the kernel's cores are the model's
        return codec


def use_output_encoder(transceiver: RTCRtpTransceiver) -> bool:
    """Give a negotiated VP8 transceiver's sender the kernel's encoder before its first frame.
    Returns False (aiortc's own encoder is used) for another codec or an untested aiortc."""
    sender = transceiver.sender
    codecs = getattr(transceiver, "_codecs", None)  # negotiated; the sender sends with the first
    if aiortc.__version__ not in TESTED_AIORTC or not codecs or not hasattr(sender, _ENCODER_ATTR):
        logger.info("decart_nb: aiortc %s: its own VP8 encoder settings", aiortc.__version__)
        return False
    if codecs[0].mimeType.lower() != "video/vp8" or getattr(sender, _ENCODER_ATTR) is not None:
        return False
    setattr(sender, _ENCODER_ATTR, OutputVp8Encoder())
    return True
