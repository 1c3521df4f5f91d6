"""Coalesce bursts of changes (keystrokes, slider scrubs) into one call, off the comm thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Debouncer"]


class Debouncer:
    """`schedule()` runs `fn` once, `delay` seconds after the last call; `flush()` runs it now.

    `fn` always runs in a short-lived timer thread, never on the caller's (comm) thread, because it
    waits for the engine's acknowledgement.
    """

    def __init__(self, fn: Callable[[], None], delay: float, name: str) -> None:
        self._fn = fn
        self._delay = delay
        self._name = name
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._timer is not None

    def schedule(self) -> None:
        self._start(self._delay)

    def flush(self) -> None:
        self._start(0.0)

    def cancel(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cancel()

    def _start(self, delay: float) -> None:
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            timer = threading.Timer(delay, self._fire)
            timer.daemon = True
            timer.name = self._name
            self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # superseded by a later schedule() between firing and taking the lock
            self._timer = None
        self._fn()
