"""Faults, each tested with real aiortc peers through Session.answer() (issue 9).

A model failing in bursts, a peer that vanishes (closed, or its transport killed), ICE that stops,
a camera track that ends, 50 connect/disconnect cycles, two sessions in one kernel, and a kernel
interrupt during set() and snapshot(). Each test asserts what the user would notice: the state,
the coded error events, frames that keep flowing, and nothing left behind.

Covered elsewhere: the page-side reconnect after a drop and a kernel restart with the page open
(tests/browser/test_camera_browser.py), the client's pc.close() (tests/test_webrtc.py), Ctrl-C in
connect() and record() (tests/test_robustness.py).
"""

from __future__ import annotations

import _thread
import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import numpy as np
import psutil
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.engines import CallableEngine
from decart_nb.media.sources import PatternTrack
from decart_nb.state import GenerationState
from tests.helpers import wait_until
from tests.rtc_client import BrowserPeer

webrtc = pytest.mark.webrtc  # every test here but the interrupt-at-ack one opens real peers

W, H = 320, 240  # small camera frames: the faults matter here, not the picture


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=90))


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """wait_until, from a test's own event loop (the session's calls block)."""
    return await asyncio.to_thread(wait_until, predicate, timeout)


def camera() -> BrowserPeer:
    return BrowserPeer(send=PatternTrack(W, H, 30))


def identity(frame: np.ndarray, state: GenerationState) -> np.ndarray:
    return frame


def media_threads() -> list[str]:
    """decart_nb's threads, the media loop's executor and aiortc's codec threads."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("decart_nb", "asyncio_")) or t.name.endswith(("-decoder", "-encoder"))
    ]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


def kill_transport(peer: BrowserPeer) -> None:
    """The client's process dies: its UDP sockets close, no DTLS close_notify, no RTCP BYE."""
    for transceiver in peer.pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        for protocol in ice._connection._protocols:
            protocol.transport.abort()


async def stop_ice(peer: BrowserPeer) -> None:
    """The client's ICE transport stops (its network went away): no DTLS goodbye either."""
    for transceiver in peer.pc.getTransceivers():
        await transceiver.receiver.transport.transport.stop()


@pytest.fixture
def nothing_left() -> Iterator[None]:
    before = set(media_threads())
    yield
    assert wait_until(lambda: not set(media_threads()) - before, timeout=10), media_threads()


# -- the model --------------------------------------------------------------------------------


@webrtc
def test_a_model_failing_in_bursts_reports_one_error_per_burst_and_frames_keep_flowing(
    nothing_left: None,
) -> None:
    """The model raises on every frame of a burst: one ENGINE_ERROR event per burst, the camera's
    frames pass through untouched meanwhile, and the model's output is back after each burst."""
    failing = threading.Event()
    calls = {"ok": 0, "failed": 0}

    def flaky(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        if failing.is_set():
            calls["failed"] += 1
            raise RuntimeError("out of GPU memory")
        calls["ok"] += 1
        return np.zeros_like(frame)  # black: easy to tell from the camera's test card

    errors: list[DecartNBError] = []
    session = Session(source="camera", engine=flaky, prompt="black")
    session.on("error", errors.append)

    peer = camera()

    def shows(luma: Callable[[float], bool]) -> Callable[[], bool]:
        """From now on: has a frame arrived whose mean luma passes `luma`?"""
        after = len(peer.frames)
        return lambda: any(luma(f.luma_mean) for f in peer.frames[after:])

    async def scenario() -> None:
        await peer.connect(session)
        assert await until(lambda: session.state == "generating")
        await peer.wait_frames(5)
        for burst in range(1, 4):  # three bursts well within the engine's 5 s repeat window
            failing.set()
            assert await until(lambda n=calls["failed"] + 10: calls["failed"] >= n), calls
            # The camera's picture (the card's mean luma is far above black's 16) reaches the peer.
            assert await until(shows(lambda luma: luma > 60)), burst
            assert session.state == "generating"
            failing.clear()
            assert await until(shows(lambda luma: luma < 20)), burst
            assert await until(lambda n=burst: len(errors) == n, timeout=5), (burst, errors)
        await asyncio.to_thread(session.disconnect)
        await peer.close()

    try:
        run(scenario)
    finally:
        session.disconnect()
    assert [e.code for e in errors] == [ErrorCode.ENGINE_ERROR] * 3, errors
    assert all("out of GPU memory" in e.message for e in errors)


# -- the peer goes away ---------------------------------------------------------------------------


@webrtc
@pytest.mark.parametrize("how", ["transport-killed", "ice-stopped"])
def test_a_peer_that_vanishes_without_goodbye_reports_reconnecting_and_a_new_offer_recovers(
    nothing_left: None, how: str
) -> None:
    states: list[str] = []
    session = Session(source="camera", engine=identity, prompt="x")
    session.on("connection_change", states.append)

    async def scenario() -> None:
        first = camera()
        await first.connect(session)
        assert await until(lambda: session.state == "generating")
        lost = session._peers.peer_set.camera
        start = time.monotonic()
        if how == "transport-killed":
            kill_transport(first)
        else:
            await stop_ice(first)
        assert await until(lambda: session.state == "reconnecting", timeout=20), states
        took = time.monotonic() - start
        assert took < 10, took  # not the 30 s of ICE consent expiry
        assert not session.errors, list(session.errors)
        second = camera()
        await second.connect(session)
        await second.wait_frames(10)
        assert await until(lambda: session.state == "generating")
        assert (
            session._peers.peer_set.peers == {session._peers.peer_set.camera}
            and lost not in session._peers.peer_set.peers
        )
        await first.close()
        await asyncio.to_thread(session.disconnect)
        await second.close()

    try:
        run(scenario)
    finally:
        session.disconnect()
    # Straight to reconnecting: a vanished peer is not mistaken for a camera that stopped.
    assert states == [
        "connecting",
        "connected",
        "generating",
        "reconnecting",
        "connected",
        "generating",
        "disconnected",
    ], states


@webrtc
def test_an_offer_whose_candidates_cannot_connect_leaves_the_session_usable(nothing_left: None) -> None:
    """ICE cannot succeed for the first offer (its only candidate points at a closed port);
    the next offer, as the page sends when it retries, connects and the session generates."""
    session = Session(source="camera", engine=identity, prompt="x")

    async def scenario() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTrack(PatternTrack(W, H, 30))
            await pc.setLocalDescription(await pc.createOffer())
            unreachable = _point_candidates_at(pc.localDescription.sdp, port=9)  # discard: closed
            await asyncio.to_thread(session.answer, unreachable)
            assert session.state == "connecting"
            good = camera()
            await good.connect(session)
            await good.wait_frames(10)
            assert await until(lambda: session.state == "generating")
            assert (
                len(session._peers.peer_set.peers) == 1
            )  # the unconnectable peer was closed, not left trying
            await asyncio.to_thread(session.disconnect)
            await good.close()
        finally:
            await pc.close()

    try:
        run(scenario)
    finally:
        session.disconnect()


def _point_candidates_at(sdp: str, port: int) -> str:
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            parts[5] = str(port)
            line = " ".join(parts)
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


# -- the camera ------------------------------------------------------------------------------------


@webrtc
def test_a_camera_track_that_ends_stops_generating_and_a_new_offer_recovers(nothing_left: None) -> None:
    """The camera is unplugged: the client's track ends, its connection stays up. The session
    says it no longer generates; a new camera (a new offer) brings it back."""
    states: list[str] = []
    session = Session(source="camera", engine=identity, prompt="x")
    session.on("connection_change", states.append)

    async def scenario() -> None:
        first = camera()
        await first.connect(session)
        assert await until(lambda: session.state == "generating")
        assert first.send is not None
        first.send.stop()  # unplugged
        assert await until(lambda: session.state == "connected", timeout=10), states
        second = camera()
        await second.connect(session)
        await second.wait_frames(10)
        assert await until(lambda: session.state == "generating")
        await asyncio.to_thread(session.disconnect)
        await first.close()
        await second.close()

    try:
        run(scenario)
    finally:
        session.disconnect()
    assert states == ["connecting", "connected", "generating", "connected", "generating", "disconnected"]


# -- many cycles, many sessions ----------------------------------------------------------------------


@webrtc
@pytest.mark.timeout(120)
def test_fifty_connect_disconnect_cycles_with_a_camera_leak_nothing() -> None:
    session = Session(source="camera", engine=identity, prompt="cycle")
    process = psutil.Process()

    async def cycle() -> None:
        peer = camera()
        session.connect()
        await peer.connect(session)
        await peer.wait_frames(3)
        await asyncio.to_thread(session.disconnect)
        await peer.close()

    async def cycles(n: int) -> None:
        for _ in range(n):
            await cycle()

    def settled() -> bool:
        return not media_threads() and open_fds() <= fds + 2

    asyncio.run(cycles(3))  # warm up: imports, codec tables, allocator arenas
    threads, fds = set(threading.enumerate()), open_fds()
    rss = [process.memory_info().rss]
    asyncio.run(cycles(20))
    rss.append(process.memory_info().rss)
    asyncio.run(cycles(27))
    rss.append(process.memory_info().rss)
    assert wait_until(settled, timeout=10), (media_threads(), open_fds(), fds)
    assert set(threading.enumerate()) <= threads
    assert live_peer_connections() == 0
    mb = [r / 2**20 for r in rss]
    print(f"fds {fds} -> {open_fds()}, rss MB after 3/23/50 cycles: {[round(m, 1) for m in mb]}")
    # A leaked peer (its codecs, buffers and sockets) costs well over 1 MB: 27 of them would show.
    assert mb[2] - mb[1] < 16, mb


@webrtc
def test_two_sessions_in_one_kernel_each_with_its_own_camera(nothing_left: None) -> None:
    noir = Session(source="camera", prompt="noir")
    thermal = Session(source="camera", prompt="thermal")

    def colour(peer: BrowserPeer) -> float:
        rgb = peer.rgb().astype(int)
        return float(np.abs(rgb[..., 0] - rgb[..., 2]).mean())

    async def scenario() -> None:
        a, b = camera(), camera()
        await a.connect(noir)
        await b.connect(thermal)
        await a.wait_frames(10)
        await b.wait_frames(10)
        assert colour(a) < 6 < colour(b)  # noir has no colour left; thermal is all colour
        await asyncio.to_thread(noir.disconnect)
        seen = len(b.frames)
        await b.wait_frames(seen + 30)
        assert thermal.state == "generating" and noir.state == "disconnected"
        assert colour(b) > 6
        await asyncio.to_thread(thermal.disconnect)
        await a.close()
        await b.close()

    try:
        run(scenario)
    finally:
        noir.disconnect()
        thermal.disconnect()


# -- a kernel interrupt ---------------------------------------------------------------------------


class SlowAck(CallableEngine):
    """A callable engine whose acknowledgement takes a while (like a cloud model's)."""

    def __init__(self) -> None:
        super().__init__(identity)
        self.delay = 0.0
        self.acking = threading.Event()

    async def apply(self, state: GenerationState) -> None:
        self.acking.set()
        await asyncio.sleep(self.delay)
        await super().apply(state)


def interrupt_when(ready: Callable[[], bool]) -> threading.Thread:
    """Ctrl-C in Jupyter (SIGINT to the kernel) once the main thread is blocked in the call."""

    def fire() -> None:
        if wait_until(ready, timeout=10):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def camera_session() -> Iterator[tuple[Session, SlowAck, BrowserPeer]]:
    """A generating camera session, its client peer on a loop of the test's own thread."""
    engine = SlowAck()
    session = Session(source="camera", engine=engine, prompt="before")
    loop = asyncio.new_event_loop()
    peer = camera()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(peer.connect(session), loop).result(timeout=30)
    assert wait_until(lambda: session.state == "generating", timeout=15)
    try:
        yield session, engine, peer
    finally:
        session.disconnect()
        asyncio.run_coroutine_threadsafe(peer.close(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@webrtc
def test_ctrl_c_during_set_keeps_the_old_state_and_the_next_set_works(
    camera_session: tuple[Session, SlowAck, BrowserPeer], ctrl_c_raises: None
) -> None:
    session, engine, _ = camera_session
    before = session.generation
    engine.delay, engine.acking = 5.0, threading.Event()
    start = time.monotonic()
    fired = interrupt_when(engine.acking.is_set)
    with pytest.raises(KeyboardInterrupt):
        session.set(prompt="after", image=np.full((64, 64, 3), 200, np.uint8))
    assert time.monotonic() - start < 4  # the interrupt ended the wait, not the 5 s ack
    fired.join(5)
    # Never half: the session and the engine both still run the old state, fully.
    assert session.generation is before
    assert wait_until(lambda: engine._state.version == before.version, timeout=2)
    assert engine._state.prompt == "before" and engine._state.image is None
    engine.delay = 0.0
    session.set(prompt="next")  # the lock is free
    assert session.generation.prompt == "next" and engine._state.version == session.generation.version
    assert session.snapshot(timeout=10).size == (W, H)
    assert session.state == "generating"


class InterruptsAtAck(CallableEngine):
    """Takes the state, then Ctrl-C lands before the caller's thread has woken up to record it."""

    def __init__(self) -> None:
        super().__init__(identity)

    async def apply(self, state: GenerationState) -> None:
        await super().apply(state)
        if state.prompt == "acknowledged":
            _thread.interrupt_main()  # pending, raised by the main thread as soon as it runs again


def test_ctrl_c_landing_as_the_engine_acknowledges_leaves_session_and_engine_agreeing(
    ctrl_c_raises: None,
) -> None:
    engine = InterruptsAtAck()
    with Session(source="pattern", engine=engine, prompt="before") as session:
        with pytest.raises(KeyboardInterrupt):
            session.set_prompt("acknowledged")
        # Either state, but the same in both: never the engine on the new and the session on the old.
        assert engine._state.version == session.generation.version
        assert engine._state.prompt == session.generation.prompt
        session.set_prompt("next")
        assert engine._state.prompt == session.generation.prompt == "next"


@webrtc
def test_ctrl_c_during_snapshot_leaves_no_waiter_and_the_session_usable(
    camera_session: tuple[Session, SlowAck, BrowserPeer], ctrl_c_raises: None
) -> None:
    session, engine, _ = camera_session
    gate = threading.Event()

    def stalls(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        if state.prompt == "stall":
            gate.wait(20)
        return frame

    engine.fn = stalls
    session.set_prompt("stall")
    pipeline = session._core.pipeline
    assert pipeline is not None
    start = time.monotonic()
    fired = interrupt_when(lambda: bool(pipeline.broadcast._frame_waiters))
    try:
        with pytest.raises(KeyboardInterrupt):
            session.snapshot(timeout=20)
        assert time.monotonic() - start < 10
        fired.join(5)
        assert wait_until(lambda: not pipeline.broadcast._frame_waiters, timeout=2)
        session.set_prompt("flowing")  # no stuck lock
    finally:
        gate.set()
    assert session.snapshot(timeout=10).size == (W, H)
    assert session.generation.prompt == "flowing" and session.state == "generating"
