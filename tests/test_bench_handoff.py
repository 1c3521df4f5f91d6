"""bench/handoff.py: the frame survives the trip through shared memory, and a short run prints
each figure, leaves no child behind and gives the caller its CPUs back."""

from __future__ import annotations

import mmap
import os
import re

import av
import numpy as np
import pytest

from bench import handoff

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd and CPU affinity: Linux")


def test_a_frame_copied_in_and_out_keeps_every_pixel() -> None:
    rng = np.random.default_rng(1)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (1080, 1280), np.uint8), "yuv420p")
    memory = os.memfd_create("test-handoff")
    try:
        os.ftruncate(memory, 1280 * 1080)
        with mmap.mmap(memory, 1280 * 1080) as shared:
            handoff.copy_in(frame, shared)
            out = handoff.copy_out(shared)
    finally:
        os.close(memory)
    assert out is not frame and np.array_equal(out.to_ndarray(), frame.to_ndarray())


def _children() -> set[str]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as listing:
        return set(listing.read().split())


def test_a_short_run_prints_each_figure_and_leaves_nothing_behind(capsys: pytest.CaptureFixture[str]) -> None:
    cpus, before = os.sched_getaffinity(0), _children()
    assert handoff.main(["--rounds", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    for line in lines:
        figures = re.search(r": (\d+) / (\d+) / (\d+) us$", line)
        assert figures is not None and all(int(f) > 0 for f in figures.groups()), line
    assert os.sched_getaffinity(0) == cpus
    assert _children() <= before  # each child was waited for
