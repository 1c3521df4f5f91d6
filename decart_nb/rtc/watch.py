"""Watches the camera's connection for what WebRTC reports late or never.

A camera that stops (unplugged, its track ended, the page paused it) sends no more frames, but its
connection stays up. A peer that vanishes without a goodbye (its process killed, its network gone)
sends nothing at all, and ICE only notices when consent expires, after about 30 s. Both would leave
the session saying `generating` over a frozen picture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

from ..timeouts import CAMERA_STALL_S, PEER_SILENT_S, WATCH_EVERY_S
from .peer import KernelPeer

__all__ = ["CameraWatch", "Verdict"]

Verdict = Literal["flowing", "stalled", "silent"]


class CameraWatch:
    """Reports each change of verdict on the camera peer; runs on the media loop."""

    def __init__(
        self,
        peer: KernelPeer,
        frames_in: Callable[[], int],
        on_change: Callable[[KernelPeer, Verdict], None],
    ) -> None:
        self.peer = peer
        self._frames_in = frames_in
        self._on_change = on_change
        self.verdict: Verdict = "flowing"

    async def run(self) -> None:
        frames, packets = self._frames_in(), await self.peer.packets_received()
        no_frames = no_packets = 0.0
        last = time.monotonic()
        while self.peer.pc.connectionState != "closed":  # closed: its own state change said so
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            # A tick delayed by a busy loop counts as one tick: the packets were waiting unread.
            step, last = min(now - last, 2 * WATCH_EVERY_S), now
            seen_frames, seen_packets = self._frames_in(), await self.peer.packets_received()
            no_frames = 0.0 if seen_frames != frames else no_frames + step
            no_packets = 0.0 if seen_packets != packets else no_packets + step
            frames, packets = seen_frames, seen_packets
            # Stalled only once a packet came after the last frame: when both stop together the
            # peer itself may be gone, which the silence then tells.
            stalled = no_frames >= CAMERA_STALL_S and no_packets < no_frames - WATCH_EVERY_S
            verdict: Verdict = (
                "silent" if no_packets >= PEER_SILENT_S else "stalled" if stalled else "flowing"
            )
            if verdict != self.verdict:
                self.verdict = verdict
                self._on_change(self.peer, verdict)
