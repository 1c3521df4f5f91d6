"""Trying to break the Session: races, re-entrant calls, bad calls mid-stream, leaks and exits.

Each test asserts what a user would notice: a clear error with a code, a stream that keeps going,
a state that stays the last good one, and no thread left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, Session, _loop
from decart_nb.engines import CallableEngine, FrameEngine
from decart_nb.media.stamp import read_stamp
from decart_nb.state import GenerationState
from tests.helpers import png_bytes, wait_until

ROOT = Path(__file__).resolve().parents[1]


def loop_alive() -> bool:
    return any(t.name == _loop.THREAD_NAME and t.is_alive() for t in threading.enumerate())


_users_at_start = [0]


@pytest.fixture(autouse=True)
def _count_loop_users() -> None:
    _users_at_start[0] = _loop._users  # a session leaked by another test must not fail these


@pytest.fixture
def nothing_left() -> Iterator[None]:
    """No thread of this test outlives it. (When another test leaked a session, the shared loop
    lives on and so may its idle default-executor threads, `asyncio_N`: those are not ours.)"""
    before = set(threading.enumerate())
    yield
    shared = _users_at_start[0] > 0

    def extra() -> list[str]:
        new = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        return [t.name for t in new if not (shared and t.name.startswith("asyncio_"))]

    assert wait_until(lambda: not extra(), timeout=5), f"threads left behind: {extra()}"


def loop_released() -> bool:
    """Every session of this test let go of the media loop (stopped, if no one else holds it)."""
    start = _users_at_start[0]
    return _loop._users == start and (start > 0 or not loop_alive())


def frames_out(s: Session) -> int:
    return int(s.stats.get("frames_out", 0))


def keeps_streaming(s: Session, more: int = 5, timeout: float = 10) -> bool:
    count = frames_out(s)
    return wait_until(lambda: frames_out(s) > count + more, timeout=timeout)


def identity(frame: np.ndarray, state: GenerationState) -> np.ndarray:
    return frame


def stamp_of_rgb(rgb: np.ndarray) -> int | None:
    return read_stamp(np.ascontiguousarray(rgb[..., 1]))  # green ~ luma for black/white blocks


class SlowAck(CallableEngine):
    """A callable engine whose acknowledgement takes a while (like a cloud model's)."""

    def __init__(self, delay: float) -> None:
        super().__init__(identity)
        self.delay = delay

    async def apply(self, state: GenerationState) -> None:
        await asyncio.sleep(self.delay)
        await super().apply(state)


@pytest.fixture
def session() -> Iterator[Session]:
    s = Session(source="pattern", engine=identity)
    s.connect()
    assert wait_until(lambda: s.state == "generating")
    yield s
    s.disconnect()


# -- lifecycle races ---------------------------------------------------------------------------


def test_connect_disconnect_cycles_leave_no_thread_behind(nothing_left: None) -> None:
    s = Session(source="pattern", engine=identity)
    for i in range(4):
        s.connect()
        s.connect()  # a second connect is a no-op
        assert s.snapshot(timeout=10).size == (1280, 720), i
        s.disconnect()
        s.disconnect()  # safe twice
        assert s.state == "disconnected" and wait_until(loop_released, timeout=5)


def test_connect_and_disconnect_from_many_threads_at_once(nothing_left: None) -> None:
    s = Session(source="pattern", engine=identity)
    failures: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            for j in range(4):
                s.connect()
                s.stats  # noqa: B018
                if (seed + j) % 2:
                    s.set_prompt(f"p{seed}-{j}")
                s.disconnect()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    s.disconnect()
    assert s.state == "disconnected"
    assert wait_until(loop_released, timeout=5)


def test_disconnect_while_connect_runs_ends_disconnected(nothing_left: None) -> None:
    s = Session(source="pattern", engine=SlowAck(0.8), prompt="slow to acknowledge")
    connected = threading.Thread(target=s.connect)
    connected.start()
    assert wait_until(lambda: s.state == "connecting", timeout=5)
    start = time.monotonic()
    s.disconnect()
    connected.join(10)
    assert not connected.is_alive()
    assert time.monotonic() - start < 10
    s.disconnect()
    assert s.state == "disconnected"
    assert wait_until(loop_released, timeout=5)


def test_set_racing_switch_model_leaves_engine_and_session_agreeing() -> None:
    """A set() whose ack is in flight while switch_model() rebuilds the pipeline: afterwards the
    engine must run the state the session reports, not the one before the set()."""
    engine = SlowAck(0.4)
    with Session(source="pattern", engine=engine, prompt="first") as s:
        setter = threading.Thread(target=s.set_prompt, args=("second",))
        setter.start()
        time.sleep(0.1)  # the ack of "second" is now in flight
        s.switch_model("lucy-restyle-2")
        setter.join(10)
        assert s.generation.prompt == "second"
        assert engine._state.prompt == s.generation.prompt
        assert engine._state.version == s.generation.version
        assert s.snapshot(timeout=10).size == (1280, 704)


def test_pollers_never_see_raw_errors_while_sessions_come_and_go(nothing_left: None) -> None:
    """The panel polls stats and users call set() from threads while connect/disconnect run."""
    s = Session(source="pattern", engine=identity)
    stop = threading.Event()
    raw: list[BaseException] = []
    slowest = [0.0]

    def poll(call: Callable[[], Any]) -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                call()
            except DecartNBError as exc:
                if exc.code not in (ErrorCode.NOT_CONNECTED, ErrorCode.FRAME_TIMEOUT):
                    raw.append(exc)
            except BaseException as exc:  # noqa: BLE001 - asserted below
                raw.append(exc)
            slowest[0] = max(slowest[0], time.monotonic() - start)
            time.sleep(0.005)

    calls: list[Callable[[], Any]] = [
        lambda: s.stats,
        lambda: s.set_prompt("poll"),
        lambda: s.snapshot(timeout=2),
    ]
    pollers = [threading.Thread(target=poll, args=(c,)) for c in calls]
    for t in pollers:
        t.start()
    try:
        for _ in range(6):
            s.connect()
            time.sleep(0.15)
            s.disconnect()
    finally:
        stop.set()
        for t in pollers:
            t.join(30)
    assert not raw, raw
    assert slowest[0] < 8, slowest[0]  # nothing waited for a loop that had gone away
    assert s.state == "disconnected"
    assert wait_until(loop_released, timeout=5)


class Picky(CallableEngine):
    """An engine whose validation has a bug: it raises a plain exception for one prompt."""

    def __init__(self) -> None:
        super().__init__(identity)

    def validate(self, state: GenerationState) -> None:
        if state.prompt == "boom":
            raise KeyError("no such style table entry")


def test_an_engine_rejecting_a_state_with_a_plain_exception_gives_a_coded_error() -> None:
    with Session(source="pattern", engine=Picky(), prompt="fine") as s:
        s.snapshot(timeout=10)
        before = s.generation
        with pytest.raises(DecartNBError) as info:
            s.set_prompt("boom")
        assert info.value.code == ErrorCode.ENGINE_ERROR and "no such style" in info.value.message
        assert s.generation is before
        assert s.state == "generating" and keeps_streaming(s)


# -- calls after the end -----------------------------------------------------------------------


def test_calls_after_disconnect_and_after_the_source_ended_have_codes(tmp_path: Path) -> None:
    s = Session(source="pattern", engine=identity)
    s.connect()
    s.disconnect()
    ended = Session(source=(np.zeros((720, 1280, 3), np.uint8) for _ in range(5)), engine=identity)
    ended.connect()
    assert wait_until(lambda: ended.state == "disconnected", timeout=10)
    for dead in (s, ended):
        for call in (dead.snapshot, lambda d=dead: d.record(tmp_path / "x.mp4", 1)):
            with pytest.raises(DecartNBError) as info:
                call()
            assert info.value.code == ErrorCode.NOT_CONNECTED
        dead.set_prompt("kept for the next connect")
        assert dead.generation.prompt == "kept for the next connect"
        assert dead.stats["state"] == "disconnected"
    assert not (tmp_path / "x.mp4").exists()
    assert wait_until(loop_released, timeout=5)


# -- re-entrancy -------------------------------------------------------------------------------


def test_event_callbacks_may_call_set_prompt_and_disconnect(nothing_left: None) -> None:
    s = Session(source="pattern", engine=identity)
    seen: list[str] = []

    def on_state(state: str) -> None:
        seen.append(state)
        if state == "generating":
            s.set_prompt("set from a callback")

    def on_tick(tick: Any) -> None:
        s.disconnect()

    s.on("connection_change", on_state)
    s.on("generation_tick", on_tick)
    s.connect()
    assert wait_until(lambda: s.state == "disconnected", timeout=15)
    assert s.generation.prompt == "set from a callback"
    assert not s.callback_failures, [f.traceback for f in s.callback_failures]
    assert wait_until(lambda: seen[-1:] == ["disconnected"], timeout=5)
    assert wait_until(loop_released, timeout=5)


def test_a_callback_may_reconnect_and_no_dispatcher_is_left_behind(nothing_left: None) -> None:
    s = Session(source="pattern", engine=identity)
    states: list[str] = []
    reconnected = threading.Event()

    def on_tick(tick: Any) -> None:
        if not reconnected.is_set():
            reconnected.set()
            s.disconnect()
            s.connect()

    s.on("generation_tick", on_tick)
    s.on("connection_change", states.append)
    s.connect()
    assert wait_until(reconnected.is_set, timeout=10)
    assert wait_until(lambda: states.count("generating") == 2, timeout=10), states
    s.disconnect()
    assert wait_until(lambda: states[-1:] == ["disconnected"], timeout=5)
    assert states.count("disconnected") == 2 and not s.callback_failures
    assert wait_until(loop_released, timeout=5)


def test_blocking_calls_from_the_media_loop_raise_instead_of_hanging(session: Session) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "set_prompt": lambda: session.set_prompt("from the loop"),
        "snapshot": session.snapshot,
        "stats": lambda: session.stats,
        "disconnect": session.disconnect,
    }
    outcome: dict[str, BaseException | None] = {}

    async def inside() -> None:
        for name, call in calls.items():
            try:
                call()
                outcome[name] = None
            except Exception as exc:  # noqa: BLE001 - asserted below
                outcome[name] = exc

    _loop.submit(inside()).result(timeout=10)
    for name, exc in outcome.items():
        assert exc is not None, f"{name} from the loop did not raise"
        assert "loop" in str(exc), (name, exc)
    # Nothing was torn half-way: the stream goes on with the last good state.
    assert session.generation.prompt is None
    assert session.state == "generating" and keeps_streaming(session)


def test_a_model_function_may_disconnect_its_own_session(nothing_left: None) -> None:
    calls = 0

    def stop_after_ten(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 10:
            s.disconnect()
        return frame

    s = Session(source="pattern", prompt="count", engine=stop_after_ten)
    start = time.monotonic()
    s.connect()
    assert wait_until(lambda: s.state == "disconnected", timeout=15)
    assert time.monotonic() - start < 8, "disconnect from the model thread waited for itself"
    assert not s.errors, list(s.errors)
    assert wait_until(loop_released, timeout=5)


def test_calls_that_wait_for_the_models_output_are_refused_inside_the_model(nothing_left: None) -> None:
    raised: dict[str, BaseException] = {}
    calls = {
        "snapshot": lambda: s.snapshot(timeout=1),
        "record": lambda: s.record("never.mp4", 1),
        "switch_model": lambda: s.switch_model("lucy-restyle-2"),
    }

    def calls_back(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        for name, call in calls.items():
            if name not in raised:
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - what each call raised is the result
                    raised[name] = exc
                return frame  # one call per frame, as a model would
        return frame

    s = Session(source="pattern", prompt="call back", engine=calls_back)
    with s:
        assert wait_until(lambda: len(raised) == len(calls), timeout=30), raised
        for name, exc in raised.items():
            assert isinstance(exc, RuntimeError) and "inside the model" in str(exc), (name, exc)
        assert s.model.name == "lucy-latest" and keeps_streaming(s)
        assert s.snapshot(timeout=5).size == (1280, 720)  # from the test's own thread: fine


# -- stalls, timeouts and interrupts -----------------------------------------------------------


def test_snapshot_on_a_stalled_engine_times_out_quickly_and_recovers() -> None:
    gate = threading.Event()

    def stalls(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        if state.prompt == "stall":
            gate.wait(10)
        return frame

    with Session(source="pattern", engine=stalls) as s:
        s.snapshot(timeout=10)
        s.set_prompt("stall")
        start = time.monotonic()
        with pytest.raises(DecartNBError) as info:
            s.snapshot(timeout=0.1)
        assert info.value.code == ErrorCode.FRAME_TIMEOUT
        assert time.monotonic() - start < 3
        gate.set()
        s.snapshot(timeout=10)
        assert s.state == "generating" and keeps_streaming(s)


def test_timed_out_snapshots_leave_no_waiters_behind() -> None:
    gate = threading.Event()

    def stalls(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        if state.prompt == "stall":
            gate.wait(20)
        return frame

    with Session(source="pattern", engine=stalls) as s:
        s.snapshot(timeout=10)
        s.set_prompt("stall")
        pipeline = s._core.pipeline
        assert pipeline is not None
        try:
            for _ in range(300):
                with pytest.raises(DecartNBError):
                    s.snapshot(timeout=0.001)
            assert len(pipeline.broadcast._frame_waiters) <= 1  # bounded while the model is stuck
        finally:
            gate.set()
        assert s.snapshot(timeout=10).size == (1280, 720)


def test_a_recording_cut_short_by_a_model_switch_keeps_what_it_recorded(
    session: Session, tmp_path: Path
) -> None:
    result: list[Any] = []
    recorder = threading.Thread(
        target=lambda: result.append(_try(lambda: session.record(tmp_path / "cut.mp4", 8)))
    )
    recorder.start()
    time.sleep(1.5)
    session.switch_model("lucy-restyle-2")
    recorder.join(20)
    assert not recorder.is_alive()
    assert isinstance(result[0], Path), result
    with av.open(str(result[0])) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 10 and (frames[0].width, frames[0].height) == (1280, 720)
    assert session.snapshot(timeout=10).size == (1280, 704)


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except BaseException as exc:  # noqa: BLE001 - returned for the assertion
        return exc


def test_disconnect_while_a_snapshot_waits_gives_the_waiter_a_coded_error() -> None:
    gate = threading.Event()

    def stalls(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        if state.prompt == "stall":
            gate.wait(1.5)
        return frame

    s = Session(source="pattern", engine=stalls)
    s.connect()
    s.snapshot(timeout=10)
    s.set_prompt("stall")
    raised: list[BaseException] = []

    def wait_for_snapshot() -> None:
        try:
            s.snapshot(timeout=20)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            raised.append(exc)

    waiter = threading.Thread(target=wait_for_snapshot)
    waiter.start()
    time.sleep(0.3)
    s.disconnect()
    waiter.join(10)
    assert not waiter.is_alive()
    assert raised and isinstance(raised[0], DecartNBError), raised
    assert wait_until(loop_released, timeout=5)


def test_a_model_that_blocks_two_seconds_once_drops_frames_and_builds_no_backlog() -> None:
    seen: list[tuple[float, int | None]] = []
    blocked: list[int] = []

    def hiccup(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        stamp = stamp_of_rgb(frame)
        seen.append((time.monotonic(), stamp))
        if not blocked and stamp is not None and stamp >= 15:
            blocked.append(stamp)
            time.sleep(2.0)
        return frame

    with Session(source="pattern", engine=hiccup) as s:
        assert wait_until(lambda: bool(blocked), timeout=10)
        assert wait_until(lambda: _after(seen, blocked[0]) >= 20, timeout=15)
        stats = s.stats
    after = [stamp for _, stamp in seen if stamp is not None and stamp > blocked[0]]
    # The frame processed next is the newest one (about 60 frames on), not the next in line.
    assert after[0] - blocked[0] >= 30, (blocked[0], after[:5])
    assert stats["frames_dropped"] >= 30
    # And from then on it keeps up: consecutive processed frames stay close together.
    gaps = np.diff(after[:20])
    assert np.median(gaps) <= 3, gaps


def _after(seen: list[tuple[float, int | None]], stamp: int) -> int:
    return sum(1 for _, s in seen if s is not None and s > stamp)


def test_an_interrupted_record_stops_recording(session: Session, tmp_path: Path, ctrl_c_raises: None) -> None:
    pipeline = session._core.pipeline
    assert pipeline is not None
    subscribers = len(pipeline.broadcast._subscribers)
    start = time.monotonic()
    timer = threading.Timer(0.7, os.kill, args=(os.getpid(), signal.SIGINT))  # Ctrl-C
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        session.record(tmp_path / "long.mp4", 30)
    assert time.monotonic() - start < 10
    timer.join()
    # The recording must not go on in the background once the user pressed interrupt.
    assert wait_until(lambda: len(pipeline.broadcast._subscribers) == subscribers, timeout=3)
    assert session.state == "generating" and keeps_streaming(session)


def test_ctrl_c_during_a_slow_connect_is_a_keyboard_interrupt_and_leaves_nothing_running(
    nothing_left: None, ctrl_c_raises: None
) -> None:
    s = Session(source="pattern", engine=SlowAck(3.0), prompt="slow to acknowledge")
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        s.connect()
    timer.join()
    assert time.monotonic() - start < 2.5  # it did not wait for the ack first
    assert s.state == "disconnected"
    assert wait_until(loop_released, timeout=5)


# -- bad input mid-stream ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), 1e9, "2"])
def test_record_rejects_bad_durations(session: Session, tmp_path: Path, seconds: Any) -> None:
    with pytest.raises(DecartNBError) as info:
        session.record(tmp_path / "x.mp4", seconds)
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert not (tmp_path / "x.mp4").exists()


def test_record_to_an_unwritable_path_is_a_coded_error_and_the_stream_goes_on(
    session: Session, tmp_path: Path
) -> None:
    session.set_prompt("keep me")
    before = session.generation
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for target in (blocker / "clip.mp4", tmp_path / "clip.not_a_container_format"):
        start = time.monotonic()
        with pytest.raises(DecartNBError) as info:
            session.record(target, 5)
        assert info.value.code == ErrorCode.INVALID_INPUT, info.value
        assert str(target.name) in info.value.message or str(target) in info.value.message
        assert time.monotonic() - start < 4  # fails up front, not after recording
    assert session.generation is before
    assert session.state == "generating" and keeps_streaming(session)
    assert len(session._core.pipeline.broadcast._subscribers) == 0  # type: ignore[union-attr]


def test_images_too_big_or_corrupt_leave_the_stream_and_state_alone(session: Session) -> None:
    session.set(prompt="good", image=png_bytes())
    before = session.generation
    truncated = png_bytes(size=(400, 300))[:200]
    huge_view = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20_000, 20_000, 3))  # no memory
    too_many_bytes = b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024)
    for image in (truncated, huge_view, too_many_bytes, np.zeros((0, 5, 3), np.uint8), 42):
        with pytest.raises(DecartNBError) as info:
            session.set_image(image)  # type: ignore[arg-type]
        assert info.value.code == ErrorCode.INVALID_INPUT
        assert session.generation is before
    with pytest.raises(DecartNBError) as info:
        session.switch_model("lucy-does-not-exist")
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert session.generation is before and session.state == "generating" and keeps_streaming(session)


class ReturnsArray(FrameEngine):
    """A FrameEngine whose process() returns an ndarray instead of a frame: an engine bug."""

    name = "returns-array"

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        return frame.to_ndarray()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "engine",
    [
        ReturnsArray(),
        CallableEngine(lambda frame, state: frame[..., 0]),  # HxW
        CallableEngine(lambda frame, state: np.dstack([frame, frame[..., :1]])),  # HxWx4
        CallableEngine(lambda frame, state: [[0, 0, 0]]),  # not an array
        CallableEngine(lambda frame, state: None),
    ],
    ids=["process-returns-ndarray", "2d", "4-channels", "list", "none"],
)
def test_an_engine_returning_the_wrong_thing_is_reported_and_passes_through(engine: FrameEngine) -> None:
    errors: list[DecartNBError] = []
    with Session(source="pattern", engine=engine, prompt="go") as s:
        s.on("error", errors.append)
        assert wait_until(lambda: bool(errors), timeout=10)
        assert errors[0].code == ErrorCode.ENGINE_ERROR
        assert s.state == "generating" and keeps_streaming(s)
        assert s.snapshot().size == (1280, 720)  # the input passed through
        assert len(s.errors) <= 3  # the same failure is not reported for every frame


def test_an_engine_returning_floats_is_converted_not_rejected() -> None:
    with Session(source="pattern", engine=lambda f, s: f.astype(np.float32) * 0.5, prompt="dim") as s:
        img = np.asarray(s.snapshot(timeout=10))
        assert img.dtype == np.uint8 and img.shape == (720, 1280, 3)
        assert not s.errors


def frames_then(error: BaseException | np.ndarray, good: int = 8) -> Iterator[np.ndarray]:
    for _ in range(good):
        yield np.full((720, 1280, 3), 90, np.uint8)
    if isinstance(error, BaseException):
        raise error
    yield error


@pytest.mark.parametrize(
    ("bad", "text"),
    [(ValueError("camera file vanished"), "camera file vanished"), (np.zeros((4, 4), np.uint8), "HxWx3")],
    ids=["raises", "wrong-shape"],
)
def test_a_source_that_fails_midway_is_an_error_event_and_ends_cleanly(
    nothing_left: None, bad: Any, text: str
) -> None:
    errors: list[DecartNBError] = []
    states: list[str] = []
    s = Session(source=frames_then(bad), engine=identity)
    s.on("error", errors.append)
    s.on("connection_change", states.append)
    s.connect()
    assert wait_until(lambda: s.state == "disconnected", timeout=10)
    assert wait_until(lambda: bool(errors), timeout=5), "the source's failure was swallowed"
    assert errors[0].code == ErrorCode.SOURCE_ERROR and text in errors[0].message
    assert wait_until(lambda: states[-1:] == ["disconnected"], timeout=5)
    assert wait_until(loop_released, timeout=5)


@pytest.mark.timeout(40)
def test_a_slow_iterator_source_does_not_stall_other_sessions(nothing_left: None) -> None:
    """A generator that blocks (a device read, a slow decoder) must not block the media loop."""

    def slow_frames() -> Iterator[np.ndarray]:
        frame = np.full((720, 1280, 3), 60, np.uint8)
        for _ in range(12):  # about 2 s, then the source ends by itself
            time.sleep(0.15)
            yield frame

    with Session(source="pattern", engine=identity) as fast, Session(source=slow_frames()) as slow:
        assert wait_until(lambda: slow.state == "generating", timeout=10)
        before = frames_out(fast)
        time.sleep(1.0)
        made = frames_out(fast) - before
    assert made >= 15, made  # 30 at 30 fps; a blocked loop gives a handful


# -- memory, many sessions, exit ---------------------------------------------------------------


def test_thousands_of_set_calls_and_snapshots_do_not_grow_memory(session: Session) -> None:
    tracemalloc.start()
    try:
        for i in range(300):
            session.set_prompt(f"warm {i % 7}")
        base = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            session.set_prompt(f"prompt {i % 7}")
        after_sets = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            session.snapshot()
        after_snaps = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    mb = 1024 * 1024
    # A frame is ~1.4 MB and a few are in flight at any time; a leak of a frame per call would be GBs.
    assert after_sets - base < 12 * mb, (after_sets - base) / mb
    assert after_snaps - base < 24 * mb, (after_snaps - base) / mb
    assert session.generation.version >= 2300
    assert keeps_streaming(session)


def test_five_sessions_at_once_then_all_disconnected_stop_the_loop(nothing_left: None) -> None:
    sessions = [Session(source="pattern", engine=identity) for _ in range(5)]
    failures: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    def all_at_once(method: str) -> None:
        threads = [threading.Thread(target=run, args=(getattr(s, method),)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    all_at_once("connect")
    assert not failures, failures
    assert all(wait_until(lambda s=s: s.state == "generating", timeout=15) for s in sessions)
    assert all(s.snapshot(timeout=10).size == (1280, 720) for s in sessions)
    all_at_once("disconnect")
    assert not failures, failures
    assert all(s.state == "disconnected" for s in sessions)
    assert wait_until(loop_released, timeout=5)


def test_the_interpreter_exits_promptly_with_a_live_headless_session() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, ".")
        from decart_nb import Session

        def slowish(frame, state):
            time.sleep(0.3)  # exit arrives while the model is busy
            return frame

        s = Session(source="pattern", engine=slowish, prompt="x")
        s.connect()
        s.on("generation_tick", lambda tick: None)
        s.snapshot(timeout=20)
        print("live", flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert "live" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert took < 20, took


@pytest.mark.webrtc
def test_the_interpreter_exits_promptly_with_a_live_camera_peer() -> None:
    """The client never closes: the kernel's peer (whose decoder thread is not a daemon) is still
    connected when the interpreter exits."""
    script = textwrap.dedent(
        """
        import asyncio, sys, time
        sys.path.insert(0, ".")
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from decart_nb import Session
        from decart_nb.media.sources import PatternTrack

        session = Session(source="camera", prompt="noir")

        async def main():
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver(PatternTrack(640, 360, 30), direction="sendonly")  # no client decoder
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.to_thread(session.answer, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            end = time.monotonic() + 20
            while session.stats.get("frames_out", 0) < 10 and time.monotonic() < end:
                await asyncio.sleep(0.05)
            print("frames", session.stats.get("frames_out", 0), flush=True)

        asyncio.run(main())
        """
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    frames = int(done.stdout.split()[-1])
    assert frames >= 10, done.stdout
    assert took < 20, (took, done.stderr)
    assert "Traceback" not in done.stderr and "failed" not in done.stdout, (done.stdout, done.stderr)
