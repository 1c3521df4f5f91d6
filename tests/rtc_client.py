"""An aiortc peer that plays the browser: it offers, Session.answer() answers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_nb import Session
from decart_nb.media.stamp import read_stamp


@dataclass
class Received:
    stamp: int | None
    width: int
    height: int
    at: float
    luma_mean: float


@dataclass
class BrowserPeer:
    """Offers (sending `send` if given, receiving the output) and records what comes back."""

    send: MediaStreamTrack | None = None
    codec: str | None = None  # e.g. "video/H264": offer only that codec, as a page can
    frames: list[Received] = field(default_factory=list)
    keep: av.VideoFrame | None = None

    def __post_init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, session: Session) -> None:
        if self.send is not None:
            self.pc.addTrack(self.send)
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if self.codec is not None:
            caps = RTCRtpSender.getCapabilities("video").codecs
            for transceiver in self.pc.getTransceivers():
                transceiver.setCodecPreferences([c for c in caps if c.mimeType == self.codec])
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await asyncio.to_thread(session.answer, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            y = frame.to_ndarray()[: frame.height]
            self.frames.append(
                Received(read_stamp(y), frame.width, frame.height, time.monotonic(), float(y.mean()))
            )
            self.keep = frame

    async def wait_frames(self, n: int, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while len(self.frames) < n:
            if time.monotonic() > end:
                raise AssertionError(f"only {len(self.frames)} of {n} frames arrived in {timeout} s")
            await asyncio.sleep(0.02)

    def rgb(self) -> np.ndarray:
        assert self.keep is not None
        return self.keep.to_ndarray(format="rgb24")

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
