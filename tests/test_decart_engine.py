"""engine="decart" against a fake of Decart's SDK and service (Decart's cloud is not reachable here).

The fake (tests/fakes/decart_sdk.py) mirrors the SDK's documented behaviour; everything on the
decart_nb side (key handling, state mapping, reconnect restore, error codes, media) is the code
users run.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pickle
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.engines.decart import DecartEngine
from decart_nb.engines.decart_sdk import resolve_key
from decart_nb.media.frames import FrameMeta, recv_video
from decart_nb.media.sources import PatternTrack
from decart_nb.state import GenerationState
from tests.fakes.decart_sdk import FakeCloud, painted, state_level
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


class Probe:
    """An engine wired to the fake, with its hooks recorded (as the session would subscribe)."""

    def __init__(self, cloud: FakeCloud | None = None, key: str = SECRET) -> None:
        self.cloud = cloud or FakeCloud()
        self.engine = DecartEngine(api_key=key, model="lucy-2.1", sdk=self.cloud.sdk())
        self.states: list[str] = []
        self.ticks: list[float] = []
        self.errors: list[DecartNBError] = []
        self.engine.on_connection_change = self.states.append
        self.engine.on_generation_tick = self.ticks.append
        self.engine.on_error = self.errors.append

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
    assert info.value.code == ErrorCode.WEBRTC_SIGNALING_ERROR
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
def test_state_maps_onto_decarts_calls() -> None:
    cloud = FakeCloud()
    engine = DecartEngine(api_key=SECRET, sdk=cloud.sdk())
    with Session(engine=engine, source="pattern", model="lucy-2.1", prompt="anime", enhance=False) as s:
        assert cloud.wire[-1] == {"type": "prompt", "prompt": "anime", "enhance_prompt": False}  # initial
        s.set_image(IMAGE)  # set_image keeps the prompt: it is sent along with the image
        sent = cloud.wire[-1]
        assert sent["type"] == "set_image" and sent["prompt"] == "anime"
        assert base64.b64decode(sent["image_data"])[:2] == b"\xff\xd8"  # plain base64 JPEG
        assert (cloud.prompt, cloud.image) == ("anime", sent["image_data"])

        s.set_prompt("sketch")  # the image stays: a prompt message, acknowledged by its echo
        assert cloud.wire[-1] == {"type": "prompt", "prompt": "sketch", "enhance_prompt": True}
        assert cloud.image is not None and s.generation.image is not None

        s.set("noir")  # a prompt-only set() clears the reference image
        assert cloud.wire[-1] == {
            "type": "set_image",
            "image_data": None,
            "prompt": "noir",
            "enhance_prompt": True,
        }
        assert (cloud.prompt, cloud.image) == ("noir", None)

        sent_so_far = len(cloud.wire)
        s.set_image(None)  # the image is already gone and the prompt stays: nothing to send
        assert len(cloud.wire) == sent_so_far and s.generation.prompt == "noir"


def test_no_prompt_and_no_image_is_passthrough() -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime", image=IMAGE))
        await probe.engine.apply(state(2))
        # The SDK's own passthrough message: an explicit null prompt (an absent one keeps it).
        assert probe.cloud.wire[-1] == {"type": "set_image", "image_data": None, "prompt": None}
        assert (probe.cloud.prompt, probe.cloud.image) == (None, None)
        await probe.engine.stop()

    run(go())


def test_rejection_leaves_the_state_untouched() -> None:
    cloud = FakeCloud()
    cloud.reject("gore", "Prompt rejected by content moderation")
    with Session(
        engine=DecartEngine(api_key=SECRET, sdk=cloud.sdk()), source="pattern", model="lucy-2.1"
    ) as s:
        s.set_prompt("anime")
        before = s.generation
        with pytest.raises(DecartNBError) as info:
            s.set_prompt("gore everywhere")
        assert info.value.code == ErrorCode.WEBRTC_SERVER_ERROR  # the service's text, server-sent
        assert "moderation" in info.value.message
        assert s.generation is before and cloud.prompt == "anime"
        frame = np.asarray(s.snapshot(timeout=10))
    assert _level_matches(frame, state_level("anime", None))


@pytest.mark.parametrize("who", ["sdk", "engine"])
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
def test_reconnect_restores_the_latest_state() -> None:
    async def go() -> None:
        probe = Probe()
        output = await probe.start(state(1, "anime"))
        await probe.engine.apply(state(2, "vton", image=IMAGE))
        await probe.engine.apply(state(3, "sketch", image=IMAGE))
        probe.cloud.ack_delay_s = 20.0  # 0.2 s (the SDK waits 0.3): the restore is pending a while
        probe.cloud.drop(["ICE connection failed", "Connection timed out"])  # back on attempt 3
        assert await until(lambda: probe.states[-1:] == ["connected"])
        assert probe.states == ["reconnecting", "connected"]
        assert probe.cloud.waits == [1, 2]
        # Decart came back in passthrough: those frames are not passed off as the latest state's.
        frame = await recv_video(output)
        while luma_std(frame) < 5:  # frames painted before the drop may still be in the slot
            frame = await recv_video(output)
        assert frame.opaque.version == -1
        # decart_nb resends the latest state, image and all, and stamps frames with it once acked.
        assert await until(lambda: probe.cloud.prompt == "sketch" and probe.cloud.image is not None)
        assert probe.cloud.wire[-1]["type"] == "set_image" and probe.cloud.wire[-1]["prompt"] == "sketch"
        while frame.opaque.version != 3:
            frame = await recv_video(output)
        assert _level_matches(frame.to_ndarray(format="rgb24"), state_level("sketch", probe.cloud.image))
        assert probe.errors == []
        await probe.engine.stop()

    run(go())


def luma_std(frame: av.VideoFrame) -> float:
    return float(frame.to_ndarray()[: frame.height].std())


def test_set_during_a_reconnect_fails_without_changing_the_state() -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime"))
        probe.cloud.drop(["ICE connection failed"])
        assert await until(lambda: probe.engine.state == "reconnecting")
        with pytest.raises(DecartNBError) as info:
            await probe.engine.apply(state(2, "sketch"))
        assert info.value.code == ErrorCode.NOT_CONNECTED
        assert await until(lambda: probe.states[-1:] == ["connected"] and probe.cloud.prompt == "anime")
        await probe.engine.apply(state(3, "sketch"))  # back: sets go through again
        assert probe.cloud.prompt == "sketch"
        await probe.engine.stop()

    run(go())


def test_a_rejected_initial_prompt_fails_the_connect() -> None:
    probe = Probe()
    probe.cloud.reject("gore")
    with pytest.raises(DecartNBError) as info:
        run(probe.start(state(1, "gore")))
    assert info.value.code == ErrorCode.WEBRTC_SERVER_ERROR and "moderation" in info.value.message
    assert probe.cloud.attempts == 5 and probe.cloud.waits == [1, 2, 4, 8]  # the SDK retries connects
    assert probe.cloud.media.feeds[0].closed


def test_reconnect_gives_up_after_five_attempts() -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime"))
        probe.cloud.drop(["network unreachable"] * 5)
        assert await until(lambda: probe.states[-1:] == ["disconnected"])
        assert probe.states == ["reconnecting", "disconnected"]
        assert probe.cloud.waits == [1, 2, 4, 8]  # Decart's backoff, 5 attempts
        assert probe.cloud.attempts == 1 + 5
        assert [e.code for e in probe.errors] == [ErrorCode.WEBRTC_SIGNALING_ERROR]
        await probe.engine.stop()

    run(go())


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


def test_generation_ticks_and_states_come_from_the_sdk() -> None:
    async def go() -> None:
        probe = Probe()
        await probe.start(state(1, "anime"))
        probe.cloud.tick(1)
        probe.cloud.tick(2)
        assert probe.states == ["generating"]  # connect-time states are the session's own
        assert probe.ticks == [1.0, 2.0]
        await probe.engine.stop()
        assert probe.states == ["generating"]  # our own disconnect is not reported as a drop

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


# -- end to end ---------------------------------------------------------------------------------
def test_session_end_to_end_with_the_fake(no_leaked_threads: None) -> None:
    cloud = FakeCloud()
    engine = DecartEngine(api_key=SECRET, sdk=cloud.sdk())
    with Session(engine=engine, source="pattern", model="lucy-restyle-2", prompt="anime") as s:
        assert cloud.client._manager.options.model.name == "lucy-restyle-2"  # bound by the session
        first = np.asarray(s.snapshot(timeout=10))
        assert first.shape == (704, 1280, 3)
        assert _level_matches(first, state_level("anime", None))
        s.set_prompt("pencil sketch")
        second = np.asarray(s.snapshot(timeout=10))
        assert _level_matches(second, state_level("pencil sketch", None))
        assert wait_until(lambda: s.stats["frames_out"] >= 10)
        stats = s.stats
        assert stats["latency_ms_p50"] >= 0
        assert cloud.media.feeds[0].track.pushed >= 10  # the pattern went into the SDK's track
        s.switch_model("lucy-vton-3.5")  # a new connection to the new model, the state carried over
        assert cloud.client._manager.options.model.name == "lucy-vton-3.5"
        assert cloud.wire[-1] == {"type": "prompt", "prompt": "pencil sketch", "enhance_prompt": True}
        third = np.asarray(s.snapshot(timeout=10))
        assert third.shape == (720, 1280, 3) and _level_matches(third, state_level("pencil sketch", None))
    assert all(feed.closed for feed in cloud.media.feeds) and len(cloud.media.feeds) == 2


def _level_matches(rgb: np.ndarray, level: int) -> bool:
    expected = painted(64, 48, level).to_ndarray(format="rgb24").mean()
    return abs(float(np.asarray(rgb).mean()) - float(expected)) < 3.0


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
    from decart_nb.engines.decart_livekit import LiveKitBridge

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


@real_sdk
@pytest.mark.webrtc
def test_real_sdk_refused_key_is_not_retried_and_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from aiohttp import web

    from decart_nb.engines.decart_sdk import load_sdk

    caplog.set_level(logging.DEBUG)
    hits: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=401, text="invalid api key")

    async def go() -> DecartNBError:
        app = web.Application()
        app.router.add_get("/v1/stream", refuse)
        runner = web.AppRunner(app, access_log=None)  # the stand-in server logs URLs; the kernel must not
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sdk = dataclasses.replace(load_sdk(), base_url=f"ws://127.0.0.1:{port}")
        engine = DecartEngine(api_key=SECRET, model="lucy-2.1", sdk=sdk)
        try:
            with pytest.raises(DecartNBError) as info:
                await engine.start(PatternTrack(64, 48, 30))
        finally:
            await runner.cleanup()
        return info.value

    error = run(go(), timeout=60)
    assert hits == ["/v1/stream"]  # "401" is permanent: Decart's SDK did not retry
    assert error.code.startswith("WEBRTC_") and "not retried" in error.message
    assert SECRET not in _texts(error) and SECRET not in caplog.text


@pytest.mark.skipif(
    not hasattr(Session, "_on_engine_state"),
    reason="the Session does not take connection states from the engine yet (see docs/decart_engine.md)",
)
def test_session_takes_states_and_ticks_from_decart(no_leaked_threads: None) -> None:
    from decart_nb import _loop

    cloud = FakeCloud()
    states: list[str] = []
    ticks: list[float] = []
    s = Session(engine=DecartEngine(api_key=SECRET, sdk=cloud.sdk()), source="pattern", model="lucy-2.1")
    s.on("connection_change", states.append)
    s.on("generation_tick", lambda tick: ticks.append(tick.seconds))
    s.connect()
    try:
        assert s.state == "connected"  # frames alone do not make it "generating": Decart says so
        _loop.call_soon(cloud.tick, 1)
        assert wait_until(lambda: ticks == [1.0] and s.state == "generating")
        _loop.call_soon(cloud.drop, ["ICE connection failed"])
        assert wait_until(lambda: states[-2:] == ["reconnecting", "connected"])
        _loop.call_soon(cloud.drop, ["network unreachable"] * 5)  # Decart gives up: so does the session
        assert wait_until(lambda: s.state == "disconnected", timeout=15)
        assert [e.code for e in s.errors] == [ErrorCode.WEBRTC_SIGNALING_ERROR]
    finally:
        s.disconnect()
    assert states == [
        "connecting",
        "connected",
        "generating",
        "reconnecting",
        "connected",
        "reconnecting",
        "disconnected",
    ]
