"""The panel's live read-out: state badge, session timer, figures and the error list.

Kept current from the session's events (ControlPanel forwards them); widget updates only, so it
is cheap on any thread, the media loop included. The figures are decart_nb/figures.py's, the ones
the video's status line shows: dashes and a reset timer whenever the session is not live. The
error list takes the session's `error` events and the errors cells' calls raised (`call_error`);
once a good state is applied (a `generation_change`, or the session generating again) the errors
before it stay listed, dimmed and marked resolved, so a person sees they no longer hold.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

import ipywidgets as w

from ...errors import DecartNBError
from ...events import GenerationTick, QueuePosition
from ...figures import figures, is_live
from .live import STATES, badge_html, errors_html, figures_html, format_seconds

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["Readout"]

logger = logging.getLogger("decart_nb")

MAX_ERRORS = 50  # kept; the list shows the newest few (live.SHOWN_ERRORS)


class Readout:
    """`badge`, `timer`, `stats` (the figures) and `errors_box`, for one session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        # (error, resolved): resolved once a good state followed it
        self._errors: deque[tuple[DecartNBError, bool]] = deque(
            ((e, False) for e in session.errors), maxlen=MAX_ERRORS
        )
        self._camera_error: str | None = None  # the code of a camera failure the session waits out
        self._queue: QueuePosition | None = None  # the newest queue_position while Decart queues
        self.badge = w.HTML()
        self.timer = w.HTML(timer_html(0.0))
        self.stats = w.HTML(figures_html(figures({}, live=False)))
        self.stats.add_class("dnb-stats")
        self.errors_box = w.HTML()
        self.show_errors()

    def on_event(self, event: str, payload: object) -> None:
        """One session event (see ControlPanel._on_event); returns at once."""
        if event == "connection_change":
            self.show_state(str(payload))
            if payload == "generating":  # generating again after an error: the error is over
                self.resolve_errors()
        elif event == "generation_change":  # a state was applied: what failed before is over
            self.resolve_errors()
        elif event == "call_error" and isinstance(payload, DecartNBError):
            self.add_error(payload, logged=True)  # the cell that called got the exception
        elif event == "queue_position" and isinstance(payload, QueuePosition):
            self._queue = payload  # shown on the badge until the session leaves `connecting`
            self.show_state(self._session.state)
        elif event == "generation_tick" and isinstance(payload, GenerationTick):
            self.timer.value = timer_html(payload.seconds)
        elif event == "error" and isinstance(payload, DecartNBError):
            self.add_error(payload, logged=True)
            if payload.code.startswith("CAMERA_"):
                self._camera_error = payload.code
                self.show_state(self._session.state)
        elif event == "stats" and isinstance(payload, dict):
            self.stats.value = figures_html(figures(payload))

    def show_state(self, state: str) -> None:
        with self._lock:
            if state != "connecting":  # the camera works now (or the session stopped waiting)
                self._camera_error = self._queue = None
            self.badge.value = badge_html(state, self._camera_error, self._queue)
            for other in STATES:
                self.badge.remove_class(f"dnb-state-{other}")
            self.badge.add_class(f"dnb-state-{state}")
            if not is_live(state):  # no figure or time of an earlier connection reads as current
                self.timer.value = timer_html(0.0)
                self.stats.value = figures_html(figures({}, live=False))

    def add_error(self, error: DecartNBError, logged: bool = False) -> None:
        if not logged:
            logger.warning("decart_nb panel: %s", error)
        with self._lock:
            if any(listed is error for listed, _ in self._errors):
                return  # one failure reported twice (an event and the call that raised it)
            self._errors.append((error, False))
        self.show_errors()

    def resolve_errors(self) -> None:
        """A good state was applied: the errors listed so far are marked resolved."""
        with self._lock:
            if all(resolved for _, resolved in self._errors):
                return
            self._errors = deque(((e, True) for e, _ in self._errors), maxlen=MAX_ERRORS)
        self.show_errors()

    def show_errors(self) -> None:
        with self._lock:
            self.errors_box.value = errors_html(self._errors)


def timer_html(seconds: float) -> str:
    return f'<span class="dnb-timer" title="generation time">{format_seconds(seconds)}</span>'
