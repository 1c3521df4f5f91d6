"""engine="decart" unit tests against a time-scaled imitation of Decart's SDK (tests/fakes/decart_sdk.py).

Only for what the local fake server (tests/test_decart_server.py, the real SDK) cannot produce,
or only with minutes of real backoff: an SDK call that never returns, local error texts in
Decart's classification order, each permanent-error text, the initial connect's retries, the
output mailbox's drop counting, and the key/env/SDK-missing checks (no server needed).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.engines.decart import DecartEngine, resolve_key
from decart_nb.engines.events import EngineEvents
from decart_nb.media.frames import FrameMeta, recv_video
from decart_nb.media.sources import PatternTrack
from decart_nb.state import GenerationState
from tests.fakes.decart_sdk import FakeCloud
from tests.helpers import wait_until

T = TypeVar("T")
SECRET = "dct_fake_valid_key_123"
IMAGE = np.tile(np.array([200, 40, 40], np.uint8), (48, 64, 1))


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate: Any, timeout: float = 10.0) -> bool:
    end = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            return False
        await asyncio.sleep(0.01)
    return True


class _Recorded(EngineEvents):
    """The engine's reports, kept by a Probe (as the session would listen)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def error(self, error: DecartNBError) -> None:
        self.probe.errors.append(error)

    def connection_change(self, state: str) -> None:
        self.probe.states.append(state)

    def generation_tick(self, seconds: float) -> None:
        self.probe.ticks.append(seconds)


class Probe:
    """An engine wired to the fake, with its hooks recorded (as the session would subscribe)."""

    def __init__(self, cloud: FakeCloud | None = None, key: str = SECRET) -> None:
        self.cloud = cloud or FakeCloud()
        self.engine = DecartEngine(api_key=key, model="lucy-2.1", sdk=self.cloud.sdk())
        self.states: list[str] = []
        self.ticks: list[float] = []
        self.errors: list[DecartNBError] = []
        self.engine.listen(_Recorded(self))

    async def start(self, state: GenerationState | None = None) -> MediaStreamTrack:
        if state is not None:
            await self.engine.apply(state)
        output = await self.engine.start(PatternTrack(64, 48, 60))
        await asyncio.sleep(0.01)  # the SDK's buffered connect-time events replay now
        return output


def state(
    version: int, prompt: str | None = None, image: Any = None, enhance: bool = True
) -> GenerationState:
    return GenerationState(prompt=prompt, image=image, enhance=enhance, version=version)


# -- the key ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_key_fails_when_the_session_is_built(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    with pytest.raises(DecartNBError) as info:
        Session(engine="decart", source="pattern", api_key=key)
    assert info.value.code == ErrorCode.INVALID_API_KEY
    assert "api_key=" in info.value.message and "DECART_API_KEY" in info.value.message


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = FakeCloud()
    monkeypatch.setenv("DECART_API_KEY", SECRET)
    engine = DecartEngine(model="lucy-2.1", sdk=cloud.sdk())

    async def go() -> None:
        await engine.start(PatternTrack(64, 48, 30))
        await engine.stop()

    run(go())
    assert cloud.attempts == 1 and len(cloud.clients) == 1  # the fake accepted the key


def test_sdk_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decart", None)  # import decart -> ImportError
    with pytest.raises(DecartNBError) as info:
        Session(engine="decart", source="pattern", api_key=SECRET)
    assert info.value.code == ErrorCode.SDK_NOT_INSTALLED
    assert 'pip install "decart_nb[decart]"' in info.value.message


def _texts(error: DecartNBError) -> str:
    return "\n".join(
        [str(error), repr(error), str(error.to_dict()), *traceback.format_exception(error), str(error.data)]
    )


def test_the_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "dct_wrong_secret_key_987"
    probe = Probe(key=wrong)  # the fake refuses it with aiohttp's text, which quotes the URL and key
    with pytest.raises(DecartNBError) as info:
        run(probe.start())
    assert info.value.code == ErrorCode.INVALID_API_KEY
    assert "api_key=***" in info.value.message  # the URL is still there to read, without the key
    for text in (_texts(info.value), repr(probe.engine), str(probe.engine), str(vars(probe.engine))):
        assert wrong not in text
    assert all(wrong not in _texts(e) for e in probe.errors)
    assert wrong not in caplog.text
    # The SDK's own log lines quote the control channel's URL (aiohttp's error text): redacted.
    sdk_log = logging.getLogger("decart.realtime.livekit_connection")
    sdk_log.error("LiveKit connection failed: url='wss://api.decart.ai/v1/stream?api_key=%s&m=x'", wrong)
    assert "api_key=***" in caplog.text and wrong not in caplog.text
    key = resolve_key(wrong)
    assert wrong not in f"{key!r} {key}" and key.reveal() == wrong
    with pytest.raises(TypeError):
        pickle.dumps(key)  # never into a saved notebook or a comm message

    # A working session: repr/str of the session, the engine and the reported errors.
    cloud = FakeCloud()
    cloud.reject("forbidden")
    with Session(
        engine=DecartEngine(api_key=SECRET, sdk=cloud.sdk()), source="pattern", model="lucy-2.1"
    ) as s:
        with pytest.raises(DecartNBError) as rejected:
            s.set_prompt("forbidden words")
        cloud.server_error(f"session closed for api_key={SECRET}")
        assert wait_until(lambda: len(s.errors) >= 1)
        texts = [repr(s), str(s), repr(s.engine), str(vars(s.engine)), _texts(rejected.value)]
        texts += [_texts(e) for e in s.errors] + [str(s.stats)]
    assert all(SECRET not in t for t in texts)
    assert SECRET not in caplog.text


# -- set semantics ------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["engine"])  # the SDK's own timeout: test_decart_server.py
def test_a_late_acknowledgement_is_a_timeout(who: str) -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime"))
        probe.cloud.ack_delay_s = 10_000.0
        if who == "engine":  # the SDK would wait forever: decart_nb's backstop still ends the call
            probe.cloud.prompt_timeout_s = probe.cloud.update_timeout_s = 1e9
            probe.engine.set_timeout_s = probe.engine.prompt_timeout_s = 0.1
            probe.engine.backstop_s = 0.1
        with pytest.raises(DecartNBError) as info:
            await probe.engine.apply(state(2, "sketch"))
        assert info.value.code == ErrorCode.WEBRTC_TIMEOUT_ERROR
        assert info.value.matches("WEB_RTC_ERROR")  # the legacy code still matches
        assert probe.engine._applied.prompt == "anime"
        await probe.engine.stop()

    run(go())


# -- reconnect ----------------------------------------------------------------------------------
def test_a_rejected_initial_prompt_fails_the_connect() -> None:
    probe = Probe()
    probe.cloud.reject("gore")
    with pytest.raises(DecartNBError) as info:
        run(probe.start(state(1, "gore")))
    assert info.value.code == ErrorCode.WEBRTC_SERVER_ERROR and "moderation" in info.value.message
    assert probe.cloud.attempts == 5 and probe.cloud.waits == [1, 2, 4, 8]  # the SDK retries connects
    assert probe.cloud.media.feeds[0].closed


@pytest.mark.parametrize(
    "text",
    ["401 Unauthorized", "Invalid API key", "permission denied", "Model not allowed", "invalid session"],
)
def test_auth_failures_are_never_retried(text: str) -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime"))
        probe.cloud.drop([text, "would have worked"])
        assert await until(lambda: probe.states[-1:] == ["disconnected"])
        assert probe.cloud.waits == [] and probe.cloud.attempts == 2
        assert len(probe.errors) == 1 and "not retried" in probe.errors[0].message
        await probe.engine.stop()

    run(go())


def test_initial_connect_retries_but_not_a_refused_key() -> None:
    flaky = Probe()
    flaky.cloud.fail_attempts = ["temporarily unavailable"]

    async def go() -> None:
        await flaky.start()
        await flaky.engine.stop()

    run(go())
    assert flaky.cloud.attempts == 2 and flaky.cloud.waits == [1]
    assert flaky.states == [] and flaky.errors == []  # the failed attempt is not the session's news

    refused = Probe(key="dct_not_this_one")
    with pytest.raises(DecartNBError):
        run(refused.start())
    assert refused.cloud.attempts == 1 and refused.cloud.waits == []


# -- events -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("how", "text", "code"),
    [
        ("server", "websocket timed out: ice connection failed", ErrorCode.WEBRTC_SERVER_ERROR),
        ("local", "WebSocket closed; ICE connection failed; timed out", ErrorCode.WEBRTC_WEBSOCKET_ERROR),
        ("local", "ICE connection failed after a timeout", ErrorCode.WEBRTC_ICE_ERROR),
        ("local", "Connection timed out", ErrorCode.WEBRTC_TIMEOUT_ERROR),
        ("local", "no route to the room", ErrorCode.WEBRTC_SIGNALING_ERROR),
    ],
)
def test_errors_are_classified_in_decarts_order(how: str, text: str, code: str) -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start()
        if how == "server":
            probe.cloud.server_error(text)
        else:
            probe.cloud.drop([text] * 5)
        assert await until(lambda: len(probe.errors) == 1)
        assert probe.errors[0].code == code
        assert probe.errors[0].matches("WEB_RTC_ERROR")
        await probe.engine.stop()

    run(go())


def test_output_keeps_only_the_newest_frame() -> None:
    async def go() -> None:
        probe = Probe()
        output = await probe.start(state(1, "anime"))
        assert await until(lambda: probe.cloud.client._manager.connection.remote.sent >= 20)
        remote = probe.cloud.client._manager.connection.remote
        assert remote.queue.qsize() <= 1  # the engine drains the SDK's track as it goes
        frame = await recv_video(output)
        assert output.box.dropped >= 10  # nobody read: older frames were dropped, not queued
        meta = frame.opaque
        assert isinstance(meta, FrameMeta) and meta.version == 1
        assert frame.format.name == "yuv420p"
        await probe.engine.stop()

    run(go())


# -- the real SDK (only where `decart[realtime]` is installed; never a hard dependency) -----------
def _real_sdk_installed() -> bool:
    try:
        import decart.realtime  # noqa: F401
        import livekit.rtc  # noqa: F401
    except ImportError:
        return False
    return True


real_sdk = pytest.mark.skipif(not _real_sdk_installed(), reason='needs pip install "decart_nb[decart]"')


@real_sdk
@pytest.mark.webrtc
def test_livekit_bridge_round_trip() -> None:
    from decart_nb.engines.decart.livekit import LiveKitBridge

    async def go() -> None:
        bridge = LiveKitBridge()
        feed = bridge.open_local(64, 48)
        frames = bridge.remote_frames(feed.track)  # LiveKit can read back a local track
        source = PatternTrack(64, 48, 30)
        received = asyncio.ensure_future(frames.__anext__())
        sent = None
        while not received.done():
            sent = await recv_video(source)
            feed.push(sent)
            await asyncio.sleep(0.02)
        frame = received.result()
        assert (frame.width, frame.height, frame.format.name) == (64, 48, "yuv420p")
        assert sent is not None
        diff = np.abs(frame.to_ndarray().astype(int) - sent.to_ndarray().astype(int)).mean()
        assert diff < 40  # the same test card, give or take the frames in flight
        await frames.aclose()
        await feed.close()

    run(go())


# -- codes a user can act on (issue 20) -------------------------------------------------------------
class _Refused(Exception):
    """aiohttp's WSServerHandshakeError carries the HTTP status."""

    status = 401


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            "401, message='Invalid response status', url='wss://x/v1/stream'",
            ErrorCode.INVALID_API_KEY,
        ),
        ("Invalid API key", ErrorCode.INVALID_API_KEY),  # the server's `error` answer
        ("Unauthorized", ErrorCode.INVALID_API_KEY),
        (_Refused("Invalid response status"), ErrorCode.INVALID_API_KEY),  # by its status alone
        ("Insufficient credits", ErrorCode.INSUFFICIENT_CREDITS),
        ("Prompt rejected by content moderation", ErrorCode.WEBRTC_SERVER_ERROR),
        ("no route to 10.0.40.17:14015", ErrorCode.WEBRTC_SERVER_ERROR),  # a 401 inside a number is none
    ],
)
def test_refused_keys_and_no_credits_have_their_own_codes(error: object, code: str) -> None:
    from decart_nb.engines.decart import translate
    from tests.fakes.decart_sdk import WebRTCError

    exc = WebRTCError(str(error), cause=error) if isinstance(error, Exception) else WebRTCError(str(error))
    translated = translate(exc, "connect to Decart", FakeCloud().sdk(), resolve_key(SECRET))
    assert translated.code == code
    assert translated.message.startswith(f"Could not connect to Decart: {exc}")  # the same text as before
    if code != ErrorCode.WEBRTC_SERVER_ERROR and not isinstance(error, Exception):
        assert "not retried" in translated.message  # as the SDK: it never retries these texts


def test_the_queue_clock_estimates_the_wait_from_the_queues_pace() -> None:
    from decart_nb.engines.queue import QueueClock
    from decart_nb.events import QueuePosition

    clock = QueueClock()
    first = clock.update(8, 10, now=100.0)
    assert isinstance(first, QueuePosition) and first.expected_wait_s is None  # not moved yet
    assert clock.update(8, 10, now=110.0).expected_wait_s is None
    moved = clock.update(6, 10, now=120.0)  # 2 places in 20 s: 10 s a place, 6 to go
    assert (moved.expected_wait_s, moved.waited_s) == (60.0, 20.0)
    again = clock.update(9, 12, now=125.0)  # further back: a new attempt queued anew
    assert again.expected_wait_s is None and again.waited_s == 0.0
    clock.reset()
    assert clock.update(3, 4, now=0.0).waited_s == 0.0
