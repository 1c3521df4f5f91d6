"""What a lane's session reports as it connects and runs: the time it waited in the service's
queue, the time to its first output frame, and the billed generation seconds (Decart's ticks).

These are lane-level (one connect serves many items): the queue wait and the time to first frame
go on every row of the lane; the generation seconds are counted per item from the ticks that came
while it ran. Events arrive on the emitting thread (the media loop) through the session's port.
"""

from __future__ import annotations

import threading
import time

from ..events import GenerationTick
from ..session import Session

__all__ = ["LaneFigures"]


class LaneFigures:
    """One session's queue wait, time to first frame and billed seconds (see the module)."""

    def __init__(self, session: Session) -> None:
        # Only an engine that owns its connection state (Decart's cloud) reports the service's own
        # ticks and queue; the session's own clock ticks for the others, and bills nothing.
        self.billed = session.engine.owns_connection_state
        self._lock = threading.Lock()
        self._connect_at: float | None = None
        self._queued_at: float | None = None
        self._generating_at: float | None = None
        self._billed_s = 0.0  # the sum over server sessions (a reconnect's count starts again)
        self._last_tick = 0.0
        #: Seconds from Decart's first queue position to admission (connect() returning); 0 when
        #: the session was never queued; None when the lane did not connect it (sweep(session=)).
        self.queue_wait_s: float | None = None
        #: From connect() to the session's first output frame; None as queue_wait_s.
        self.time_to_first_frame_ms: float | None = None

    def watch(self, event: str, payload: object) -> None:
        """A port listener: any thread."""
        now = time.perf_counter()
        with self._lock:
            if event == "queue_position" and self._connect_at is not None and self.queue_wait_s is None:
                if self._queued_at is None:
                    self._queued_at = now
            elif event == "connection_change" and payload == "generating" and self._generating_at is None:
                self._generating_at = now
            elif event == "generation_tick" and isinstance(payload, GenerationTick) and self.billed:
                seconds = float(payload.seconds)
                # Ticks count up within one server session; a smaller one is a new session's.
                self._billed_s += seconds - self._last_tick if seconds >= self._last_tick else seconds
                self._last_tick = seconds

    def connecting(self) -> None:
        """The lane calls connect() now."""
        with self._lock:
            self._connect_at = time.perf_counter()

    def connected(self) -> None:
        """connect() returned: the session was admitted."""
        with self._lock:
            if self._connect_at is None:
                return
            queued = self._queued_at
            self.queue_wait_s = 0.0 if queued is None else round(time.perf_counter() - queued, 2)

    def first_frame(self) -> None:
        """The lane saw the session's first output frame (its first snapshot returned). For an
        engine without its own connection state the session turns `generating` at its first
        output frame exactly: that time is used when it came first."""
        with self._lock:
            if self._connect_at is None:
                return
            seen = time.perf_counter()
            if not self.billed and self._generating_at is not None:
                seen = min(seen, self._generating_at)
            self.time_to_first_frame_ms = round((seen - self._connect_at) * 1000.0, 1)

    def billed_seconds(self) -> float | None:
        """The generation seconds Decart has billed on this lane so far (None: not a billing engine)."""
        with self._lock:
            return self._billed_s if self.billed else None

    def row_figures(self, billed_before: float | None) -> dict[str, float | None]:
        """The lane's figures for one row; generation_s counts the ticks since `billed_before`."""
        now = self.billed_seconds()
        spent = None if now is None or billed_before is None else round(now - billed_before, 1)
        return {
            "generation_s": spent,
            "queue_wait_s": self.queue_wait_s,
            "time_to_first_frame_ms": self.time_to_first_frame_ms,
        }
