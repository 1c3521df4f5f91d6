"""The browser's stand-in: an aiortc peer that sends a stamped 1280x720@30 pattern to the kernel
side (another process) and reads the stamp back from every frame it receives."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_nb.media.frames import VIDEO_CLOCK_RATE, luma_view
from decart_nb.media.sources import PatternTrack
from decart_nb.media.stamp import read_stamp
from decart_nb.rtc.jitter import complete_frames_on_marker

from .engines import paint_level

__all__ = ["FPS", "HEIGHT", "WIDTH", "Arrival", "Client", "Kernel", "StampedSource", "complete_on_marker"]

WIDTH, HEIGHT, FPS = 1280, 720, 30


class Kernel:
    """The kernel-side process (bench/kernel.py) and its JSON-lines protocol."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc, self.ready = proc, ready

    @classmethod
    async def start(cls, kind: str, model: str) -> Kernel:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.kernel",
            kind,
            model,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        kernel = cls(proc, {})
        kernel.ready = await kernel._read(60)
        return kernel

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the kernel side exited (code {await self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def ask(self, op: str, timeout: float = 30, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def answer(self, offer_sdp: str) -> str:
        return str((await self.ask("offer", sdp=offer_sdp))["sdp"])

    async def quit(self) -> None:
        try:
            await self.ask("quit", timeout=20)
        finally:
            if self.proc.returncode is None:
                try:
                    await asyncio.wait_for(self.proc.wait(), 10)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()


class StampedSource(PatternTrack):
    """The test pattern with its frame number stamped; remembers when each frame left."""

    def __init__(self) -> None:
        super().__init__(WIDTH, HEIGHT, FPS)
        self.sent: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        assert frame.pts is not None
        self.sent[round(frame.pts * FPS / VIDEO_CLOCK_RATE) & 0xFFFFFF] = time.perf_counter()
        return frame

    def sent_at(self, y: np.ndarray) -> tuple[int, float] | None:
        """The frame number stamped in a received luma plane and when that frame left; None when
        the stamp cannot be read or is not one of this source's frames."""
        number = read_stamp(y)
        sent = None if number is None else self.sent.get(number)
        return None if number is None or sent is None else (number, sent)


def complete_on_marker(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """A browser completes frames on the marker bit: so does its stand-in (`track`'s receiver)."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            complete_frames_on_marker(transceiver.receiver)


@dataclass
class Arrival:
    t: float
    number: int
    latency_ms: float
    level: str | None = None


@dataclass
class Client:
    """One connection to the kernel side; `arrivals` fills while it runs."""

    read_paint: bool = False
    source: StampedSource = field(default_factory=StampedSource)
    arrivals: list[Arrival] = field(default_factory=list)
    unreadable: int = 0
    t_start: float = 0.0
    first_frame: asyncio.Future[float] | None = None

    async def connect(self, answer: Callable[[str], Awaitable[str]]) -> None:
        """Offer to the kernel side (`answer` takes the offer SDP and returns the answer SDP)."""
        self.first_frame = asyncio.get_running_loop().create_future()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.t_start = time.perf_counter()
        self.pc.addTrack(self.source)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            complete_on_marker(self.pc, track)
            self._reader = asyncio.get_running_loop().create_task(self._read(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer_sdp = await answer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.perf_counter()
            assert isinstance(frame, av.VideoFrame)
            y = luma_view(frame)
            found = self.source.sent_at(y)
            if found is None:
                self.unreadable += 1
                continue
            number, sent = found
            level = paint_level(y) if self.read_paint else None
            self.arrivals.append(Arrival(now, number, (now - sent) * 1000.0, level))
            if self.first_frame is not None and not self.first_frame.done():
                self.first_frame.set_result(now)

    async def close(self) -> None:
        await self.pc.close()
