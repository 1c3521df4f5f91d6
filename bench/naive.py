"""The baseline: a naive aiortc relay, as in aiortc's examples/server.

The server's track awaits every incoming frame and transforms it inline on the event loop; the
receiver keeps aiortc's own jitter buffer and queue. Same model functions as the Session gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from .engines import Model

__all__ = ["NaiveRelay", "NaiveState"]


@dataclass
class NaiveState:
    prompt: str | None = None
    version: int = 0


class TransformTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, relay: NaiveRelay, source: MediaStreamTrack) -> None:
        super().__init__()
        self.relay, self.source = relay, source

    async def recv(self) -> av.VideoFrame:
        frame = await self.source.recv()
        assert isinstance(frame, av.VideoFrame)
        state = self.relay.state
        model = self.relay.model
        if model is not None:
            rgb = model(frame.to_ndarray(format="rgb24"), state)
            out = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out.pts, out.time_base = frame.pts, frame.time_base
            frame = out
        self.relay.on_output(state.version)
        return frame


class NaiveRelay:
    """One peer per offer; every peer gets its camera back through the model."""

    def __init__(self, model: Model, prompt: str | None = None) -> None:
        self.model = model
        self.state = NaiveState(prompt)
        self.first_frame_of: dict[int, float] = {}
        self.frames_out = 0
        self.peers: list[RTCPeerConnection] = []

    def on_output(self, version: int) -> None:
        self.frames_out += 1
        self.first_frame_of.setdefault(version, time.perf_counter())

    async def answer(self, offer_sdp: str) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peers.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                pc.addTrack(TransformTrack(self, track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    def set_prompt(self, text: str) -> int:
        self.state = NaiveState(text, self.state.version + 1)
        return self.state.version

    async def close(self) -> None:
        for pc in self.peers:
            await pc.close()
