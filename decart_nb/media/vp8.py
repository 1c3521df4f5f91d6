"""VP8 chunks <-> yuv420p frames, for the widget's codec transport (video over the Jupyter comm).

A chunk is one VP8 frame, as the page's WebCodecs `EncodedVideoChunk` holds it (no container).
The encoder is libvpx in its realtime mode: no look-ahead, error resilient, a key frame only when
asked for (the receiver's request, a new rung, a lost chunk). Its bitrate follows the sender's
RateController without a restart: libvpx gives each frame `bitrate * frame duration` bits, so the
encoder is opened at the bitrate of the moment and each frame's timestamp then advances by one
period scaled by `kbps / opened_kbps`. Only a new size reopens it (a key frame anyway).

The encoder runs on one thread (ENCODE_THREADS). Two threads (libvpx splits a frame by macroblock
rows) were tried for issue 24's detailed picture: quiet, a detailed 720p frame took 9.7 ms against
15.6 on one thread. On a busy 2-core machine (load average 6, where the page, JupyterLab and the
model share the cores) two threads wait for each other whenever one is descheduled: a moving
720p pattern took a median of 24-46 ms a frame (p90 124-288 ms) against 7-13 ms (p90 22-27 ms) on
one thread, which starves the link. Cost of a moving test pattern on one thread: encode 720p
8 ms, 360p 2.6 ms; decode 720p 1.8 ms, 360p 0.8 ms.
Call both from the media loop's executor, never on the loop; each object is used by one job at a
time (the transport runs them in order).
"""

from __future__ import annotations

from fractions import Fraction

import av
from av.video.reformatter import VideoReformatter

from ..errors import DecartNBError, ErrorCode

__all__ = [
    "ENCODER_OPTIONS",
    "ENCODE_THREADS",
    "Vp8Decoder",
    "Vp8Encoder",
    "is_key_chunk",
    "key_frame_size",
]

TIME_BASE = Fraction(1, 90000)
# A page sends at most the model's size; anything much larger is not a camera chunk.
MAX_PIXELS = 4096 * 4096
ENCODER_OPTIONS = {
    "deadline": "realtime",
    "cpu-used": "8",  # the fastest realtime speed: a frame must not wait for the encoder
    "lag-in-frames": "0",  # every frame comes out as it goes in
    "error-resilient": "1",
    "max-intra-rate": "300",  # a key frame at most 3 periods' bits: it must not stall the link
    "undershoot-pct": "100",
    "overshoot-pct": "15",
    "static-thresh": "0",
}
ENCODE_THREADS = 1  # two wait for each other on a busy machine (see the docstring)
NO_PERIODIC_KEYS = 1 << 20  # kf_max_dist: key frames only when asked for


def is_key_chunk(data: bytes) -> bool:
    """A VP8 frame's tag: bit 0 of its first byte is 0 for a key frame (RFC 6386, 9.1)."""
    return bool(data) and not data[0] & 1


def key_frame_size(data: bytes) -> tuple[int, int] | None:
    """A key frame's width and height from its header (None: not a well-formed key frame)."""
    if not is_key_chunk(data) or len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF


class Vp8Decoder:
    """VP8 chunks to frames of the receiver's size."""

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("vp8", "r")
        self._scale = VideoReformatter()

    def decode(self, data: bytes) -> av.VideoFrame | None:
        """The chunk's frame as the sender encoded it (None: nothing to show yet).

        Raises DecartNBError(INVALID_INPUT) for a chunk it cannot use (corrupt, or a delta frame
        whose reference is missing): the sender must then send a key frame."""
        size = key_frame_size(data)
        if size is not None and size[0] * size[1] > MAX_PIXELS:
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"A {size[0]}x{size[1]} chunk is too big")
        try:
            frames = self._ctx.decode(av.Packet(data))
        except (av.error.FFmpegError, ValueError) as exc:
            self.reset()
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"The page sent a VP8 chunk that does not decode: {exc}"
            ) from exc
        if not frames:
            return None
        return frames[-1]

    def scaled(self, frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
        """`frame` as yuv420p at `width` x `height` (a rung's frame at the model's size)."""
        return self._scale.reformat(frame, width=width, height=height, format="yuv420p")

    def reset(self) -> None:
        """Forget the references (after an error): the next usable chunk is a key frame."""
        self._ctx = av.CodecContext.create("vp8", "r")


class Vp8Encoder:
    """Frames to VP8 chunks at a size, bitrate and frame rate that change as the link does."""

    def __init__(self, threads: int = ENCODE_THREADS) -> None:
        self._threads = threads
        self._ctx: av.VideoCodecContext | None = None
        self._opened_kbps = 1.0
        self._pts = 0
        self._scale = VideoReformatter()

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self._ctx is None else (self._ctx.width, self._ctx.height)

    def encode(
        self, frame: av.VideoFrame, width: int, height: int, kbps: float, fps: float, key: bool = False
    ) -> tuple[bytes, bool]:
        """One VP8 frame of `frame` scaled to `width` x `height`; (bytes, is it a key frame)."""
        if self.size != (width, height):
            self._open(width, height, kbps, fps)
        assert self._ctx is not None
        image = self._scale.reformat(frame, width=width, height=height, format="yuv420p")
        if image is frame:  # never touch the caller's frame (other subscribers share it)
            image = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        image.pts, image.time_base = self._pts, TIME_BASE
        image.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
        self._pts += max(1, round(TIME_BASE.denominator / fps * kbps / self._opened_kbps))
        packets = self._ctx.encode(image)
        data = b"".join(bytes(p) for p in packets)
        return data, any(p.is_keyframe for p in packets)

    def _open(self, width: int, height: int, kbps: float, fps: float) -> None:
        ctx = av.CodecContext.create("libvpx", "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.bit_rate = int(kbps * 1000)
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(round(fps * 1000), 1000)
        ctx.gop_size = NO_PERIODIC_KEYS
        ctx.thread_count = self._threads
        ctx.options = dict(ENCODER_OPTIONS)
        self._ctx, self._opened_kbps, self._pts = ctx, kbps, 0

    def close(self) -> None:
        self._ctx = None
