"""Latency behaviour through a real Session on loopback (figures belong in bench/, not here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.client import Arrival, Client
from decart_nb import Session
from decart_nb.rtc import jitter

pytestmark = pytest.mark.webrtc


def answer_with(session: Session) -> Callable[[str], Any]:
    async def answer(offer_sdp: str) -> str:
        return await asyncio.to_thread(session.answer, offer_sdp)

    return answer


def kernel_jitter_buffer(session: Session) -> Any:
    peer = session._peers.peer_set.camera
    assert peer is not None
    receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.kind == "video")
    return getattr(receiver, jitter._BUFFER_ATTR)


async def releases(session: Session, seconds: float) -> tuple[type, list[tuple[bool, bool]]]:
    """The kernel receiver's jitter buffer type and, for each frame it hands to the decoder:
    (was it released by a marker packet, did that packet belong to the released frame)."""
    client = Client()
    await client.connect(answer_with(session))
    assert client.first_frame is not None
    await asyncio.wait_for(client.first_frame, 20)
    buffer = kernel_jitter_buffer(session)
    seen: list[tuple[bool, bool]] = []
    add = buffer.add

    def recording_add(packet: Any) -> Any:
        pli, frame = add(packet)
        if frame is not None:
            seen.append((bool(packet.marker), packet.timestamp == frame.timestamp))
        return pli, frame

    buffer.add = recording_add
    await asyncio.sleep(seconds)
    del buffer.add
    await client.close()
    return type(buffer), seen


def test_kernel_receiver_releases_each_frame_on_its_marker_packet() -> None:
    async def scenario() -> tuple[type, list[tuple[bool, bool]]]:
        with Session(source="camera") as session:
            return await releases(session, 3.0)

    kind, seen = asyncio.run(scenario())
    assert kind is jitter.MarkerJitterBuffer
    assert len(seen) >= 30, f"only {len(seen)} frames reached the decoder in 3 s"
    on_own_marker = sum(marker and own for marker, own in seen)
    assert on_own_marker >= 0.9 * len(seen), seen[:20]


def test_without_the_patch_aiortc_waits_for_the_next_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control for the test above: plain aiortc releases a frame on the next frame's packet.
    monkeypatch.setattr("decart_nb.rtc.peer.complete_frames_on_marker", lambda receiver: False)

    async def scenario() -> tuple[type, list[tuple[bool, bool]]]:
        with Session(source="camera") as session:
            return await releases(session, 3.0)

    kind, seen = asyncio.run(scenario())
    assert kind is not jitter.MarkerJitterBuffer
    assert len(seen) >= 30
    assert sum(not own for _marker, own in seen) >= 0.9 * len(seen)


def slow_model(rgb: np.ndarray, state: object) -> np.ndarray:
    time.sleep(0.050)
    return rgb


def latencies(arrivals: list[Arrival], start: float, lo: float, hi: float) -> list[float]:
    return [a.latency_ms for a in arrivals if start + lo <= a.t < start + hi]


def test_a_50ms_model_keeps_latency_flat_and_counts_its_drops() -> None:
    async def scenario() -> tuple[Client, float, dict[str, Any]]:
        with Session(source="camera", engine=slow_model, frame_stamps=True) as session:
            client = Client()
            await client.connect(answer_with(session))
            assert client.first_frame is not None
            start = await asyncio.wait_for(client.first_frame, 20)
            await asyncio.sleep(20.0)
            stats = await asyncio.to_thread(lambda: session.stats)
            await client.close()
            return client, start, stats

    client, start, stats = asyncio.run(scenario())
    early = latencies(client.arrivals, start, 2, 7)
    late = latencies(client.arrivals, start, 15, 20)
    assert len(early) >= 20 and len(late) >= 20, (len(early), len(late))
    # A queue in front of the model would add ~1 s of latency every 3 s at this rate.
    assert np.median(late) <= np.median(early) + 150, (np.median(early), np.median(late))
    assert np.percentile(late, 95) < 1000
    # The model keeps up with about half the camera's frames: the rest are dropped and counted.
    assert stats["frames_dropped"] > 0.2 * stats["frames_in"]
    assert abs(stats["frames_in"] - stats["frames_out"] - stats["frames_dropped"]) <= 3
    received = {a.number for a in client.arrivals}
    assert len(received) < 0.8 * len(client.source.sent)
