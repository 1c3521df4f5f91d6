"""One WebRTC connection between the kernel and a page (or any WebRTC client).

The page offers, the kernel answers; the answer carries all of the kernel's candidates (no trickle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from ..errors import DecartNBError, ErrorCode
from .encoder import use_output_encoder
from .jitter import complete_frames_on_marker
from .sdp import raise_start_bitrate

__all__ = ["CODECS", "KernelPeer", "ice_servers_from"]

CODECS = {"vp8": "video/VP8", "h264": "video/H264"}


def ice_servers_from(servers: Sequence[object] | None) -> list[RTCIceServer]:
    """Accept RTCIceServer objects, dicts like the browser's ({urls, username, credential}) or URLs."""
    result = []
    for server in servers or ():
        if isinstance(server, RTCIceServer):
            result.append(server)
        elif isinstance(server, str):
            result.append(RTCIceServer(urls=server))
        elif isinstance(server, Mapping) and "urls" in server:
            result.append(
                RTCIceServer(
                    urls=server["urls"],
                    username=server.get("username"),
                    credential=server.get("credential"),
                )
            )
        else:
            # never its repr: an entry may hold a TURN credential
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"Bad ICE server entry: a {type(server).__name__}")
    return result


class KernelPeer:
    """An aiortc peer that takes the page's camera (if it sends one) and sends the output back."""

    def __init__(
        self,
        *,
        ice_servers: list[RTCIceServer],
        codec: str,
        output: MediaStreamTrack | None,
        on_state: Callable[[KernelPeer, str], None],
    ) -> None:
        # An explicit empty list: aiortc otherwise adds a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self._codec = CODECS[codec]
        self._output = output
        self._on_state = on_state
        self.closed_by_us = False
        self.receives_video = False
        self.answer_sdp = ""  # set by answer()
        self.pc.on("track", self._track)
        self.pc.on("connectionstatechange", self._state_changed)

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def answer(self, offer_sdp: str) -> str:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            raise DecartNBError(
                ErrorCode.WEBRTC_SIGNALING_ERROR, f"The offer was not valid SDP: {exc}", cause=exc
            ) from exc
        video = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        if not video:
            raise DecartNBError(ErrorCode.WEBRTC_SIGNALING_ERROR, "The offer has no video section")
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                self._prefer_codec(transceiver)
        if self._output is not None:
            self.pc.addTrack(self._output)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        for transceiver in video:
            if transceiver.sender.track is not None:
                use_output_encoder(transceiver)
        self.answer_sdp = raise_start_bitrate(self.pc.localDescription.sdp)
        return self.answer_sdp

    def _prefer_codec(self, transceiver: RTCRtpTransceiver) -> None:
        caps = RTCRtpSender.getCapabilities("video").codecs
        chosen = [c for c in caps if c.mimeType == self._codec]
        rtx = [c for c in caps if c.mimeType == "video/rtx"]
        if chosen:
            transceiver.setCodecPreferences(chosen + rtx)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        self.receives_video = True
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                complete_frames_on_marker(transceiver.receiver)

    async def _state_changed(self) -> None:
        self._on_state(self, self.state)

    async def packets_received(self) -> int:
        """RTP and RTCP packets received so far (what CameraWatch reads to tell a live peer)."""
        if self.pc.connectionState == "closed":
            return 0
        report = await self.pc.getStats()
        return sum(int(getattr(s, "packetsReceived", 0)) for s in report.values() if s.type == "transport")

    async def close(self) -> None:
        self.closed_by_us = True
        await self.pc.close()
