"""A service's queue as the user sees it (Decart's, today): the position, and how long the rest may take.

Decart's `queue_position` message says where the session stands (`position` of `queue_size`) and
nothing about time. decart_nb estimates the wait from how fast the position has moved since the
first message of the attempt: `expected_wait_s` is None until it has moved at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..events import QueuePosition

__all__ = ["QueueClock", "QueueWait"]


@dataclass(frozen=True)
class QueueWait(QueuePosition):
    """A `queue_position` event: Decart's position and queue size, plus decart_nb's estimate."""

    #: Seconds until the session starts at the pace the queue has moved so far (None: not moved yet).
    expected_wait_s: float | None = None
    #: Seconds spent in this queue so far (since the attempt's first position).
    waited_s: float = 0.0


class QueueClock:
    """Turns successive positions into QueueWait events; a position that goes up is a new
    attempt (the SDK's retry queues anew), and starts the clock again."""

    def __init__(self) -> None:
        self._first: tuple[float, int] | None = None
        self._last = 0

    def reset(self) -> None:
        self._first, self._last = None, 0

    def update(self, position: int, queue_size: int, now: float | None = None) -> QueueWait:
        now = time.monotonic() if now is None else now
        if self._first is None or position > self._last:
            self._first = (now, position)
        self._last = position
        started, first = self._first
        waited = now - started
        expected = None
        if position < first and waited > 0:
            per_place = waited / (first - position)
            expected = round(per_place * position, 1)
        return QueueWait(position=position, queue_size=queue_size, expected_wait_s=expected, waited_s=waited)
