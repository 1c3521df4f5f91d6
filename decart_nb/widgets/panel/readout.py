"""The panel's live read-out: state badge, session timer, figures and the error list.

Kept current from the session's events (ControlPanel forwards them); widget updates only, so it
is cheap on any thread, the media loop included.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ...errors import DecartNBError
from ...events import GenerationTick
from .live import STATES, badge_html, errors_html, format_seconds, stats_html

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["Readout"]

logger = logging.getLogger("decart_nb")


class Readout:
    """`badge`, `timer`, `stats` (the figures) and `errors_box`, for one session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._errors: deque[DecartNBError] = deque(session.errors, maxlen=50)
        self._camera_error: str | None = None  # the code of a camera failure the session waits out
        self._queue: Any = None  # the newest queue_position event while Decart queues the session
        self.badge = w.HTML()
        self.timer = w.HTML(timer_html(0.0))
        self.stats = w.HTML(stats_html({}))
        self.stats.add_class("dnb-stats")
        self.errors_box = w.HTML()
        self.show_errors()

    def on_event(self, event: str, payload: Any) -> None:
        """One session event (see ControlPanel._on_event); returns at once."""
        if event == "connection_change":
            self.show_state(payload)
        elif event == "queue_position":
            self._queue = payload  # shown on the badge until the session leaves `connecting`
            self.show_state(self._session.state)
        elif event == "generation_tick" and isinstance(payload, GenerationTick):
            self.timer.value = timer_html(payload.seconds)
        elif event == "error" and isinstance(payload, DecartNBError):
            self.add_error(payload, logged=True)
            if payload.code.startswith("CAMERA_"):
                self._camera_error = payload.code
                self.show_state(self._session.state)
        elif event == "stats":
            self.stats.value = stats_html(payload)

    def show_state(self, state: str) -> None:
        with self._lock:
            if state != "connecting":  # the camera works now (or the session stopped waiting)
                self._camera_error = self._queue = None
            self.badge.value = badge_html(state, self._camera_error, self._queue)
            for other in STATES:
                self.badge.remove_class(f"dnb-state-{other}")
            self.badge.add_class(f"dnb-state-{state}")
            if state == "connecting":
                self.timer.value = timer_html(0.0)

    def add_error(self, error: DecartNBError, logged: bool = False) -> None:
        if not logged:
            logger.warning("decart_nb panel: %s", error)
        with self._lock:
            self._errors.append(error)
        self.show_errors()

    def show_errors(self) -> None:
        with self._lock:
            self.errors_box.value = errors_html(self._errors)


def timer_html(seconds: float) -> str:
    return f'<span class="dnb-timer" title="generation time">{format_seconds(seconds)}</span>'
