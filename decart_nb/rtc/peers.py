"""The session's WebRTC peers: answering offers, the camera peer, and watching it.

Loop thread only. The peer set knows peers, not session states: it tells its owner (the Session)
what happens to the camera peer, and the Session decides what that means for its state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from .peer import KernelPeer
from .watch import CameraWatch, Verdict

__all__ = ["CameraNews", "PeerSet", "video_track"]

# What the owner hears about the camera peer: its connection came up, it is gone (a drop, or
# silent), its camera stopped sending, or its frames flow again.
CameraNews = Literal["connected", "lost", "stalled", "flowing"]
_GONE = ("failed", "closed", "disconnected")


class PeerSet:
    """Every peer of one session; at most one of them is the camera (a camera session's source)."""

    def __init__(
        self,
        *,
        ice_servers: list[RTCIceServer],
        frames_in: Callable[[], int],
        on_camera_track: Callable[[MediaStreamTrack], None],
        on_camera_news: Callable[[CameraNews], None],
    ) -> None:
        self.peers: set[KernelPeer] = set()
        self.camera: KernelPeer | None = None
        self._ice_servers = ice_servers
        self._frames_in = frames_in
        self._on_camera_track = on_camera_track
        self._on_camera_news = on_camera_news
        self._watch: asyncio.Task[None] | None = None  # CameraWatch.run of the camera peer

    async def answer(
        self, offer_sdp: str, *, codec: str, output: MediaStreamTrack, take_camera: bool
    ) -> KernelPeer:
        """A new peer answering `offer_sdp` (its `answer_sdp`), sending `output`; with
        `take_camera` its video becomes the camera, replacing the previous camera peer."""
        peer = KernelPeer(ice_servers=self._ice_servers, codec=codec, output=output, on_state=self._state)
        self.peers.add(peer)
        try:
            await peer.answer(offer_sdp)
        except BaseException:
            self.peers.discard(peer)
            await peer.close()
            raise
        if take_camera and peer.receives_video:
            await self._use_camera(peer)
        return peer

    def camera_track(self) -> MediaStreamTrack | None:
        return None if self.camera is None else video_track(self.camera)

    def replace_output(self, subscribe: Callable[[], MediaStreamTrack]) -> None:
        """Every peer sends a new output track (a model switch made a new pipeline)."""
        for peer in self.peers:
            for sender in peer.pc.getSenders():
                if sender.track is not None:
                    sender.replaceTrack(subscribe())

    async def close(self, peer: KernelPeer) -> None:
        """Close one peer (its page replaced or dropped it)."""
        self.peers.discard(peer)
        if peer is self.camera:
            self.camera = None
        await peer.close()

    async def close_all(self) -> None:
        self._stop_watch()
        peers, self.peers, self.camera = list(self.peers), set(), None
        for peer in peers:
            await peer.close()

    async def _use_camera(self, peer: KernelPeer) -> None:
        old, self.camera = self.camera, peer
        self._stop_watch()
        if old is not None and old is not peer:
            self.peers.discard(old)
            await old.close()
        self._on_camera_track(video_track(peer))

    def _state(self, peer: KernelPeer, state: str) -> None:
        if state in _GONE and not peer.closed_by_us:
            self.peers.discard(peer)
            asyncio.get_running_loop().create_task(peer.close())
        if peer is not self.camera:
            return
        if state == "connected":
            self._watch_camera(peer)
            self._on_camera_news("connected")
        elif state in _GONE and not peer.closed_by_us:
            self._on_camera_news("lost")

    def _watch_camera(self, peer: KernelPeer) -> None:
        self._stop_watch()
        watch = CameraWatch(peer, self._frames_in, self._verdict)
        self._watch = asyncio.get_running_loop().create_task(watch.run())

    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _verdict(self, peer: KernelPeer, verdict: Verdict) -> None:
        """The camera peer went silent (gone without a goodbye), its camera stopped sending, or
        it came back: the owner hears at once instead of after ICE's 30 s consent expiry."""
        if peer is not self.camera:
            return
        self._on_camera_news("lost" if verdict == "silent" else verdict)


def video_track(peer: KernelPeer) -> MediaStreamTrack:
    track: MediaStreamTrack = next(t.receiver.track for t in peer.pc.getTransceivers() if t.kind == "video")
    return track
