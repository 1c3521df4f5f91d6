"""Counted warnings: a neighbour's flood (connections, junk frames) must not flood the log.

Each event is counted by what happened; one warning says how many of each since the last one, at
most once per `every` seconds (the first at once, so a user sees that something happens), and
`flush()` says what is left (a listener that closes).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["WarningTally"]

logger = logging.getLogger("decart_nb")


class WarningTally:
    def __init__(self, subject: str, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._subject = subject
        self._every = every
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._last = float("-inf")

    def add(self, what: str) -> None:
        self._counts[what] += 1
        if self._clock() - self._last >= self._every:
            self.flush()

    def flush(self) -> None:
        if not self._counts:
            return
        self._last = self._clock()
        said = ", ".join(f"{n} {what}" for what, n in self._counts.items())
        self._counts.clear()
        logger.warning(
            "decart_nb: %s: %s (counted: at most one warning per %g s)", self._subject, said, self._every
        )
