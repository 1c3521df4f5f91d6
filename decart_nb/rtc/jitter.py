"""Receive-latency tweak for aiortc: complete a video frame on the RTP marker bit (issue 5).

aiortc's video JitterBuffer hands a frame to the decoder only when the first packet of the NEXT
frame arrives, so every frame waits one frame interval (33 ms at 30 fps) in every aiortc receiver.
The sender sets the RTP marker bit on the last packet of each frame: once that packet and every
packet before it (from the buffer's origin, all with one timestamp) are in, the frame is complete.
aiortc's timestamp rule stays as the fallback for frames whose marker packet never arrives.
"""

from __future__ import annotations

import logging

import aiortc
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

__all__ = ["TESTED_AIORTC", "MarkerJitterBuffer", "complete_frames_on_marker"]

logger = logging.getLogger("decart_nb")

#: aiortc releases whose JitterBuffer internals this module was tested against.
TESTED_AIORTC = ("1.16.0",)
_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_warned = False


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video JitterBuffer, releasing a frame as soon as its marker packet completes it."""

    # Timestamp of the last frame handed out: packets that still carry it (late padding) are
    # dropped at the origin, so a frame is never emitted twice.
    _last_timestamp: int | None = None
    # The sequence number right after the last frame handed out. Only a run that starts there is
    # known to start a frame; elsewhere (the first packets, after an overflow or a reset) the
    # frame's head may be missing, so only aiortc's timestamp rule applies.
    _frame_start: int | None = None

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is None:
            return None
        self._drop_stale_head()
        trust_marker = self._origin == self._frame_start
        packets: list[RtpPacket] = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None  # a gap: wait for the missing packet (or aiortc's overflow rule)
            if packets and packet.timestamp != packets[0].timestamp:
                return self._release(packets, count)  # aiortc's rule: the next frame has begun
            packets.append(packet)
            if packet.marker and trust_marker:
                return self._release(packets, count + 1)
        return None

    def _release(self, packets: list[RtpPacket], count: int) -> JitterFrame:
        frame = JitterFrame(
            data=b"".join(getattr(p, "_data", b"") for p in packets), timestamp=packets[0].timestamp
        )
        self.remove(count)
        self._last_timestamp, self._frame_start = frame.timestamp, self._origin
        return frame

    def _drop_stale_head(self) -> None:
        """Skip packets at the origin that belong to the frame already released."""
        assert self._origin is not None
        for _ in range(self._capacity):
            packet = self._packets[self._origin % self._capacity]
            if packet is None or packet.timestamp != self._last_timestamp:
                return
            at_start = self._origin == self._frame_start
            self._packets[self._origin % self._capacity] = None
            self._origin = uint16_add(self._origin, 1)
            if at_start:
                self._frame_start = self._origin


def _supported(buffer: object) -> str | None:
    """Why the receiver's buffer cannot be patched, or None when it can."""
    if aiortc.__version__ not in TESTED_AIORTC:
        return f"aiortc {aiortc.__version__} is untested (tested: {', '.join(TESTED_AIORTC)})"
    if type(buffer) is not JitterBuffer:
        return f"unexpected jitter buffer type {type(buffer).__name__}"
    checks = {
        "_capacity": int,
        "_packets": list,
        "_prefetch": int,
        "_is_video": bool,
    }
    for name, kind in checks.items():
        if not isinstance(getattr(buffer, name, None), kind):
            return f"the jitter buffer has no {name} of type {kind.__name__}"
    if not hasattr(buffer, "_origin") or not callable(getattr(buffer, "remove", None)):
        return "the jitter buffer lacks _origin or remove()"
    if not (buffer._is_video and buffer._prefetch == 0):
        return "not a video jitter buffer without prefetch"
    return None


def complete_frames_on_marker(receiver: RTCRtpReceiver) -> bool:
    """Install marker-bit frame completion on a video receiver; False when not applied."""
    global _warned
    buffer = getattr(receiver, _BUFFER_ATTR, None)
    if isinstance(buffer, MarkerJitterBuffer):
        return True
    reason = _supported(buffer)
    if reason is not None:
        if not _warned:
            _warned = True
            logger.warning(
                "decart_nb: frames are not completed on the RTP marker bit (%s): "
                "each received frame waits one frame interval longer",
                reason,
            )
        return False
    # Swap the class in place: the buffer keeps whatever packets and origin it already holds.
    buffer.__class__ = MarkerJitterBuffer
    return True
