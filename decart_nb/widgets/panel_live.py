"""The panel's live read-outs: badge, timer, stats line, error and callback-failure lists."""

from __future__ import annotations

import html
import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import DecartNBError
from ..events import CallbackFailure

__all__ = [
    "STATES",
    "StatsPoller",
    "badge_html",
    "errors_html",
    "failures_html",
    "format_seconds",
    "stats_html",
]

logger = logging.getLogger("decart_nb")

STATES = ("disconnected", "connecting", "connected", "generating", "reconnecting")
SHOWN_ERRORS = 5
SHOWN_FAILURES = 3


def badge_html(state: str, camera_error: str | None = None) -> str:
    """The state's badge; while connecting after a camera failure it says what it waits for."""
    text, title = state, ""
    if state == "connecting" and camera_error:
        text = f"{state}: no camera"
        title = f' title="waiting for a working camera ({html.escape(camera_error)})"'
    return f'<span class="dnb-badge dnb-badge-{html.escape(state)}"{title}><i></i>{html.escape(text)}</span>'


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else (f"{whole // 60}:{whole % 60:02d}")
    )


def stats_html(stats: dict[str, Any]) -> str:
    def num(key: str, unit: str = "") -> str:
        value = stats.get(key)
        if not isinstance(value, (int, float)) or math.isnan(value):
            return "–"
        return f"{value:.0f}{unit}" if unit == " ms" and value >= 10 else f"{value:.1f}{unit}"

    cells = (
        ("fps in", num("fps_in")),
        ("fps out", num("fps_out")),
        ("latency", num("latency_ms_p50", " ms")),
    )
    return "".join(
        f'<span class="dnb-stat"><b>{value}</b><small>{label}</small></span>' for label, value in cells
    )


def errors_html(errors: Iterable[DecartNBError]) -> str:
    items = list(errors)[-SHOWN_ERRORS:][::-1]  # newest first
    if not items:
        return ""
    rows = "".join(f"<li><code>{html.escape(e.code)}</code> {html.escape(e.message)}</li>" for e in items)
    return f'<ul class="dnb-errors">{rows}</ul>'


def failures_html(failures: Iterable[CallbackFailure]) -> str:
    items = list(failures)[-SHOWN_FAILURES:][::-1]
    if not items:
        return ""
    rows = "".join(_failure_html(f) for f in items)
    return f'<div class="dnb-failures">{rows}</div>'


def _failure_html(failure: CallbackFailure) -> str:
    event, callback = html.escape(failure.event), html.escape(failure.callback)
    summary = f"<code>{event}</code> callback <code>{callback}</code> raised {html.escape(failure.error)}"
    return f"<details><summary>{summary}</summary><pre>{html.escape(failure.traceback)}</pre></details>"


class StatsPoller:
    """Reads `session.stats` about once a second in one daemon thread, while running.

    A thread rather than a loop timer because `session.stats` is a blocking public call (it waits
    for the media loop), and the panel must go only through the public API.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        show: Callable[[dict[str, Any]], None],
        period: float = 1.0,
        name: str = "decart_nb-panel-stats",
    ) -> None:
        self._read, self._show, self._period, self._name = read, show, period, name
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling (no-op while running, and for good after close())."""
        with self._lock:  # decided and started under one lock: a racing stop/close sees it whole
            alive = self._thread is not None and self._thread.is_alive()
            if self._closed or (alive and self._stop is not None and not self._stop.is_set()):
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(stop,), name=self._name, daemon=True)
            self._stop, self._thread = stop, thread
            thread.start()

    def stop(self, join: float = 0.0) -> None:
        with self._lock:
            stop, thread = self._stop, self._thread
        if stop is not None:
            stop.set()
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(join)

    def close(self, join: float = 2.0) -> None:
        """Stop for good: a state change racing the panel's close cannot restart it."""
        with self._lock:
            self._closed = True
        self.stop(join)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._show(self._read())
            except Exception as exc:  # noqa: BLE001 - logged; the poller stops, the panel says so
                if not stop.is_set():
                    logger.warning("decart_nb: the panel stopped reading stats: %r", exc)
                return
            stop.wait(self._period)
