"""EventHub and the output router: what a callback prints reaches the session's display (never the
cell that ended), other threads print as before, and recent() keeps what happened with its time."""

from __future__ import annotations

import io
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from decart_nb.callback_output import OutputBuffer, StreamName, capture
from decart_nb.errors import DecartNBError, ErrorCode
from decart_nb.events import RECENT_EVENTS, CallbackFailure, EventHub, GenerationTick
from tests.helpers import wait_until

Streams = Callable[[], tuple[io.StringIO, io.StringIO]]


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> Streams:
    """Call it first in the test: the ordinary streams (what the kernel's would be), restored
    after the test. (pytest puts its own back between a fixture's setup and the test.)"""

    def use() -> tuple[io.StringIO, io.StringIO]:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        return out, err

    return use


class Collected:
    """A sink: what it was given, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[StreamName, str]] = []

    def __call__(self, stream: StreamName, text: str) -> None:
        self.chunks.append((stream, text))

    def text(self, stream: StreamName = "stdout") -> str:
        return "".join(t for s, t in self.chunks if s == stream)


# -- the router ---------------------------------------------------------------------------------
def test_a_capturing_thread_prints_to_its_sink_and_the_main_thread_to_the_stream(
    streams: Streams,
) -> None:
    out, err = streams()
    sink = Collected()
    inside = threading.Event()
    main_printed = threading.Event()

    def callback_thread() -> None:
        with capture(sink):
            print("from the callback")
            inside.set()
            assert main_printed.wait(10)
            print("oops", file=sys.stderr)

    thread = threading.Thread(target=callback_thread)
    thread.start()
    assert inside.wait(10)
    print("from the cell")  # while the other thread captures
    main_printed.set()
    thread.join(10)
    print("after")
    assert sink.chunks == [
        ("stdout", "from the callback"),
        ("stdout", "\n"),
        ("stderr", "oops"),
        ("stderr", "\n"),
    ]
    assert out.getvalue() == "from the cell\nafter\n" and err.getvalue() == ""


def test_concurrent_captures_each_get_their_own_threads_output(
    streams: Streams,
) -> None:
    out, _ = streams()
    sinks = [Collected() for _ in range(4)]
    start = threading.Barrier(len(sinks) + 1)

    def run(index: int) -> None:
        with capture(sinks[index]):
            start.wait(10)
            for n in range(200):
                print(f"t{index}-{n}")

    def uncaptured() -> None:
        start.wait(10)
        for n in range(200):
            print(f"free-{n}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sinks))]
    threads.append(threading.Thread(target=uncaptured))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for index, sink in enumerate(sinks):
        assert sink.text() == "".join(f"t{index}-{n}\n" for n in range(200))
    assert out.getvalue() == "".join(f"free-{n}\n" for n in range(200))


def test_nested_captures_the_innermost_wins_then_the_outer_again(
    streams: Streams,
) -> None:
    out, _ = streams()
    outer, inner = Collected(), Collected()
    with capture(outer):
        print("a")
        with capture(inner):
            print("b")
        print("c")
    print("d")
    assert (outer.text(), inner.text(), out.getvalue()) == ("a\nc\n", "b\n", "d\n")


def test_a_stream_replaced_after_the_router_is_captured_too(streams: Streams) -> None:
    streams()
    with capture(Collected()):
        pass  # the router now wraps the fixture's stream
    replacement = io.StringIO()
    sys.stdout = replacement  # a redirect (contextlib.redirect_stdout, a tool) after that
    sink = Collected()
    with capture(sink):
        print("captured")
    print("to the replacement")
    assert sink.text() == "captured\n"
    assert replacement.getvalue() == "to the replacement\n"


def test_the_router_delegates_what_it_does_not_route(streams: Streams) -> None:
    out, _ = streams()
    sink = Collected()
    with capture(sink):  # installs the router over `out`
        print("routed")
    assert sink.text() == "routed\n"
    assert sys.stdout is not out  # the router
    assert sys.stdout.getvalue() == ""  # type: ignore[attr-defined]  # StringIO's own method
    sys.stdout.writelines(["x", "y\n"])
    assert out.getvalue() == "xy\n" and not sys.stdout.closed


def test_a_failing_sink_gives_the_text_to_the_stream_and_says_so(
    streams: Streams, caplog: pytest.LogCaptureFixture
) -> None:
    out, _ = streams()

    def broken(stream: StreamName, text: str) -> None:
        print("the sink's own print must not loop back")
        raise RuntimeError("the display went away")

    with caplog.at_level(logging.ERROR, logger="decart_nb"), capture(broken):
        print("kept")
    # print() writes "kept" and "\n": each fails in the sink, which printed first (no loop).
    sinks_line = "the sink's own print must not loop back\n"
    assert out.getvalue() == f"{sinks_line}kept{sinks_line}\n"
    assert "could not be shown" in caplog.text and "the display went away" in caplog.text


def test_the_buffer_keeps_order_merges_runs_and_flushes_when_large() -> None:
    given = Collected()
    buffer = OutputBuffer(given, flush_at=10)
    buffer.write("stdout", "ab")
    buffer.write("stdout", "c")
    buffer.write("stderr", "d")
    assert given.chunks == []
    buffer.write("stderr", "0123456789")  # over flush_at: handed on at once
    assert given.chunks == [("stdout", "abc"), ("stderr", "d0123456789")]
    buffer.write("stdout", "e")
    buffer.flush()
    assert given.chunks[-1] == ("stdout", "e")


# -- the hub: callbacks' output -----------------------------------------------------------------
class LogWatcher:
    """What the panel's event log is to the hub: a watcher that takes callback output."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, payload: Any) -> None:
        with self.lock:
            self.items.append((event, payload))

    def write_callback_output(self, stream: StreamName, text: str) -> None:
        with self.lock:
            self.items.append((stream, text))

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.items]


@pytest.fixture
def hub() -> Iterator[EventHub]:
    events = EventHub(name="test-events")
    yield events
    events.close()


def test_a_callbacks_print_goes_to_the_output_watcher_not_the_stream(hub: EventHub, streams: Streams) -> None:
    out, err = streams()
    log = LogWatcher()
    hub.watch(log)
    hub.on("connection_change", lambda state: print("state:", state))
    hub.emit("connection_change", "connected")
    assert wait_until(lambda: "stdout" in log.kinds())
    assert log.items == [("connection_change", "connected"), ("stdout", "state: connected\n")]
    assert out.getvalue() == err.getvalue() == ""


def test_without_an_output_watcher_a_callback_prints_to_the_stream(hub: EventHub, streams: Streams) -> None:
    out, _ = streams()
    plain: list[tuple[str, Any]] = []
    hub.watch(lambda event, payload: plain.append((event, payload)))  # a watcher without output
    hub.on("connection_change", lambda state: print("state:", state))
    hub.emit("connection_change", "connected")
    assert wait_until(lambda: "state: connected" in out.getvalue())
    assert plain == [("connection_change", "connected")]


def test_a_callbacks_output_comes_before_its_failure(hub: EventHub, streams: Streams) -> None:
    out, _ = streams()
    log = LogWatcher()
    hub.watch(log)

    def tripping(state: str) -> None:
        print("about to trip")
        print("warning", file=sys.stderr)
        raise ValueError(f"tripped on {state}")

    hub.on("connection_change", tripping)
    hub.emit("connection_change", "generating")
    assert wait_until(lambda: "callback_failure" in log.kinds())
    assert log.kinds() == ["connection_change", "stdout", "stderr", "callback_failure"]
    failure = log.items[-1][1]
    assert isinstance(failure, CallbackFailure) and failure.error == "ValueError: tripped on generating"
    assert "Traceback" in failure.traceback and "tripping" in failure.traceback
    assert "decart_nb/events.py" not in failure.traceback  # the user's frames, not the dispatcher's
    assert out.getvalue() == ""


def test_a_failing_output_watcher_leaves_the_text_on_the_stream(
    hub: EventHub, streams: Streams, caplog: pytest.LogCaptureFixture
) -> None:
    out, _ = streams()

    class Broken(LogWatcher):
        def write_callback_output(self, stream: StreamName, text: str) -> None:
            raise RuntimeError("closed")

    hub.watch(Broken())
    hub.on("connection_change", lambda state: print("state:", state))
    with caplog.at_level(logging.ERROR, logger="decart_nb"):
        hub.emit("connection_change", "connected")
        assert wait_until(lambda: "state: connected\n" in out.getvalue())
    assert "the event log failed" in caplog.text
    assert hub.failures == type(hub.failures)(maxlen=hub.failures.maxlen)  # not the callback's fault


def test_other_threads_print_as_before_while_a_callback_is_captured(hub: EventHub, streams: Streams) -> None:
    out, _ = streams()
    log = LogWatcher()
    hub.watch(log)
    running, go_on = threading.Event(), threading.Event()

    def slow(state: str) -> None:
        print("callback before")
        running.set()
        assert go_on.wait(10)
        print("callback after")

    hub.on("connection_change", slow)
    hub.emit("connection_change", "connected")
    assert running.wait(10)
    print("the cell prints meanwhile")
    go_on.set()
    assert wait_until(lambda: "stdout" in log.kinds())
    assert out.getvalue() == "the cell prints meanwhile\n"
    assert log.items[-1] == ("stdout", "callback before\ncallback after\n")


# -- the hub: recent() --------------------------------------------------------------------------
def test_recent_keeps_the_newest_events_bounded(hub: EventHub) -> None:
    for n in range(RECENT_EVENTS + 50):
        hub.emit("error", DecartNBError(ErrorCode.ENGINE_ERROR, f"e{n}"))
    hub.emit("stats", {"fps_in": 1.0})  # internal: not a user-visible event
    records = hub.recent()
    assert len(records) == RECENT_EVENTS
    assert [r.payload.message for r in records] == [f"e{n}" for n in range(50, RECENT_EVENTS + 50)]
    assert {r.name for r in records} == {"error"}
    assert all(a.at <= b.at for a, b in itertools.pairwise(records))


def test_recent_times_events_at_emit_so_held_ones_keep_their_time(hub: EventHub) -> None:
    delivered: list[float] = []
    hub.on("connection_change", lambda _: delivered.append(time.time()))
    hub.hold()
    before = time.time()
    hub.emit("connection_change", "connecting")
    emitted_by = time.time()
    time.sleep(0.05)
    released_at = time.time()
    hub.release()
    assert wait_until(lambda: len(delivered) == 1)
    (record,) = hub.recent()
    assert (record.name, record.payload) == ("connection_change", "connecting")
    assert before <= record.at <= emitted_by < released_at <= delivered[0]


def test_recent_lists_callback_failures_and_one_tick_per_run_of_ticks(hub: EventHub) -> None:
    hub.on("connection_change", lambda state: 1 / 0)
    hub.emit("connection_change", "generating")
    assert wait_until(lambda: len(hub.failures) == 1)
    for seconds in (1.0, 2.0, 3.0):
        hub.emit("generation_tick", GenerationTick(seconds))
    hub.emit("connection_change", "disconnected")
    assert wait_until(lambda: len(hub.failures) == 2)
    names = [(r.name, r.payload) for r in hub.recent()]
    assert names[0] == ("connection_change", "generating")
    assert names[1][0] == "callback_failure" and isinstance(names[1][1], CallbackFailure)
    assert names[2] == ("generation_tick", GenerationTick(3.0))
    assert names[3] == ("connection_change", "disconnected")
    assert names[4][0] == "callback_failure" and len(names) == 5
