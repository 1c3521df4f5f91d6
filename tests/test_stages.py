"""A staged engine's three steps run in three threads: the model never waits for a conversion."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, Session, _loop
from decart_nb.engines import FrameEngine
from decart_nb.media.frames import Planes, from_planes, to_planes
from decart_nb.state import GenerationState
from tests.helpers import wait_until


class Overlapping(FrameEngine):
    """Each step waits (bounded) for the neighbouring step to move on: it can only see that
    happen when the steps run at the same time."""

    name = "overlapping"
    staged = True
    skip_passthrough = False

    def __init__(self) -> None:
        super().__init__()
        self.prepared = 0
        self.inferred = 0
        self.prepare_during_infer = threading.Event()
        self.infer_during_finish = threading.Event()

    def prepare(self, frame: av.VideoFrame) -> Planes:
        self.prepared += 1
        return to_planes(frame)

    def infer(self, prepared: Planes, state: GenerationState) -> Planes:
        self.inferred += 1
        seen = self.prepared
        if wait_until(lambda: self.prepared > seen, timeout=2, every=0.005):
            self.prepare_during_infer.set()
        return prepared

    def finish(self, result: Planes, frame: av.VideoFrame) -> av.VideoFrame:
        seen = self.inferred
        if wait_until(lambda: self.inferred > seen, timeout=2, every=0.005):
            self.infer_during_finish.set()
        return from_planes(*result)


def test_prepare_infer_and_finish_overlap(no_leaked_threads: None) -> None:
    engine = Overlapping()
    with Session(source="pattern", engine=engine, prompt="go") as session:
        assert engine.prepare_during_infer.wait(10), "the next frame was not prepared while the model ran"
        assert engine.infer_during_finish.wait(10), "the model waited for the previous frame's finish"
        assert wait_until(lambda: session.stats["frames_out"] > 10)
        assert not session.errors


class FailsToPrepare(FrameEngine):
    name = "fails-to-prepare"
    staged = True

    def prepare(self, frame: av.VideoFrame) -> object:
        raise ValueError("no colour for you")

    def infer(self, prepared: object, state: GenerationState) -> object:
        raise AssertionError("infer must not run on a frame that failed to prepare")


def test_a_failing_step_passes_the_input_through_and_is_reported() -> None:
    errors: list[DecartNBError] = []
    with Session(source="pattern", engine=FailsToPrepare(), prompt="go") as session:
        session.on("error", errors.append)
        assert wait_until(lambda: bool(errors), timeout=10)
        assert errors[0].code == ErrorCode.ENGINE_ERROR and "no colour for you" in str(errors[0])
        assert wait_until(lambda: session.stats["frames_out"] > 10)
        assert session.snapshot().size == (1280, 720)
        assert len(session.errors) <= 3  # the same failure is not reported for every frame


def frames(count: int, then: threading.Event) -> Iterator[np.ndarray]:
    for i in range(count):
        yield np.full((720, 1280, 3), i % 250, np.uint8)
    then.wait(30)  # keep the session (and its stats) alive until the test has read them


def run_accounting(
    model: Callable[[np.ndarray, GenerationState], np.ndarray],
    release: threading.Event,
    before: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run 60 frames through `model`; the counts once every frame is out or dropped."""

    def accounted() -> bool:
        stats = session.stats
        return stats.get("frames_in") == 60 and stats["frames_out"] + stats["frames_dropped"] == 60

    with Session(source=frames(60, release), engine=model, prompt="go") as session:
        try:
            before()
            settled = wait_until(accounted, timeout=30)
            stats = session.stats
        finally:
            release.set()
    counts = {k: stats.get(k) for k in ("frames_in", "frames_out", "frames_dropped")}
    assert settled, counts
    return counts


@pytest.mark.parametrize("model_s", [0.0, 0.08])
def test_every_frame_in_comes_out_or_is_counted_as_dropped(model_s: float) -> None:
    """With three steps there are three places a frame can be dropped: all are counted."""
    release = threading.Event()

    def model(rgb: np.ndarray, state: GenerationState) -> np.ndarray:
        release.wait(model_s)
        return rgb

    counts = run_accounting(model, release)
    if model_s:
        assert counts["frames_dropped"] > 20, counts  # a 12 fps model behind a 30 fps source


def test_outputs_the_pipeline_had_no_time_to_take_are_counted_as_dropped() -> None:
    """The media loop stalls (a busy machine) while the model keeps finishing frames: the output
    slot keeps only the newest, and every frame it replaced is counted."""
    release, stalls = threading.Event(), threading.Semaphore(0)

    def model(rgb: np.ndarray, state: GenerationState) -> np.ndarray:
        if stalls.acquire(blocking=False):
            _loop.call_soon(time.sleep, 0.3)  # the loop thread is busy for 0.3 s
        return rgb

    def stall_five_times() -> None:
        for _ in range(5):
            stalls.release()

    run_accounting(model, release, stall_five_times)
