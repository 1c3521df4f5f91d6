"""engine="decart" with the REAL `decart` SDK (0.2.4, realtime extra) against a local fake server.

Everything is real except the far end: Session -> DecartEngine -> decart.RealtimeClient ->
aiohttp WebSocket -> tests/fakes/decart_server.py on 127.0.0.1. LiveKit's `Room` is the one
stub (no LiveKit server can run here); frames still travel through real `livekit.rtc` sources,
tracks and streams. The SDK's backoff (1, 2, 4, 8 s) is real too, so a few tests take seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, Session, _loop
from tests.fakes.decart_server import VALID_KEY, FakeDecartServer, serving, state_colour
from tests.helpers import wait_until
from tests.test_widget import comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py

decart = pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')
pytestmark = pytest.mark.webrtc

T = TypeVar("T")
MODEL = "lucy-2.1"
RED = np.tile(np.array([200, 40, 40], np.uint8), (48, 64, 1))
BLUE = np.tile(np.array([30, 60, 210], np.uint8), (48, 64, 1))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDecartServer]:
    """The fake server on decart_nb's loop (held for the whole test), reached via the base-URL option."""
    with serving(monkeypatch) as fake:
        yield fake


def on_loop(coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
    return _loop.run(coro, timeout=timeout)


def session(**kwargs: Any) -> Session:
    options: dict[str, Any] = {"engine": "decart", "source": "pattern", "model": MODEL, "api_key": VALID_KEY}
    return Session(**(options | kwargs))


class Recorder:
    """A session's events, as a user's callbacks would receive them."""

    def __init__(self, s: Session) -> None:
        self.states: list[str] = []
        self.ticks: list[Any] = []
        self.errors: list[DecartNBError] = []
        self.queue: list[Any] = []
        self.ended: list[Any] = []
        s.on("connection_change", self.states.append)
        s.on("generation_tick", self.ticks.append)
        s.on("error", self.errors.append)
        s.on("queue_position", self.queue.append)
        s.on("generation_ended", self.ended.append)


def colour(s: Session) -> np.ndarray:
    return np.asarray(s.snapshot(timeout=10)).reshape(-1, 3).mean(axis=0)


def shows(s: Session, expected: tuple[int, int, int], timeout: float = 15.0) -> bool:
    """The output settles on the colour the fake model paints for a state."""
    return wait_until(lambda: bool(np.abs(colour(s) - np.array(expected)).max() < 8), timeout=timeout)


def live(server: FakeDecartServer, prompt: str | None, image: bool) -> Callable[[], bool]:
    def check() -> bool:
        conn = server.current
        return conn.prompt == prompt and (conn.image is not None) == image

    return check


# -- connect ------------------------------------------------------------------------------------
def test_connect_speaks_decarts_protocol(server: FakeDecartServer) -> None:
    with session(prompt="anime", enhance=False) as s:
        assert s.state == "connected"
        conn = server.current
        assert conn.query["model"] == MODEL and conn.query["livekit_early_room_info"] == "true"
        assert "decart_nb/" in conn.query["user_agent"]  # the integration the engine declares
        # The SDK's order: join, the initial prompt (acked), then the room.
        assert conn.seen == [
            {"type": "livekit_join"},
            {"type": "prompt", "prompt": "anime", "enhance_prompt": False},
        ]
        assert conn.room is not None
        (track, _options), *_ = conn.room.local_participant.published
        assert type(track).__name__ == "LocalVideoTrack"  # a real LiveKit track carries the camera
        assert shows(s, state_colour("anime", None))
        assert s.engine.session_id == conn.session_id  # type: ignore[attr-defined]
    assert len(server.conns) == 1


def test_connect_options_reach_the_server(server: FakeDecartServer) -> None:
    from decart_nb.engines.decart import DecartEngine

    options = {"resolution": "1080p", "speed": "fast", "codec": "vp9"}
    with session(model="lucy-2.5", engine_options=options):
        query = server.current.query
        assert (query["resolution"], query["speed"]) == ("1080p", "fast")
        room = server.current.room
        assert room is not None
        _track, published = room.local_participant.published[0]
        assert published.video_codec == decart.realtime.livekit_connection.rtc.VideoCodec.VP9
    for bad in ({"resolution": "4k"}, {"fps": 60}):
        with pytest.raises(DecartNBError) as info:
            session(engine_options=bad)
        assert info.value.code == ErrorCode.INVALID_INPUT
    with pytest.raises(DecartNBError) as info:
        Session(engine="local", source="pattern", engine_options={"speed": "fast"})
    assert info.value.code == ErrorCode.INVALID_INPUT and "engine='decart'" in info.value.message
    with pytest.raises(DecartNBError) as info:
        DecartEngine(api_key=VALID_KEY, base_url="https://not-a-websocket")
    assert info.value.code == ErrorCode.INVALID_BASE_URL


def test_initial_image_and_prompt_are_sent_before_the_room(server: FakeDecartServer) -> None:
    with session(prompt="vton", image=RED) as s:
        conn = server.current
        first = conn.seen[1]
        assert first["type"] == "set_image" and first["prompt"] == "vton"
        assert base64.b64decode(first["image_data"])[:2] == b"\xff\xd8"  # plain base64 JPEG
        assert shows(s, state_colour("vton", conn.image))


def test_queue_positions_then_the_session(server: FakeDecartServer) -> None:
    server.script.queue = [3, 2, 1]
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        assert wait_until(lambda: len(events.queue) == 3)
        assert [(q.position, q.queue_size) for q in events.queue] == [(3, 4), (2, 4), (1, 4)]
        assert s.state == "connected" and events.errors == []


def test_a_server_silent_after_the_join_gets_the_sdks_wait_and_retry(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decart.realtime import livekit_connection

    monkeypatch.setattr(livekit_connection, "LIVEKIT_HANDSHAKE_TIMEOUT", 1.0)  # the SDK's 15 s, shortened
    server.script.room_info_delays = [3.0]  # no word at all for 3 s on the first join
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        assert len(server.conns) == 2 and s.state == "connected"  # one retry, after the SDK's 1 s wait
    assert events.errors == []


def test_a_server_silent_during_connect_fails_it_in_bounded_time(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room info, ever: the SDK's five attempts (its real 1, 2, 4, 8 s backoff), then one error."""
    from decart.realtime import livekit_connection

    monkeypatch.setattr(livekit_connection, "LIVEKIT_HANDSHAKE_TIMEOUT", 0.5)  # the SDK's 15 s, shortened
    server.script.room_info_delay_s = 3600.0
    s = session(prompt="anime")
    events = Recorder(s)
    start = time.monotonic()
    with pytest.raises(DecartNBError) as info:
        s.connect()
    assert time.monotonic() - start < 30
    assert info.value.code == ErrorCode.WEBRTC_TIMEOUT_ERROR and "room info timed out" in info.value.message
    assert len(server.conns) == 5 and s.state == "disconnected"
    assert wait_until(lambda: events.states == ["connecting", "disconnected"])


def test_a_long_queue_is_waited_out_and_shown(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue longer than the SDK's room-info wait: one attempt, every position with the expected
    wait in the events and the panel, until the session starts."""
    from decart.realtime import livekit_connection

    # the SDK's 15 s, shortened, yet long enough on a loaded machine for the first position to
    # arrive within it (0.5 s let the attempt time out before it and retry: a flake in CI)
    monkeypatch.setattr(livekit_connection, "LIVEKIT_HANDSHAKE_TIMEOUT", 2.0)
    server.script.queue, server.script.queue_step_s = [5, 4, 3, 2, 1], 0.8  # 4 s in the queue
    s = session(prompt="anime")
    events = Recorder(s)
    badges: list[str] = []
    panel = s.panel
    panel.badge.observe(lambda change: badges.append(change["new"]), "value")
    with s:
        assert len(server.conns) == 1 and s.state == "connected"  # no retry: the place was kept
        assert wait_until(lambda: len(events.queue) == 5)
        assert [(q.position, q.queue_size) for q in events.queue] == [(5, 6), (4, 6), (3, 6), (2, 6), (1, 6)]
        assert events.queue[0].expected_wait_s is None  # not moved yet
        wait = events.queue[-1].expected_wait_s  # about 0.4 s a place, one place left
        assert wait is not None and 0.4 < wait < 2.5, wait
        assert [e.name for e in s.events].count("queue_position") == 5
        assert any("queue 3 of 6" in b for b in badges) and "queue" not in panel.badge.value
        assert events.errors == []


def test_a_queue_past_decart_nbs_limit_ends_the_connect_without_a_retry(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decart.realtime import livekit_connection

    from decart_nb import timeouts

    # shortened (the SDK's 15 s, decart_nb's 600 s), with room on a loaded machine for the first
    # position to arrive within the SDK's wait; the queue (9 s) outlasts both (3 s)
    monkeypatch.setattr(livekit_connection, "LIVEKIT_HANDSHAKE_TIMEOUT", 2.0)
    monkeypatch.setattr(timeouts, "DECART_QUEUE_TIMEOUT_S", 1.0)
    server.script.queue, server.script.queue_step_s = [9, 8, 7, 6, 5, 4, 3, 2, 1], 1.0
    with pytest.raises(DecartNBError) as info:
        session(prompt="anime").connect()
    error = info.value
    assert error.code == ErrorCode.WEBRTC_TIMEOUT_ERROR and "Decart's queue timed out" in error.message
    assert "not admitted within 3 s" in error.message and "of 10" in error.message
    assert len(server.conns) == 1  # a retry would queue anew at the back: none


def test_the_sdks_inner_wait_never_outlasts_the_queue_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's wait starts first; were it to run out with the queue limit it would fail with its
    own retried "room info timed out" (CI once saw that race re-queue a connect at the back)."""
    import asyncio

    from decart.errors import WebRTCError

    from decart_nb import timeouts
    from decart_nb.engines.decart import hooks

    monkeypatch.setattr(timeouts, "DECART_QUEUE_TIMEOUT_S", 0.2)

    class Connection:  # the SDK's wait as it is: its own timer, its own words
        def __init__(self) -> None:
            self._on_queue_position: Any = None

        async def _join_livekit_room(self, timeout: float) -> Any:
            self._on_queue_position(type("Queued", (), {"position": 3, "queue_size": 4})())
            await asyncio.sleep(timeout)
            raise WebRTCError("LiveKit room info timed out")

    async def join() -> str:
        connection = hooks._wait_in_queue(Connection())
        try:
            await connection._join_livekit_room(timeout=0.2)
        except WebRTCError as error:
            return str(error)
        return "joined"

    assert asyncio.run(join()).startswith("Decart's queue timed out: not admitted within 0.4 s")


# -- set semantics --------------------------------------------------------------------------------
def test_set_set_prompt_and_passthrough_on_the_wire(server: FakeDecartServer) -> None:
    with session(prompt="anime") as s:
        conn = server.current
        s.set_image(RED)  # keeps the prompt
        assert conn.seen[-1]["type"] == "set_image" and conn.seen[-1]["prompt"] == "anime"
        assert live(server, "anime", True)()
        s.set_prompt("sketch")  # the image stays: a prompt message, acked by its echo
        assert conn.seen[-1] == {"type": "prompt", "prompt": "sketch", "enhance_prompt": True}
        assert live(server, "sketch", True)()
        assert shows(s, state_colour("sketch", conn.image))
        s.set("noir")  # a prompt-only set() clears the image
        assert conn.seen[-1] == {
            "type": "set_image",
            "image_data": None,
            "prompt": "noir",
            "enhance_prompt": True,
        }
        assert live(server, "noir", False)()
        s.set(image=BLUE)  # an image-only set() replaces the prompt too: explicitly null
        assert conn.seen[-1]["prompt"] is None and conn.seen[-1]["image_data"]
        assert live(server, None, True)()
        s.set_image(None)  # nothing left: passthrough, as the SDK sends it (prompt: null)
        assert conn.seen[-1] == {"type": "set_image", "image_data": None, "prompt": None}
        assert live(server, None, False)()
        assert s.generation.is_passthrough


def test_a_snapshot_after_a_set_shows_the_new_state(server: FakeDecartServer) -> None:
    """Frames of the old state still on the way when the ack comes are not taken for new ones."""
    server.script.output_lag_s = 0.1  # as a jitter buffer holds them (the ack does not wait)
    with session(prompt="anime") as s:
        assert shows(s, state_colour("anime", None))
        for prompt in ("sketch", "noir", "anime"):
            s.set_prompt(prompt)
            assert np.abs(colour(s) - np.array(state_colour(prompt, None))).max() < 8, prompt


def test_a_rejection_leaves_the_state_untouched(server: FakeDecartServer) -> None:
    server.script.rejections = {"gore": "Prompt rejected by content moderation"}
    with session(prompt="anime") as s:
        before = s.generation
        with pytest.raises(DecartNBError) as info:
            s.set_prompt("gore everywhere")
        assert info.value.code == ErrorCode.WEBRTC_SERVER_ERROR and "moderation" in info.value.message
        assert s.generation is before and live(server, "anime", False)()
        assert shows(s, state_colour("anime", None))


def test_invalid_input_from_the_sdks_pydantic_models(server: FakeDecartServer) -> None:
    from decart_nb.engines.decart import load_sdk, resolve_key, translate

    sdk = load_sdk()
    with pytest.raises(Exception) as info:
        sdk.prompt(text="", enhance=True)
    error = translate(info.value, "apply", sdk, resolve_key(VALID_KEY))
    assert error.code == ErrorCode.INVALID_INPUT


def test_one_timeout_per_operation_named_in_its_error(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """set_prompt has PROMPT_TIMEOUT_S whichever SDK call carries it (a prompt-only change is
    Decart's set(), whose own wait is UPDATE_TIMEOUT_S); set_image and set have SET_TIMEOUT_S.
    The error names the operation, whichever timer ran out first."""
    import time

    from decart.realtime import client as sdk_client

    from decart_nb import session as session_module

    monkeypatch.setattr(sdk_client, "UPDATE_TIMEOUT_S", 4.0)  # the SDK's 30 s, shortened
    monkeypatch.setattr(sdk_client, "PROMPT_TIMEOUT_S", 1.0)  # the SDK's 15 s, shortened
    monkeypatch.setattr(session_module, "PROMPT_TIMEOUT_S", 1.0)  # decart_nb's 15 s, as the SDK's
    monkeypatch.setattr(session_module, "SET_TIMEOUT_S", 4.0)  # decart_nb's 30 s, as the SDK's

    def timed_out(call: Callable[[], None]) -> tuple[DecartNBError, float]:
        start = time.monotonic()
        with pytest.raises(DecartNBError) as info:
            call()
        assert info.value.code == ErrorCode.WEBRTC_TIMEOUT_ERROR
        return info.value, time.monotonic() - start

    for image in (None, RED):  # a prompt-only change goes as set(), one with an image as set_prompt
        server.script.ack_delay_s = 0.0
        with session(prompt="anime", image=image) as s:
            server.script.ack_delay_s = 60.0
            error, took = timed_out(lambda: s.set_prompt("sketch"))
            assert error.message.startswith("Decart did not acknowledge the new prompt within 1 s")
            assert error.data["operation"] == "prompt" and took < 3.5, took  # not set()'s 4 s
            assert s.generation.prompt == "anime"
            error, took = timed_out(lambda: s.set_image(BLUE))
            assert "the new image within 4 s" in error.message and took >= 3.9, took
            error, _took = timed_out(lambda: s.set("noir", image=BLUE))
            assert "the new state within 4 s" in error.message
            assert s.generation.prompt == "anime"


# -- events ---------------------------------------------------------------------------------------
def test_generation_ticks_are_decarts_whole_seconds(server: FakeDecartServer) -> None:
    server.script.tick_every_s = 0.2
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        assert wait_until(lambda: len(events.ticks) >= 3)
        assert s.state == "generating"
        seconds = [t.seconds for t in events.ticks[:3]]
        assert seconds == [1, 2, 3] and all(type(x) is int for x in seconds)  # the SDK's int
        on_loop(server.end_generation("moderation_violation", 3))
        assert wait_until(lambda: len(events.ended) == 1)
        assert (events.ended[0].seconds, events.ended[0].reason) == (3, "moderation_violation")
    assert events.states[:3] == ["connecting", "connected", "generating"]


def test_a_server_error_is_an_error_event(server: FakeDecartServer) -> None:
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        on_loop(server.error("Internal inference failure"))
        assert wait_until(lambda: len(events.errors) == 1)
        error = events.errors[0]
        assert error.code == ErrorCode.WEBRTC_SERVER_ERROR and "Internal inference failure" in error.message


# -- permanent errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("in_socket", [False, True], ids=["http-401", "error-message"])
def test_a_refused_key_is_invalid_api_key_and_not_retried(
    server: FakeDecartServer, caplog: pytest.LogCaptureFixture, in_socket: bool
) -> None:
    """Both ways Decart refuses a key: 401 on the upgrade, or an `error` answer to the join."""
    caplog.set_level(logging.DEBUG)
    server.script.refuse_key_in_socket = in_socket
    wrong = "dct_wrong_key_never_valid_77"
    with pytest.raises(DecartNBError) as info:
        session(api_key=wrong).connect()
    assert info.value.code == ErrorCode.INVALID_API_KEY and "not retried" in info.value.message
    assert info.value.message.startswith("Could not connect to Decart (lucy-2.1): ")  # the text as before
    assert ("401" if not in_socket else "Invalid API key") in info.value.message
    assert [r["path"] for r in server.http] == ["/v1/stream"]  # permanent: one attempt
    assert wrong not in str(info.value) and wrong not in repr(info.value) and wrong not in caplog.text


@pytest.mark.parametrize("in_socket", [False, True], ids=["http-401", "error-message"])
def test_a_key_revoked_mid_session_ends_it_without_retries(server: FakeDecartServer, in_socket: bool) -> None:
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        server.script.valid_keys, server.script.refuse_key_in_socket = set(), in_socket
        on_loop(server.drop())
        assert wait_until(lambda: s.state == "disconnected", timeout=20)
        assert wait_until(lambda: events.states[-1:] == ["disconnected"])
        assert len(events.errors) == 1 and "not retried" in events.errors[0].message
        assert events.errors[0].code == ErrorCode.INVALID_API_KEY
    assert len(server.http) == 2  # the first connect and one refused reconnect


def test_no_credits_ends_the_session_at_once(server: FakeDecartServer) -> None:
    """generation_ended(insufficient_credits), the server's error, the close: one error, no retry."""
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        on_loop(server.run_out_of_credits(seconds=42))
        assert wait_until(lambda: s.state == "disconnected", timeout=5)
        assert wait_until(lambda: events.states[-1:] == ["disconnected"])
        assert "reconnecting" not in events.states
    time.sleep(1.5)  # the SDK's first retry would have come after 1 s
    assert len(events.errors) == 1, events.errors
    error = events.errors[0]
    assert error.code == ErrorCode.INSUFFICIENT_CREDITS and error.data["reason"] == "insufficient_credits"
    assert "no credits" in error.message and error.data["seconds"] == 42
    assert [(e.seconds, e.reason) for e in events.ended] == [(42, "insufficient_credits")]
    assert len(server.http) == 1  # no reconnect attempt at all


def test_no_credits_at_connect_is_not_retried(server: FakeDecartServer) -> None:
    server.script.no_credits = True
    with pytest.raises(DecartNBError) as info:
        session(prompt="anime").connect()
    assert info.value.code == ErrorCode.INSUFFICIENT_CREDITS and "not retried" in info.value.message
    assert len(server.http) == 1  # the SDK retries other errors 5 times; not this one


def test_a_session_decart_ends_is_reported_and_not_restarted(server: FakeDecartServer) -> None:
    """Its time limit (generation_ended "timeout", then the close): by default no new billed session."""
    server.script.tick_every_s = 0.2
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        assert wait_until(lambda: s.state == "generating")
        on_loop(server.end_session("timeout", seconds=600))
        assert wait_until(lambda: s.state == "disconnected", timeout=5)
        assert wait_until(lambda: events.states[-1:] == ["disconnected"])
    time.sleep(1.5)  # the SDK's reconnect would have come at once
    assert len(server.conns) == 1 and len(server.http) == 1  # no new (billed) session
    assert [(e.seconds, e.reason) for e in events.ended] == [(600, "timeout")]
    assert len(events.errors) == 1 and "reconnecting" not in events.states
    error = events.errors[0]
    assert error.code == ErrorCode.SESSION_ENDED and error.data["reason"] == "timeout"
    assert "time limit" in error.message and "new (billed) session" in error.message


def test_restart_billed_session_starts_a_new_one_with_the_state(server: FakeDecartServer) -> None:
    s = session(prompt="anime", engine_options={"restart_billed_session": True})
    events = Recorder(s)
    with s:
        on_loop(server.end_session("timeout", seconds=600))
        assert wait_until(restored(server, s, 2), timeout=30)
        assert wait_until(live(server, "anime", False))
        assert wait_until(lambda: [(e.seconds, e.reason) for e in events.ended] == [(600, "timeout")])
        assert wait_until(lambda: "reconnecting" in events.states) and events.errors == []
    with pytest.raises(DecartNBError) as info:
        session(engine_options={"restart_billed_session": "yes"})
    assert info.value.code == ErrorCode.INVALID_INPUT


# -- drops and reconnects -----------------------------------------------------------------------
def restored(server: FakeDecartServer, s: Session, connections: int) -> Callable[[], bool]:
    """The engine runs on the server's newest session and has restored its state there."""
    engine: Any = s.engine

    def check() -> bool:
        newest = len(server.conns) == connections and engine.session_id == server.current.session_id
        return newest and engine._settled.is_set()

    return check


def drop_and_recover(server: FakeDecartServer, s: Session) -> None:
    before = len(server.conns)
    on_loop(server.drop())
    assert wait_until(restored(server, s, before + 1), timeout=30)


@pytest.mark.parametrize("drops", [1, 3])
def test_the_latest_prompt_and_image_are_live_after_drops(
    no_leaked_threads: None, server: FakeDecartServer, drops: int
) -> None:
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        s.set("vton", image=RED)
        s.set_prompt("sketch")  # latest: "sketch" with the red image
        for _ in range(drops):
            drop_and_recover(server, s)
            conn = server.current
            # The SDK's own passthrough came first and was acknowledged; then the restore.
            assert conn.seen[1] == {"type": "set_image", "image_data": None, "prompt": None}
            assert wait_until(live(server, "sketch", True))
            assert shows(s, state_colour("sketch", conn.image))
        assert len(server.conns) == 1 + drops
        assert wait_until(lambda: events.states.count("reconnecting") == drops)  # events come on their thread
        assert events.errors == []
        s.set_prompt("after")  # and sets work again
        assert live(server, "after", True)()


def test_a_retry_that_shows_as_connecting_also_restores(server: FakeDecartServer) -> None:
    """The reconnect's first attempt drops during the SDK's own passthrough; the SDK retries and
    reports that attempt as connecting/connected (not reconnecting): the state is restored all the same."""
    s = session(prompt="anime", image=RED)
    events = Recorder(s)
    with s:
        server.script.drop_on = ["set_image"]  # the next passthrough is never acknowledged
        on_loop(server.drop())
        assert wait_until(restored(server, s, 3), timeout=30)
        assert wait_until(live(server, "anime", True))
        assert shows(s, state_colour("anime", server.current.image))
        assert wait_until(lambda: "connecting" in events.states[2:])  # the SDK's own report of the retry
        assert events.errors == []


def test_a_set_while_reconnecting_fails_and_changes_nothing(server: FakeDecartServer) -> None:
    with session(prompt="anime") as s:
        server.script.refuse = [503, 503]  # two reconnect attempts fail: the SDK waits 1 s, then 2 s
        on_loop(server.drop())
        assert wait_until(lambda: s.state == "reconnecting")
        with pytest.raises(DecartNBError) as info:
            s.set_prompt("sketch")
        assert info.value.code == ErrorCode.NOT_CONNECTED and s.generation.prompt == "anime"
        assert wait_until(restored(server, s, 2), timeout=30)
        assert live(server, "anime", False)()  # the state it had is back by itself
        s.set_prompt("sketch")  # and sets go through again
        assert live(server, "sketch", False)()


def test_switch_model_reconnects_with_the_state(server: FakeDecartServer) -> None:
    with session(model="lucy-restyle-2", prompt="anime") as s:
        assert np.asarray(s.snapshot(timeout=10)).shape == (704, 1280, 3)
        s.set_prompt("pencil sketch")
        s.switch_model("lucy-vton-3.5")
        conn = server.current
        assert len(server.conns) == 2 and conn.query["model"] == "lucy-vton-3.5"
        assert conn.seen[1] == {"type": "prompt", "prompt": "pencil sketch", "enhance_prompt": True}
        assert np.asarray(s.snapshot(timeout=10)).shape == (720, 1280, 3)
        assert shows(s, state_colour("pencil sketch", None))


def test_the_sdk_gives_up_after_five_attempts_and_so_does_the_session(server: FakeDecartServer) -> None:
    """Real backoff: 1 + 2 + 4 + 8 s between the SDK's five reconnect attempts."""
    s = session(prompt="anime")
    events = Recorder(s)
    with s:
        server.script.refuse = [503] * 5
        on_loop(server.drop())
        assert wait_until(lambda: s.state == "disconnected", timeout=40)
        assert wait_until(lambda: len(events.errors) == 1)
    error = events.errors[0]
    assert error.code.startswith("WEBRTC_") and "503" in error.message and VALID_KEY not in error.message
    assert len(server.http) == 1 + 5 and len(server.conns) == 1
    assert events.states[-2:] == ["reconnecting", "disconnected"]


def test_the_fake_never_listens_where_the_sdk_reads_its_url_as_a_refused_key() -> None:
    """On port 401xx the SDK would never retry (its permanent-error check reads the URL's text)."""
    from decart.realtime.livekit_manager import _is_permanent_error

    async def port_taken(wanted: int) -> int:
        fake = await FakeDecartServer().start(port=wanted)
        await fake.close()
        return fake.port

    wanted = next(p for p in range(40100, 40200) if _port_is_free(p))
    port = asyncio.run(port_taken(wanted))
    assert port != wanted and "401" not in str(port)
    assert not _is_permanent_error(
        Exception(f"503, message='Invalid response status', url='ws://127.0.0.1:{port}'")
    )


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_refused_restore_is_reported_and_the_next_set_sends_everything(server: FakeDecartServer) -> None:
    s = session(prompt="anime", image=RED)
    events = Recorder(s)
    with s:
        server.script.rejections = {"anime": "Prompt rejected by content moderation"}  # policy changed
        on_loop(server.drop())
        assert wait_until(lambda: len(events.errors) == 1, timeout=30)
        error = events.errors[0]
        assert error.code == ErrorCode.WEBRTC_SERVER_ERROR and "could not restore" in error.message
        assert live(server, None, False)()  # Decart holds passthrough
        s.set_prompt("sketch")  # the image is unchanged for the session, not for Decart: it goes too
        assert (
            server.current.seen[-1]["type"] == "set_image" and server.current.seen[-1]["prompt"] == "sketch"
        )
        assert live(server, "sketch", True)()
        assert shows(s, state_colour("sketch", server.current.image))


def test_a_set_during_the_sdks_passthrough_waits_for_the_restore(server: FakeDecartServer) -> None:
    with session(prompt="anime") as s:
        server.script.ack_delay_s = 1.0  # the reconnect's passthrough takes a while
        on_loop(server.drop())
        assert wait_until(lambda: len(server.conns) == 2 and s.state in ("connected", "generating"))
        s.set_prompt("sketch")  # neither races the SDK's pending passthrough nor is lost
        assert live(server, "sketch", False)()
        # The SDK's passthrough, then the restore, then this set: each acked on its own.
        assert [m.get("prompt") for m in server.current.seen[1:]] == [None, "anime", "sketch"]
        assert s.generation.prompt == "sketch"


def test_a_set_waiting_for_a_restore_keeps_its_own_limit(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for a restore counts toward the operation's limit: set_prompt ends within its own
    (shortened) 15 s, not after a separate 30 s restore wait on top."""
    from decart_nb import session as session_module

    monkeypatch.setattr(session_module, "PROMPT_TIMEOUT_S", 1.0)  # decart_nb's 15 s, shortened
    with session(prompt="anime") as s:
        server.script.ack_delay_s = 4.0  # the reconnect's passthrough, then the restore: 8 s
        on_loop(server.drop())
        assert wait_until(lambda: len(server.conns) == 2 and s.state in ("connected", "generating"))
        start = time.monotonic()
        with pytest.raises(DecartNBError) as info:
            s.set_prompt("sketch")
        took = time.monotonic() - start
        assert info.value.code == ErrorCode.NOT_CONNECTED and "still being restored" in info.value.message
        assert took < 3.0, took  # the restore takes 8 s
        assert s.generation.prompt == "anime"
        server.script.ack_delay_s = 0.0
        assert wait_until(restored(server, s, 2), timeout=15)
        assert live(server, "anime", False)()


# -- the key stays in the kernel -----------------------------------------------------------------
def test_the_server_sees_the_key_only_where_the_sdk_sends_it(server: FakeDecartServer) -> None:
    with session(prompt="anime") as s:
        s.set_image(RED)
    messages = json.dumps(server.sent())
    assert VALID_KEY not in messages
    for request in server.http:
        assert request["query"]["api_key"] == VALID_KEY  # the control channel's URL, as Decart's SDK does
        assert VALID_KEY not in json.dumps(request["headers"])
        assert VALID_KEY not in json.dumps({k: v for k, v in request["query"].items() if k != "api_key"})


def test_the_key_never_leaves_the_kernel(
    server: FakeDecartServer, comms: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Widget state, comm messages, logs, reprs, errors: no key, through refusals, retries, drops,
    rejections and a server error that quotes it."""
    caplog.set_level(logging.DEBUG)
    server.script.rejections = {"gore": "Prompt rejected by content moderation"}
    server.script.refuse = [503]  # the SDK retries; tenacity logs the refused URL (with the key)
    s = session(prompt="anime")
    events = Recorder(s)
    texts: list[str] = []
    with s:
        widget, panel = s.widget, s.panel
        bundle = s._repr_mimebundle_()
        s.set_image(RED)
        with pytest.raises(DecartNBError) as rejected:
            s.set_prompt("gore")
        drop_and_recover(server, s)
        on_loop(server.error(f"session closed for api_key={VALID_KEY}"))
        assert wait_until(lambda: len(events.errors) == 1)
        texts += [repr(s), str(s), repr(s.engine), str(vars(s.engine)), str(s.stats), str(bundle)]
        texts += [str(widget.get_state()), str(panel.get_state()), _texts(rejected.value)]
        texts += [_texts(e) for e in [*events.errors, *s.errors]]
    with pytest.raises(DecartNBError) as refused:  # the same key, refused: aiohttp's text quotes the URL
        server.script.valid_keys = set()
        session(prompt="anime").connect()
    texts.append(_texts(refused.value))
    texts += [json.dumps(c.sent, default=str) for c in comms]
    assert comms and any(c.sent for c in comms)  # the widgets did talk to the page
    assert "api_key=***" in caplog.text  # the SDK did log the URL: redacted
    for text in [*texts, caplog.text]:
        assert VALID_KEY not in text
    # The server saw it in the control channel's URL only (where Decart's SDK puts it).
    assert VALID_KEY not in json.dumps(server.sent())
    assert all(VALID_KEY not in json.dumps(r["headers"]) for r in server.http)


def _texts(error: BaseException) -> str:
    import traceback

    data = getattr(error, "data", None)
    return "\n".join([str(error), repr(error), *traceback.format_exception(error), str(data)])


# -- a viewer (Decart's subscribe), as a second notebook would open one ----------------------------
def test_a_viewer_sees_the_running_session_receive_only(server: FakeDecartServer) -> None:
    import decart_nb

    with session(prompt="anime") as host:
        token = host.engine.subscribe_token  # type: ignore[attr-defined]
        assert token and VALID_KEY not in token  # it names the room; the viewer brings its own key
        viewer = decart_nb.watch(token, api_key=VALID_KEY, model=MODEL)
        try:
            assert shows(viewer, state_colour("anime", None))
            host.set_prompt("sketch")  # the host steers; the viewer follows
            assert shows(viewer, state_colour("sketch", None))
            with pytest.raises(DecartNBError) as info:
                viewer.set_prompt("mine now")
            assert info.value.code == ErrorCode.INVALID_INPUT and "receive-only" in info.value.message
            assert live(server, "sketch", False)()
        finally:
            viewer.disconnect()
        watch = [r for r in server.http if r["path"].startswith("/watch-stream/")]
        assert len(watch) == 1 and watch[0]["headers"]["x-api-key"] == VALID_KEY
        assert len(server.conns) == 1  # a viewer opens no control channel: it sends nothing


def test_a_viewer_with_a_bad_token_or_key(server: FakeDecartServer) -> None:
    import decart_nb

    with pytest.raises(DecartNBError) as bad_token:
        decart_nb.watch("not-a-token", api_key=VALID_KEY)
    assert bad_token.value.code == ErrorCode.INVALID_INPUT
    with session(prompt="anime") as host:
        token = host.engine.subscribe_token  # type: ignore[attr-defined]
        with pytest.raises(DecartNBError) as bad_key:
            decart_nb.watch(token, api_key="dct_someone_else_entirely")
        assert "401" in bad_key.value.message and "dct_someone_else_entirely" not in str(bad_key.value)
        assert bad_key.value.code == ErrorCode.INVALID_API_KEY
