"""The panel's live read-outs as HTML: badge, timer, the figures, the error list."""

from __future__ import annotations

import html
from collections.abc import Iterable

from ...errors import DecartNBError
from ...events import QueuePosition
from ...figures import Figure

__all__ = [
    "STATES",
    "badge_html",
    "errors_html",
    "figures_html",
    "format_seconds",
    "queue_text",
]


STATES = ("disconnected", "connecting", "connected", "generating", "reconnecting")
SHOWN_ERRORS = 5


def badge_html(state: str, camera_error: str | None = None, queue: QueuePosition | None = None) -> str:
    """The state's badge; while connecting after a camera failure it says what it waits for,
    and while Decart queues the session (`queue`: the newest queue_position event), the place
    and the expected wait."""
    text, title = state, ""
    if state == "connecting" and camera_error:
        text = f"{state}: no camera"
        title = f' title="waiting for a working camera ({html.escape(camera_error)})"'
    elif state == "connecting" and queue is not None:
        text, title = f"{state}: {queue_text(queue)}", ' title="waiting for capacity in Decart\'s queue"'
    return f'<span class="dnb-badge dnb-badge-{html.escape(state)}"{title}><i></i>{html.escape(text)}</span>'


def queue_text(queue: QueuePosition) -> str:
    """ "queue 3 of 9 · about 1:20" (the wait once the queue has moved: decart_nb's estimate)."""
    text = f"queue {queue.position} of {queue.queue_size}"
    wait = getattr(queue, "expected_wait_s", None)
    if isinstance(wait, (int, float)):
        text += f" · about {format_seconds(max(wait, 1.0))}"
    return text


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else (f"{whole // 60}:{whole % 60:02d}")
    )


def figures_html(shown: Iterable[Figure]) -> str:
    """The figures (decart_nb/figures.py) as cells: the value over its name, its meaning on hover."""
    return "".join(
        f'<span class="dnb-stat" data-figure="{html.escape(f.name)}" title="{html.escape(f.title)}">'
        f"<b>{html.escape(f.value)}</b><small>{html.escape(f.name)}</small></span>"
        for f in shown
    )


def errors_html(errors: Iterable[tuple[DecartNBError, bool]]) -> str:
    """The newest SHOWN_ERRORS of (error, resolved), newest first: a resolved one was followed by
    a good state, and is dimmed and labelled so."""
    items = list(errors)[-SHOWN_ERRORS:][::-1]
    if not items:
        return ""
    rows = "".join(_error_row(error, resolved) for error, resolved in items)
    return f'<ul class="dnb-errors">{rows}</ul>'


def _error_row(error: DecartNBError, resolved: bool) -> str:
    text = f"<code>{html.escape(error.code)}</code> {html.escape(error.message)}"
    if not resolved:
        return f"<li>{text}</li>"
    label = '<span class="dnb-resolved-label" title="a good state was applied since">resolved</span>'
    return f'<li class="dnb-error-resolved">{label} {text}</li>'
