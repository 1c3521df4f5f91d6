"""What handing a frame to another process costs on this host (docs/performance.md, target 9).

    python -m bench.handoff [--rounds 300]

A comparison arm's model in a process of its own would avoid the GIL (bench/model_contention.py)
but pay for the hand-off. This measures its parts, paced like frames at 30 fps and back to back:
a message's round trip to a child process over a socket pair (the child on the same CPU, then on
the other), and copying a 1280x720 yuv420p frame into shared memory and out into a new frame.
Medians in microseconds. Linux only (memfd, CPU affinity). Run it under the bench lock.
"""

from __future__ import annotations

import argparse
import mmap
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import av
import numpy as np

from decart_nb.media.frames import plane_view

__all__ = ["copy_in", "copy_out", "main", "median_us"]

GAPS_MS = (0.0, 5.0, 33.0)  # back to back, a short idle, one frame at 30 fps
W, H = 1280, 720


def median_us(step: Callable[[], object], rounds: int, gap_ms: float) -> float:
    """Median wall time of `step` in us, each call after `gap_ms` of sleep."""
    times = []
    for _ in range(rounds):
        if gap_ms:
            time.sleep(gap_ms / 1000)
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def copy_in(frame: av.VideoFrame, shared: mmap.mmap) -> None:
    """The frame's three planes, packed one after the other, into `shared`."""
    offset = 0
    for plane in frame.planes:
        view = plane_view(plane)
        np.copyto(np.frombuffer(shared, np.uint8, view.size, offset).reshape(view.shape), view)
        offset += view.size


def copy_out(shared: mmap.mmap) -> av.VideoFrame:
    """A new 1280x720 yuv420p frame from packed planes in `shared` (what the arm would send on)."""
    out, offset = av.VideoFrame(W, H, "yuv420p"), 0
    for plane in out.planes:
        view = plane_view(plane)
        np.copyto(view, np.frombuffer(shared, np.uint8, view.size, offset).reshape(view.shape))
        offset += view.size
    return out


def _child(fd: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        conn.send(message)


def _round_trips(rounds: int, own_cpu: int, child_cpu: int) -> list[float]:
    ours, theirs = socket.socketpair()
    args = [sys.executable, "-m", "bench.handoff", "--child", str(theirs.fileno()), str(child_cpu)]
    child = subprocess.Popen(args, pass_fds=(theirs.fileno(),))
    theirs.close()
    conn = Connection(ours.detach())
    try:
        os.sched_setaffinity(0, {own_cpu})
        message = ("frame", H, W)

        def ask() -> None:
            conn.send(message)
            conn.recv()

        ask()  # the child has loaded
        return [median_us(ask, rounds, gap) for gap in GAPS_MS]
    finally:
        conn.close()
        child.wait(timeout=10)


def _us(figures: list[float]) -> str:
    return " / ".join(f"{t:.0f}" for t in figures) + " us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.handoff", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    try:
        _measure(args.rounds, cpus)
    finally:
        os.sched_setaffinity(0, cpus)  # the caller's CPUs back (a test runs this in-process)
    return 0


def _measure(rounds: int, cpus: list[int]) -> None:
    gaps = " / ".join(f"{g:g} ms" for g in GAPS_MS)
    for name, child_cpu in (("same CPU", cpus[0]), ("other CPU", cpus[-1])):
        print(
            f"round trip, child on the {name}, after {gaps}: {_us(_round_trips(rounds, cpus[0], child_cpu))}"
        )
    noise = np.random.default_rng(0).integers(0, 256, (H * 3 // 2, W), np.uint8)  # no easy runs
    frame = av.VideoFrame.from_ndarray(noise, "yuv420p")
    memory = os.memfd_create("bench-handoff")
    try:
        os.ftruncate(memory, H * W * 3 // 2)
        with mmap.mmap(memory, H * W * 3 // 2) as shared:
            ins = [median_us(lambda: copy_in(frame, shared), rounds, g) for g in GAPS_MS]
            outs = [median_us(lambda: copy_out(shared), rounds, g) for g in GAPS_MS]
    finally:
        os.close(memory)
    print(f"720p frame into shared memory, after {gaps}: {_us(ins)}")
    print(f"720p frame out, into a new frame, after {gaps}: {_us(outs)}")


if __name__ == "__main__":
    raise SystemExit(main())
