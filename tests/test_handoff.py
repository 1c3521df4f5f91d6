"""Frames move through a comparison with no task to wake between the steps: the shared input's
slot hands each frame to the Fanout, the Fanout to every arm's input slot and on to the arm's
model thread, all in the step that read the frame; the model's output is published in the
callback that brings it to the loop, newest first. Each check runs within one step on the loop,
so it fails if any hop waits for a task (functional, not timed). Each arm's model thread runs on
a CPU of its own (checked by the CPUs the thread may use, not by time)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import av
import pytest

from decart_nb import Session, _loop
from decart_nb.arms import Arm
from decart_nb.comparison import compare
from decart_nb.engines import FrameEngine
from decart_nb.fanout import Fanout
from decart_nb.media.frames import FrameMeta, meta_of
from decart_nb.media.placement import ALL_CPUS, spread
from decart_nb.media.relay import InputSlot, PushTrack
from decart_nb.media.stats import StreamStats
from decart_nb.models import realtime
from decart_nb.pipeline import Pipeline
from decart_nb.state import GenerationState
from tests.helpers import wait_until


@pytest.fixture
def loop() -> Iterator[None]:
    _loop.acquire()
    try:
        yield
    finally:
        _loop.release()


def _frame(t_in: float = 123.0) -> av.VideoFrame:
    frame = av.VideoFrame(64, 48, "yuv420p")
    frame.opaque = FrameMeta(t_in=t_in)
    frame.pts = 3000
    return frame


def test_a_frame_reaches_every_arms_model_thread_in_the_step_that_read_it(loop: None) -> None:
    async def scenario() -> None:
        source = PushTrack()
        shared = InputSlot(StreamStats())
        fanout = Fanout()
        await fanout.start(shared)
        shared.attach(source)
        arms = [InputSlot(StreamStats()) for _ in range(3)]
        inboxes = [arm.hand_to_thread() for arm in arms]
        for arm in arms:
            arm.attach(fanout.tap())
        source.put(_frame())  # no await from here on: no task can run
        got = [inbox.take() for inbox in inboxes]
        assert all(isinstance(f, av.VideoFrame) for f in got), got
        assert len({id(f) for f in got}) == 3  # each arm its own frame
        assert all(meta_of(f).t_in == 123.0 for f in got if f is not None)  # one stamp
        assert fanout.frames == 1
        shared.stop()
        await fanout.stop()

    _loop.run(scenario(), timeout=10)


def test_when_an_arms_input_fails_the_other_arms_still_get_the_frame(loop: None) -> None:
    def broken() -> bool:
        raise RuntimeError("mirror failed")

    async def scenario() -> None:
        fanout = Fanout()
        bad, good = InputSlot(StreamStats(), broken), InputSlot(StreamStats())
        ended: list[object] = []
        bad.on_upstream_end = ended.append
        bad_tap = fanout.tap()
        bad.attach(bad_tap)
        good.attach(fanout.tap())
        inbox = good.hand_to_thread()
        fanout.deliver(_frame())
        assert inbox.take() is not None
        assert ended == [bad_tap] and isinstance(bad.error, RuntimeError)  # its pipeline ends, says why
        fanout.deliver(_frame(124.0))  # and the arm left keeps going
        taken = inbox.take()
        assert taken is not None and meta_of(taken).t_in == 124.0

    _loop.run(scenario(), timeout=10)


def test_an_ended_feed_ends_the_arm_that_reads_it(loop: None) -> None:
    async def scenario() -> None:
        fanout = Fanout()
        slot = InputSlot(StreamStats())
        ended: list[object] = []
        slot.on_upstream_end = ended.append
        tap = fanout.tap()
        slot.attach(tap)
        tap.stop()
        assert ended == [tap] and fanout.taps == 0

    _loop.run(scenario(), timeout=10)


def test_an_engines_output_is_published_in_the_step_that_hands_it_over(loop: None) -> None:
    class Handing(FrameEngine):
        """An engine whose output track the test fills itself."""

        def __init__(self) -> None:
            super().__init__()
            self.output = PushTrack()

        async def start(self, source: object) -> PushTrack:  # type: ignore[override]
            return self.output

    engine = Handing()
    ends: list[BaseException | None] = []
    pipeline = Pipeline(
        realtime("lucy-latest"),
        engine,
        "camera",
        mirror=lambda: False,
        on_frame=lambda: None,
        on_end=ends.append,
    )

    async def scenario() -> None:
        await pipeline.start()
        frame = _frame()
        engine.output.put(frame)
        assert pipeline.broadcast.latest is frame  # no task woke in between
        engine.output.stop()
        assert ends == [None]  # the output's end is the pipeline's, said once
        await pipeline.stop()
        assert ends == [None]

    _loop.run(scenario(), timeout=10)


class Counting(FrameEngine):
    name = "counting"
    skip_passthrough = False

    def __init__(self) -> None:
        super().__init__()
        self.done = 0

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        self.done += 1
        return frame


def test_outputs_made_while_the_loop_is_busy_publish_only_the_newest(loop: None) -> None:
    """The loop is busy while the model finishes three frames: the one callback that reaches
    the loop afterwards publishes the newest; the two it replaced are counted as dropped."""
    engine = Counting()
    stats = StreamStats()
    slot = InputSlot(stats)
    published: list[av.VideoFrame] = []

    async def start() -> None:
        output = await engine.start(slot)
        assert isinstance(output, PushTrack)
        output.connect(published.append, lambda: None)

    _loop.run(start(), timeout=10)
    inbox = slot.hand_to_thread()
    frames = [_frame(float(n)) for n in range(3)]
    finished = threading.Event()

    def busy() -> None:  # on the loop: nothing it was handed runs until this returns
        for n, frame in enumerate(frames, 1):
            inbox.put(frame)
            deadline = time.monotonic() + 10
            while engine.done < n and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(0.05)  # the last frame's hand-over to the loop
        finished.set()

    try:
        _loop.call_soon(busy)
        assert finished.wait(30)
        assert wait_until(lambda: len(published) >= 1 and stats.snapshot()["frames_dropped"] == 2, timeout=10)
        time.sleep(0.2)
        assert [meta_of(f).t_in for f in published] == [2.0]
    finally:
        _loop.run(engine.stop(), timeout=10)


# -- each arm's model on a CPU of its own ----------------------------------------------------------
def test_arms_are_spread_over_the_cpus_and_a_lone_session_is_not_placed() -> None:
    assert spread(1) == [None]
    if ALL_CPUS is None or len(ALL_CPUS) < 2:
        assert spread(3) == [None, None, None]
        return
    cpus = sorted(ALL_CPUS)
    assert spread(2) == [frozenset({cpus[0]}), frozenset({cpus[1]})]
    assert spread(len(cpus) + 1) == [None] * (len(cpus) + 1)  # never two arms pinned to one CPU


class Where(FrameEngine):
    """Records the CPUs its model thread may run on, frame by frame."""

    name = "where"
    skip_passthrough = False

    def __init__(self) -> None:
        super().__init__()
        self.cpus: list[frozenset[int]] = []

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        self.cpus.append(frozenset(os.sched_getaffinity(0)))
        return frame


@pytest.mark.skipif(ALL_CPUS is None or len(ALL_CPUS) < 2, reason="needs 2 CPUs and CPU affinity")
def test_each_arms_model_thread_runs_on_a_cpu_of_its_own() -> None:
    engines = [Where(), Where()]
    with compare([Arm(name="a", engine=engines[0]), Arm(name="b", engine=engines[1])], "pattern") as cmp:
        assert wait_until(lambda: all(len(e.cpus) >= 3 for e in engines), timeout=30)
        placed = [e.cpus[-1] for e in engines]
        assert all(len(p) == 1 for p in placed) and placed[0] != placed[1], placed
        cmp["b"].disconnect()  # one arm left: back on every CPU
        seen = len(engines[0].cpus)
        assert wait_until(lambda: len(engines[0].cpus) > seen + 2, timeout=30)
        assert engines[0].cpus[-1] == ALL_CPUS
    lone = Where()
    with Session(source="pattern", engine=lone, prompt="go"):
        assert wait_until(lambda: len(lone.cpus) >= 3, timeout=30)
    assert set(lone.cpus) == {ALL_CPUS}


def test_the_arms_stay_across_the_shared_inputs_reconnect() -> None:
    """Tearing the shared input's pipeline down (a reconnect) is not its source ending: the arms
    stay connected and take the frames of the new pipeline."""
    with compare([Arm(name="a"), Arm(name="b", prompt="anime")], "pattern") as cmp:
        assert wait_until(lambda: all(s.get("frames_out", 0) > 3 for s in cmp.stats.values()), timeout=30)
        cmp.input.disconnect()
        cmp.input.connect()
        time.sleep(0.3)  # any end the teardown set off has happened by now
        assert set(cmp.state.values()) == {"generating"}, cmp.state
        before = {name: s.get("frames_out", 0) for name, s in cmp.stats.items()}
        assert wait_until(
            lambda: all(cmp.stats[name].get("frames_out", 0) > n + 5 for name, n in before.items()),
            timeout=30,
        )
