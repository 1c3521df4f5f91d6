"""A Session's WebRTC peers and what its camera's connection says: answering offers, the camera
arriving (over any transport), stalling and dropping, and the give-up timer of a reconnect.
Loop thread, unless said otherwise."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamTrack

from .errors import DecartNBError, ErrorCode
from .rtc.peer import KernelPeer
from .rtc.peers import CameraNews, PeerSet
from .session_core import SessionCore
from .session_ticks import Ticks
from .timeouts import RECONNECT_GIVE_UP_S

__all__ = ["CameraPeers"]


class CameraPeers:
    """Every peer of one Session, and its camera's news as the session's connection state."""

    def __init__(self, core: SessionCore, ticks: Ticks) -> None:
        self._core = core
        self._ticks = ticks
        self._give_up: asyncio.TimerHandle | None = None
        self.peer_set = PeerSet(
            ice_servers=core.ice_servers,
            frames_in=self._frames_in,
            on_camera_track=self._attach_camera,
            on_camera_news=self.news,
        )

    async def answer(self, offer_sdp: str) -> KernelPeer:
        """A new peer answering the offer (its `answer_sdp` goes back to the offerer); a camera
        session takes the offer's video as its source; every peer receives the output."""
        pipeline = self._core.require_pipeline()
        return await self.peer_set.answer(
            offer_sdp, codec=self._core.codec, output=pipeline.subscribe(), take_camera=self._core.is_camera()
        )

    async def close(self, peer: KernelPeer) -> None:
        await self.peer_set.close(peer)

    async def close_all(self) -> None:
        self.cancel_give_up()
        await self.peer_set.close_all()

    def _attach_camera(self, track: MediaStreamTrack) -> None:
        if self._core.pipeline is not None:
            self._core.pipeline.attach_camera(track)

    def _frames_in(self) -> int:
        return 0 if self._core.pipeline is None else self._core.pipeline.stats.frames_in

    def news(self, news: CameraNews) -> None:
        """What the peer set saw on the camera peer, as the session's state: at once, instead of
        after ICE's 30 s consent expiry for a peer gone without a goodbye."""
        core = self._core
        if news == "connected":
            self.camera_arrived()
        elif news == "lost":
            self.peer_lost()
        elif news == "stalled" and core.conn == "generating" and not core.engine.owns_connection_state:
            self._ticks.stop()
            core.set_conn("connected")  # connected, but nothing to transform
        elif news == "flowing" and core.conn == "reconnecting":
            self.cancel_give_up()
            core.set_conn("connected")  # the same peer was heard from again

    def camera_arrived(self) -> None:
        """The camera's frames arrive (over any transport): a connecting or reconnecting session
        is connected."""
        if self._core.conn in ("connecting", "reconnecting"):
            self.cancel_give_up()
            self._core.set_conn("connected")

    def peer_lost(self) -> None:
        """The camera's connection dropped: report `reconnecting` and wait for a new offer (the
        page retries by itself); give up with an error after RECONNECT_GIVE_UP_S."""
        if self._core.conn in ("disconnected", "reconnecting"):
            return
        self._ticks.stop()
        self._core.set_conn("reconnecting")
        loop = asyncio.get_running_loop()
        self.cancel_give_up()
        self._give_up = loop.call_later(RECONNECT_GIVE_UP_S, self._reconnect_failed)

    def cancel_give_up(self) -> None:
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None

    def _reconnect_failed(self) -> None:
        self._give_up = None
        if self._core.conn != "reconnecting":
            return
        self._core.report_error(
            DecartNBError(
                ErrorCode.WEBRTC_ICE_ERROR,
                "The camera connection dropped and was not re-established within "
                f"{RECONNECT_GIVE_UP_S:.0f} s",
            )
        )
        self._core.disconnect_soon("giveup")
