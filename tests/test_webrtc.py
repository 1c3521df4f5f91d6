"""Real aiortc peers through Session.answer(), on loopback only (scripts/test's namespace)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.media.sources import PatternTrack
from tests.helpers import wait_until
from tests.rtc_client import BrowserPeer

pytestmark = pytest.mark.webrtc


def test_camera_session_takes_the_peers_video_and_sends_the_output_back(no_leaked_threads: None) -> None:
    states: list[str] = []
    session = Session(source="camera", prompt="noir")

    async def scenario() -> None:
        session.connect()
        session.on("connection_change", states.append)
        assert session.state == "connecting"  # waiting for the page's camera
        peer = BrowserPeer(send=PatternTrack(1280, 720, 30))
        await peer.connect(session)
        await peer.wait_frames(20)
        assert await asyncio.to_thread(wait_until, lambda: session.state == "generating")
        received = peer.frames[-1]
        assert (received.width, received.height) == (1280, 720)
        # noir: no colour left in the output
        rgb = peer.rgb().astype(int)
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() < 6
        await asyncio.to_thread(session.set_prompt, "thermal")
        before = len(peer.frames)
        await peer.wait_frames(before + 15)
        rgb = peer.rgb().astype(int)
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 6
        stats = session.stats
        # frames counted, not a rate: throughput is the bench's (a busy machine halves a rate)
        assert (stats["width"], stats["height"]) == (1280, 720) and stats["frames_in"] >= 35
        await asyncio.to_thread(session.disconnect)
        await peer.close()

    asyncio.run(scenario())
    assert wait_until(lambda: states[-1:] == ["disconnected"])
    assert states == ["connecting", "connected", "generating", "disconnected"]


def test_a_headless_session_can_be_watched_by_a_receive_only_peer() -> None:
    async def scenario() -> None:
        with Session(source="pattern") as session:
            peer = BrowserPeer()
            await peer.connect(session)
            await peer.wait_frames(30)
            stamps = [f.stamp for f in peer.frames if f.stamp is not None]
            assert len(stamps) >= 20 and stamps == sorted(stamps)
            await peer.close()

    asyncio.run(scenario())


def test_a_dropped_camera_reports_reconnecting_then_recovers_on_a_new_offer() -> None:
    states: list[str] = []

    async def scenario() -> None:
        with Session(source="camera") as session:
            session.on("connection_change", states.append)
            first = BrowserPeer(send=PatternTrack(640, 360, 30))
            await first.connect(session)
            await first.wait_frames(5)
            await first.close()  # the page went away
            assert await asyncio.to_thread(wait_until, lambda: session.state == "reconnecting", 40)
            second = BrowserPeer(send=PatternTrack(640, 360, 30))
            await second.connect(session)
            await second.wait_frames(5)
            assert await asyncio.to_thread(wait_until, lambda: session.state == "generating")
            # The user disconnects first, then the page closes: closing the page first would
            # rightly report `reconnecting` again before the `with` exit disconnects.
            await asyncio.to_thread(session.disconnect)
            await second.close()

    asyncio.run(scenario())
    assert "reconnecting" in states
    assert states[-2:] == ["generating", "disconnected"]


def test_a_bad_offer_is_a_signaling_error_and_the_session_goes_on() -> None:
    with Session(source="pattern") as session:
        for offer in ("", "v=0\r\nnot sdp", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"):
            with pytest.raises(DecartNBError) as info:
                session.answer(offer)
            assert info.value.code == ErrorCode.WEBRTC_SIGNALING_ERROR
        count = session.stats["frames_out"]
        assert wait_until(lambda: session.stats["frames_out"] > count + 5)


def test_the_interpreter_exits_promptly_even_without_disconnect() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.path.insert(0, ".")
        from decart_nb import Session
        from decart_nb.media.sources import PatternTrack
        from tests.rtc_client import BrowserPeer

        session = Session(source="camera")

        async def main():
            peer = BrowserPeer(send=PatternTrack(640, 360, 30))
            await peer.connect(session)
            await peer.wait_frames(10)
            await peer.close()

        asyncio.run(main())
        print("frames ok", flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "frames ok" in done.stdout
    assert time.monotonic() - start < 30
