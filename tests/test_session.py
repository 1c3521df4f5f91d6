"""The Session on headless sources: states, events, set() semantics, snapshots, recordings."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, GenerationTick, Session
from decart_nb.media.stamp import read_stamp
from decart_nb.session_port import port_of
from tests.helpers import mean_abs_diff, png_bytes, wait_until


@pytest.fixture
def session() -> Iterator[Session]:
    s = Session(source="pattern")
    s.connect()
    assert wait_until(lambda: s.state == "generating")
    yield s
    s.disconnect()


def frames_out(s: Session) -> int:
    return int(s.stats["frames_out"])


def test_headless_session_walks_decarts_states_and_ticks(no_leaked_threads: None) -> None:
    states: list[str] = []
    ticks: list[float] = []
    s = Session(source="pattern", prompt="noir")
    s.connect()
    # Registered after connect: the events raised during connect still arrive (held, then delivered).
    s.on("connectionChange", states.append)
    s.on("generationTick", lambda tick: ticks.append(tick.seconds))
    assert wait_until(lambda: len(ticks) >= 3, timeout=10)
    s.disconnect()
    assert states == ["connecting", "connected", "generating", "disconnected"]
    assert ticks[:3] == [1.0, 2.0, 3.0]
    assert s.state == "disconnected"


def test_ticks_come_about_once_a_second() -> None:
    arrivals: list[float] = []
    with Session(source="pattern") as s:
        s.on("generation_tick", lambda tick: arrivals.append(time.monotonic()))
        assert wait_until(lambda: len(arrivals) >= 4, timeout=12)
    gaps = np.diff(arrivals[1:])  # the first may be released from the connect hold
    assert np.all((gaps > 0.6) & (gaps < 1.6)), gaps


def test_output_is_the_model_size_and_rate(session: Session) -> None:
    time.sleep(1.5)
    stats = session.stats
    assert (stats["width"], stats["height"]) == (1280, 720)
    assert stats["fps_out"] >= 20  # 30 fps source; margin for a loaded 2-core machine
    assert stats["latency_ms_p50"] < 100
    for key in ("fps_in", "fps_out", "latency_ms_p50", "latency_ms_p95", "frames_dropped"):
        assert key in stats


def test_prompt_changes_the_picture_and_passthrough_does_not(session: Session) -> None:
    plain = session.snapshot()
    stamp_before = read_stamp(np.asarray(plain.convert("L")))
    session.set_prompt("pencil sketch")
    sketched = session.snapshot()
    assert mean_abs_diff(sketched.convert("L"), plain.convert("L")) > 10
    assert read_stamp(np.asarray(sketched.convert("L"))) != stamp_before  # a newer frame


def test_set_replaces_the_whole_state(session: Session) -> None:
    session.set(prompt="watercolor", image=png_bytes((250, 10, 10)))
    assert session.generation.prompt == "watercolor" and session.generation.image is not None
    session.set(prompt="anime")  # prompt-only: clears the reference image
    assert session.generation.image is None and session.generation.prompt == "anime"
    session.set_image(png_bytes((0, 0, 255)))  # image only: keeps the prompt
    assert session.generation.prompt == "anime" and session.generation.image is not None
    session.set_prompt("noir", enhance=False)  # prompt only: keeps the image
    assert session.generation.image is not None and session.generation.enhance is False
    session.set_image(None)
    assert session.generation.image is None and session.generation.prompt == "noir"
    session.set_image(png_bytes(), prompt="comic", enhance=False)
    assert (session.generation.prompt, session.generation.enhance) == ("comic", False)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set(),
        lambda s: s.set(prompt=""),
        lambda s: s.set(prompt="   \n\t"),
        lambda s: s.set_prompt(" "),
        lambda s: s.set(prompt="x" * 100_000),
        lambda s: s.set(image=b"definitely not a png"),
        lambda s: s.set_image(b"\x89PNG\r\n\x1a\n broken"),
        lambda s: s.set_controls(strength=7),
        lambda s: s.set_controls(no_such_knob=1),
    ],
)
def test_bad_input_is_invalid_and_leaves_state_and_stream_alone(session: Session, call: Any) -> None:
    session.set(prompt="thermal", image=png_bytes())
    before = session.generation
    count = frames_out(session)
    with pytest.raises(DecartNBError) as info:
        call(session)
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert session.generation is before
    assert wait_until(lambda: frames_out(session) > count + 5)
    assert session.state == "generating"


def test_snapshot_is_the_newest_output(session: Session) -> None:
    img = session.snapshot()
    newest = read_stamp(np.asarray(img.convert("L")))
    produced = frames_out(session)
    assert newest is not None
    # The pattern stamps frame numbers from 0; the snapshot is within a couple of frames of the head.
    assert produced - 3 <= newest + 1 <= produced + 3


def test_snapshot_waits_for_the_state_just_set() -> None:
    with Session(source="pattern", engine=slow_tinter(0.2)) as s:
        s.set_prompt("red please")
        img = np.asarray(s.snapshot(timeout=5))
        assert img[200:, :, 0].mean() > 200  # the tint of the new state, not an older frame


def slow_tinter(delay: float) -> Any:
    def tint(frame: np.ndarray, state: Any) -> np.ndarray:
        time.sleep(delay)
        out = frame.copy()
        if state.prompt:
            out[..., 0] = 255
        return out

    return tint


def test_record_writes_a_playable_mp4_of_the_right_size_and_duration(
    session: Session, tmp_path: Path
) -> None:
    path = session.record(tmp_path / "clip.mp4", 2.0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = float(frames[-1].pts * stream.time_base) + 1 / 30
    assert (frames[0].width, frames[0].height) == (1280, 720)
    assert 1.8 <= duration <= 2.3
    assert len(frames) >= 30  # >= 15 fps captured even on a loaded machine


def test_a_raising_callback_is_reported_and_does_not_stop_the_stream(session: Session) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("user bug")

    session.on("generation_tick", broken)
    assert wait_until(lambda: len(session.callback_failures) >= 1, timeout=5)
    failure = session.callback_failures[0]
    assert failure.event == "generation_tick" and "user bug" in failure.traceback
    count = frames_out(session)
    assert wait_until(lambda: frames_out(session) > count + 10)


def test_a_failing_engine_frame_is_an_error_event_and_passes_through() -> None:
    errors: list[DecartNBError] = []

    def flaky(frame: np.ndarray, state: Any) -> np.ndarray:
        if state.prompt == "explode":
            raise ValueError("model blew up")
        return frame

    with Session(source="pattern", engine=flaky) as s:
        s.on("error", errors.append)
        s.set_prompt("explode")
        assert wait_until(lambda: bool(errors), timeout=5)
        count = frames_out(s)
        assert wait_until(lambda: frames_out(s) > count + 5)
    assert errors[0].code == ErrorCode.ENGINE_ERROR and "model blew up" in errors[0].message


def test_a_slow_model_never_builds_a_backlog() -> None:
    """A 50 ms callable on a 30 fps source: latency stays bounded, the newest frame wins."""

    def fifty_ms(frame: np.ndarray, state: Any) -> np.ndarray:
        time.sleep(0.05)
        return frame

    with Session(source="pattern", engine=fifty_ms) as s:
        time.sleep(4)
        early = s.stats["latency_ms_p95"]
        time.sleep(16)
        late = s.stats
    assert late["frames_dropped"] > 100  # ~10 of every 30 frames dropped over 20 s
    assert late["latency_ms_p95"] < 250  # bounded: about one model time plus a frame
    assert late["latency_ms_p95"] < early + 60  # and not growing


def test_switch_model_rebuilds_at_the_new_size_and_keeps_the_state(session: Session) -> None:
    session.set(prompt="oil painting", image=png_bytes())
    states: list[str] = []
    session.on("connection_change", states.append)
    session.switch_model("lucy-restyle-2")
    assert session.model.height == 704
    assert session.snapshot().size == (1280, 704)
    assert session.generation.prompt == "oil painting" and session.generation.image is not None
    # (the connect-time events may be replayed first: registered within the hold window)
    assert wait_until(lambda: states[-3:] == ["connecting", "connected", "generating"])
    with pytest.raises(DecartNBError) as info:
        session.switch_model("lucy-99")
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert session.model.name == "lucy-restyle-2" and session.state == "generating"


def test_sources_video_file_image_and_arrays(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(15):
            arr = np.full((240, 320, 3), i * 15, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    still = tmp_path / "still.png"
    still.write_bytes(png_bytes((0, 128, 0), (200, 100)))
    arrays = (np.full((720, 1280, 3), 77, np.uint8) for _ in range(20))
    for source in (clip, str(still), arrays):
        with Session(source=source) as s:
            assert s.snapshot(timeout=10).size == (1280, 720)
            if source is clip:
                time.sleep(1.2)  # longer than the 0.5 s clip: it loops
                assert s.state == "generating"
    # A finite iterator ends the session by itself.
    with Session(source=iter([np.zeros((720, 1280, 3), np.uint8)] * 3)) as s:
        assert wait_until(lambda: s.state == "disconnected", timeout=5)


def test_bad_constructor_arguments_have_codes(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "nope"}, ErrorCode.MODEL_NOT_FOUND),
        ({"engine": "gpt"}, ErrorCode.INVALID_INPUT),
        ({"mirror": "sometimes"}, ErrorCode.INVALID_INPUT),
        ({"prompt": ""}, ErrorCode.INVALID_INPUT),
        ({"image": b"junk"}, ErrorCode.INVALID_INPUT),
        ({"controls": {"strength": 2}}, ErrorCode.INVALID_INPUT),
    ]
    for kwargs, code in cases:
        with pytest.raises(DecartNBError) as info:
            Session(source="pattern", **kwargs)
        assert info.value.code == code, kwargs
    with pytest.raises(DecartNBError) as info:
        Session(source=tmp_path / "missing.mp4").connect()
    assert info.value.code == ErrorCode.INVALID_INPUT


def test_methods_are_safe_from_many_threads(session: Session) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                session.set_prompt(f"prompt {i} {j}")
                session.stats  # noqa: B018
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert session.generation.version >= 21
    assert session.snapshot() is not None


def test_not_connected_calls_say_so() -> None:
    s = Session(source="pattern")
    s.set_prompt("noir")  # allowed: becomes the state applied at connect
    for call in (s.snapshot, lambda: s.record("x.mp4", 1)):
        with pytest.raises(DecartNBError) as info:
            call()
        assert info.value.code == ErrorCode.NOT_CONNECTED
    with s:
        assert s.generation.prompt == "noir"
        assert isinstance(s.snapshot(), object)


def test_tick_payload_has_seconds() -> None:
    assert GenerationTick(seconds=2.0).seconds == 2.0


def test_an_earlier_connects_hold_timer_does_not_release_a_later_hold() -> None:
    s = Session(source="pattern")
    s.connect()
    s.disconnect()
    time.sleep(0.5)
    s.connect()  # the first connect's release timer fires about 0.5 s from now
    time.sleep(0.75)  # past that timer, still within this connect's hold
    got: list[str] = []
    s.on("connection_change", got.append)
    assert wait_until(lambda: got[:3] == ["connecting", "connected", "generating"], timeout=5), got
    s.disconnect()


# -- what the session pushes to its listeners (widgets, panel) ------------------------------------
def test_stats_are_pushed_to_listeners_once_a_second_from_the_loop() -> None:
    seen: list[tuple[float, str, dict[str, Any]]] = []

    def listener(event: str, payload: Any) -> None:
        if event == "stats":
            seen.append((time.monotonic(), threading.current_thread().name, payload))

    s = Session(source="pattern")
    port_of(s).listen(listener)
    with s:
        assert wait_until(lambda: len(seen) >= 4 and seen[-1][2].get("frames_out", 0) > 0, timeout=15)
        assert set(s.stats) == set(seen[-1][2])  # the same figures as the blocking `stats`
    count = len(seen)
    assert {name for _, name, _ in seen} == {"decart_nb-loop"}
    gaps = np.diff([at for at, _, _ in seen])
    assert np.all((gaps > 0.6) & (gaps < 1.6)), gaps
    with s:  # a second connect pushes again; unlisten stops them
        assert wait_until(lambda: len(seen) > count, timeout=10)
        port_of(s).unlisten(listener)
        count = len(seen)
        arrivals: list[float] = []
        port_of(s).listen(lambda event, _: arrivals.append(time.monotonic()) if event == "stats" else None)
        assert wait_until(lambda: len(arrivals) >= 2, timeout=10)
    assert len(seen) == count


def test_a_state_set_from_a_cell_is_pushed_to_listeners() -> None:
    changes: list[Any] = []
    s = Session(source="pattern")
    port_of(s).listen(
        lambda event, payload: changes.append(payload) if event == "generation_change" else None
    )
    s.set_prompt("before connecting")  # kept for connect(), and said so at once
    assert [c.prompt for c in changes] == ["before connecting"]
    with s:
        s.set_prompt("anime")
        assert changes[-1].prompt == "anime" and changes[-1].version == s.generation.version
        with pytest.raises(DecartNBError):
            s.set_prompt("")  # refused: nothing to tell
        assert len(changes) == 2


def test_an_rgb_array_is_a_still_image_source() -> None:
    picture = np.zeros((720, 1280, 3), np.uint8)
    picture[:, :640] = (200, 40, 40)  # left half red
    with Session(source=picture, prompt="thermal") as session:
        shot = np.asarray(session.snapshot())
        assert shot.shape == (720, 1280, 3)
        left, right = shot[:, :600].mean(), shot[:, 680:].mean()
        assert left > right + 20  # the picture, through the model
        assert session.widget.mode == "receive"  # no camera to ask the page for


# -- wait_until, events, errors that say what to do (issue 18) ------------------------------------
def test_wait_until_generating_on_a_headless_session() -> None:
    with Session(source="pattern") as s:
        assert s.wait_until("generating", timeout=20) is None  # no second display from a last line
        assert s.state == "generating"
        s.wait_until("connected", timeout=0.01)  # generating counts as connected: at once
        s.wait_until("generating", timeout=0.01)  # already there: at once


def test_wait_until_times_out_with_what_to_try() -> None:
    with Session(source="camera") as s:  # no page: it stays connecting
        start = time.monotonic()
        with pytest.raises(DecartNBError) as info:
            s.wait_until("generating", timeout=0.3)
        assert time.monotonic() - start < 3
        assert info.value.code == ErrorCode.WAIT_TIMEOUT
        message = info.value.message
        assert "(state: connecting)" in message and "has not connected" in message, message
        assert "display(s)" in message and 'wait_until("generating")' in message, message


@pytest.mark.parametrize("state", ["live", "Generating", None, 3])
def test_wait_until_refuses_unknown_states(state: Any) -> None:
    s = Session(source="pattern")
    with pytest.raises(DecartNBError) as info:
        s.wait_until(state, timeout=1)
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert "generating" in info.value.message


def test_wait_until_fails_at_once_when_the_session_goes_away() -> None:
    s = Session(source="camera")
    s.connect()
    threading.Timer(0.3, s.disconnect).start()
    start = time.monotonic()
    with pytest.raises(DecartNBError) as info:
        s.wait_until("generating", timeout=30)
    assert info.value.code == ErrorCode.NOT_CONNECTED
    assert time.monotonic() - start < 10


def test_frame_timeout_while_connecting_says_the_page_has_not_connected() -> None:
    with Session(source="camera") as s:
        with pytest.raises(DecartNBError) as info:
            s.snapshot(timeout=0.2)
    assert info.value.code == ErrorCode.FRAME_TIMEOUT
    assert "has not connected" in info.value.message and "wait_until" in info.value.message


def test_session_events_are_the_last_events_with_their_times() -> None:
    before = time.time()
    with Session(source="pattern") as s:
        s.wait_until("generating", timeout=20)
        records = s.events
    changes = [(r.name, r.payload) for r in records if r.name == "connection_change"]
    assert changes == [
        ("connection_change", "connecting"),
        ("connection_change", "connected"),
        ("connection_change", "generating"),
    ]
    assert all(before <= r.at <= time.time() for r in records)


def test_a_widget_callback_that_sets_during_a_waiting_set_is_refused_not_deadlocked(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the kernel's main thread set() handles widget messages while it waits (ui_pump): a
    callback there calling set() again would wait for the lock its own thread holds."""
    from contextlib import nullcontext

    from decart_nb import ui_pump

    nested: list[BaseException] = []

    def poll() -> None:  # plays a widget message whose callback sets the prompt
        if not nested:
            try:
                session.set_prompt("from a callback")
            except RuntimeError as exc:
                nested.append(exc)

    monkeypatch.setattr(ui_pump, "_kernel_poller", lambda: nullcontext(poll))
    session.set_prompt("from the cell")
    assert session.generation.prompt == "from the cell"
    assert len(nested) == 1 and "widget callback" in str(nested[0])
    monkeypatch.undo()
    session.set_prompt("afterwards")  # the lock was let go
    assert session.generation.prompt == "afterwards"


# -- errors raised in cells reach the panel (call_error, for listeners only) -----------------------
def test_a_failed_call_from_a_cell_is_told_to_listeners_once_not_to_error_callbacks() -> None:
    heard: list[tuple[str, Any]] = []
    errors: list[Any] = []
    s = Session(source="pattern")
    port_of(s).listen(
        lambda event, payload: heard.append((event, payload)) if event == "call_error" else None
    )
    s.on("error", errors.append)
    with pytest.raises(DecartNBError) as bad_prompt:
        s.set_prompt("")
    with pytest.raises(DecartNBError) as bad_model:
        s.switch_model("no-such-model")
    with pytest.raises(DecartNBError) as not_live:
        s.snapshot()
    raised = [bad_prompt.value, bad_model.value, not_live.value]
    assert [payload for _, payload in heard] == raised  # the very errors, each once
    assert not_live.value.code == ErrorCode.NOT_CONNECTED
    assert not errors and not s.errors  # the caller got the exception: not an `error` event
    s.set_prompt("fine")
    assert len(heard) == 3


def test_a_views_own_failed_calls_are_not_told_as_call_errors() -> None:
    heard: list[Any] = []
    s = Session(source="pattern")
    port_of(s).listen(lambda event, payload: heard.append(payload) if event == "call_error" else None)
    with port_of(s).calls_from_view(), pytest.raises(DecartNBError):
        s.set_prompt("")  # the panel shows this one itself
    assert heard == []

    def from_another_thread() -> None:
        with pytest.raises(DecartNBError):
            s.set_prompt("")

    failed = threading.Thread(target=from_another_thread)
    failed.start()
    failed.join()
    assert len(heard) == 1  # another thread's call is not the view's
