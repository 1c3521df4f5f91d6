"""Route one thread's prints to a sink while it runs a user callback; other threads print as before.

A Jupyter front end drops the output a thread writes after its cell has ended, so a session's
callbacks (run on its event dispatcher thread) print where the user can see them only through a
sink of their own (the panel's event log). `capture(sink)` routes what the calling thread writes
to sys.stdout and sys.stderr to `sink(stream, text)` until it ends; every other thread's writes,
and everything outside a capture, go to the stream that was there before (the kernel's, a
terminal's). Routing is per thread, so it is deterministic however threads interleave.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Literal, TextIO

__all__ = ["OutputBuffer", "Sink", "StreamName", "capture"]

logger = logging.getLogger("decart_nb")

StreamName = Literal["stdout", "stderr"]
Sink = Callable[[StreamName, str], None]

_active = threading.local()  # .sinks: this thread's captures, innermost last
_install_lock = threading.Lock()


def _sinks() -> list[Sink]:
    sinks: list[Sink] | None = getattr(_active, "sinks", None)
    if sinks is None:
        sinks = _active.sinks = []
    return sinks


class _Router:
    """Stands in for sys.stdout or sys.stderr: a write from a capturing thread goes to its sink,
    any other write (and every other attribute) to the stream it wraps."""

    def __init__(self, wrapped: TextIO, name: StreamName) -> None:
        self._wrapped = wrapped
        self._name: StreamName = name

    @property
    def wrapped(self) -> TextIO:
        return self._wrapped

    def write(self, text: str) -> int:
        sinks = _sinks()
        if not sinks:
            return self._wrapped.write(text)
        sink = sinks.pop()  # while the sink runs, this thread's writes (a log line) go through
        try:
            sink(self._name, text)
        except Exception:
            logger.exception("decart_nb: a callback's output could not be shown; it goes to %s", self._name)
            self._wrapped.write(text)
        finally:
            sinks.append(sink)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not _sinks():
            self._wrapped.flush()

    def __getattr__(self, name: str) -> object:  # encoding, isatty, fileno, ipykernel's own methods
        return getattr(self._wrapped, name)


def _install() -> None:
    """Wrap sys.stdout and sys.stderr, once; again if something replaced them since (a redirect),
    so that a capture still sees the writes of its thread."""
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "stderr")


@contextmanager
def capture(sink: Sink) -> Iterator[None]:
    """Route what this thread writes to sys.stdout and sys.stderr to `sink` until the block ends
    (nested captures: the innermost wins)."""
    _install()
    sinks = _sinks()
    sinks.append(sink)
    try:
        yield
    finally:
        sinks.pop()


class OutputBuffer:
    """What one callback printed, in order, handed on in one piece when it returns (one update of
    the log per callback rather than one per write) or whenever `flush_at` characters wait."""

    def __init__(self, deliver: Sink, flush_at: int = 8192) -> None:
        self._deliver = deliver
        self._flush_at = flush_at
        self._chunks: list[tuple[StreamName, str]] = []
        self._size = 0

    def write(self, stream: StreamName, text: str) -> None:
        if self._chunks and self._chunks[-1][0] == stream:
            self._chunks[-1] = (stream, self._chunks[-1][1] + text)
        else:
            self._chunks.append((stream, text))
        self._size += len(text)
        if self._size >= self._flush_at:  # a chatty callback: bounded memory, output as it goes
            self.flush()

    def flush(self) -> None:
        chunks, self._chunks, self._size = self._chunks, [], 0
        for stream, text in chunks:
            self._deliver(stream, text)
