"""The "busy machine" mode: one CPU-bound process per core, for the whole run.

Started and killed by the bench itself. They are killed when the `with` block ends in any way
(normal exit, exception, Ctrl-C, SIGTERM turned into SystemExit by `main`), and the kernel
kills them (PR_SET_PDEATHSIG) if the bench process itself dies without running any Python.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BUSY_LOOP", "BUSY_NAME", "busy_processes", "cores", "exited", "raise_on_sigterm"]

BUSY_LOOP = "while 1: pass"
# argv[0] of the busy processes: other jobs on a shared machine stop their own
# `python -c "while True: pass"` loops by name; this name and loop keep ours out of such a kill.
BUSY_NAME = "decart-bench-busy"
_PR_SET_PDEATHSIG = 1


def cores() -> int:
    """The cores this process may run on (what the busy loops must fill)."""
    return len(os.sched_getaffinity(0))


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the bench's thread that started it dies.
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        os.write(2, b"bench: a busy process will outlive a SIGKILLed bench (prctl failed)\n")


@contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` processes spinning in a Python loop until the block ends (count 0: none)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [BUSY_NAME, "-S", "-c", BUSY_LOOP],
                    executable=sys.executable,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
            )
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def exited(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """Exit codes of the busy processes that stopped before the bench killed them (-N: signal N)."""
    return [code for code in (proc.poll() for proc in procs) if code is not None]


def raise_on_sigterm() -> None:
    """SIGTERM -> SystemExit, so `finally` blocks (the busy processes' kill) run."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
