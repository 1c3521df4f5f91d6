"""aiortc frames <-> LiveKit tracks, the media of Decart's SDK (imported only with the SDK)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import av
import livekit.rtc as rtc
import numpy as np

from ...media.frames import from_rgb

__all__ = ["LiveKitBridge", "LiveKitFeed"]


class LiveKitFeed:
    """A LiveKit video source and its local track: what the SDK publishes to Decart."""

    def __init__(self, width: int, height: int) -> None:
        self._source = rtc.VideoSource(width, height)
        self.track = rtc.LocalVideoTrack.create_video_track("decart_nb", self._source)
        self._t0 = time.perf_counter()

    def push(self, frame: av.VideoFrame) -> None:
        # LiveKit copies the buffer in capture_frame; I420 is what the decoder already gives us.
        if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
            frame = frame.reformat(width=frame.width // 2 * 2, height=frame.height // 2 * 2, format="yuv420p")
        data = frame.to_ndarray()
        buffer = rtc.VideoFrame(frame.width, frame.height, rtc.VideoBufferType.I420, data.tobytes())
        self._source.capture_frame(buffer, timestamp_us=int((time.perf_counter() - self._t0) * 1e6))

    async def close(self) -> None:
        await self._source.aclose()


class LiveKitBridge:
    def open_local(self, width: int, height: int) -> LiveKitFeed:
        return LiveKitFeed(width, height)

    async def remote_frames(self, remote: object) -> AsyncIterator[av.VideoFrame]:
        if not isinstance(remote, rtc.Track):  # the SDK's on_remote_stream hands LiveKit's track
            raise TypeError(f"expected a LiveKit track, got {type(remote).__name__}")
        # capacity=1: LiveKit's ring keeps only the newest decoded frame for a slow reader.
        stream = rtc.VideoStream(remote, capacity=1, format=rtc.VideoBufferType.I420)
        try:
            async for event in stream:
                yield _to_av(event.frame)
        finally:
            await stream.aclose()


def _to_av(frame: rtc.VideoFrame) -> av.VideoFrame:
    w, h = frame.width, frame.height
    if w % 2 or h % 2:  # odd sizes have padded chroma rows: let LiveKit hand us RGB instead
        rgb = np.frombuffer(frame.convert(rtc.VideoBufferType.RGB24).data, np.uint8).reshape(h, w, 3)
        return from_rgb(rgb)
    if frame.type != rtc.VideoBufferType.I420:
        frame = frame.convert(rtc.VideoBufferType.I420)
    planes = np.frombuffer(frame.data, np.uint8)[: w * h * 3 // 2].reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")
