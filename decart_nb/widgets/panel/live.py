"""The panel's live read-outs: badge, timer, stats line, the error list."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

from ...errors import DecartNBError

__all__ = [
    "STATES",
    "badge_html",
    "errors_html",
    "format_seconds",
    "link_html",
    "queue_text",
    "stats_html",
]


STATES = ("disconnected", "connecting", "connected", "generating", "reconnecting")
SHOWN_ERRORS = 5


def badge_html(state: str, camera_error: str | None = None, queue: Any = None) -> str:
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


def queue_text(queue: Any) -> str:
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
    ) + link_html(stats)


def link_html(stats: dict[str, Any]) -> str:
    """The page's link: "transport · kbps in/out · WxH" (the output's size), details on hover;
    "codec (media socket)" while the codec transport's chunks take the media socket."""
    transport = stats.get("transport")
    if not isinstance(transport, str) or not transport:
        return ""
    if stats.get("transport_pipe") == "socket":  # the codec transport's chunks skip the comm
        transport += " (media socket)"
    parts = [html.escape(transport)]
    kbps_in, kbps_out = stats.get("transport_kbps_in"), stats.get("transport_kbps_out")
    if isinstance(kbps_in, (int, float)) and isinstance(kbps_out, (int, float)):
        parts.append(f"{kbps_in:.0f}/{kbps_out:.0f} kbps")
    width, height = stats.get("transport_width_out"), stats.get("transport_height_out")
    if isinstance(width, int) and isinstance(height, int) and width and height:
        parts.append(f"{width}x{height}")
    details = ", ".join(_direction(stats, d) for d in ("in", "out") if f"transport_fps_{d}" in stats)
    title = f' title="{html.escape(details)}"' if details else ""
    return f'<span class="dnb-stat dnb-link"{title}><b>{" · ".join(parts)}</b><small>link</small></span>'


def errors_html(errors: Iterable[DecartNBError]) -> str:
    items = list(errors)[-SHOWN_ERRORS:][::-1]  # newest first
    if not items:
        return ""
    rows = "".join(f"<li><code>{html.escape(e.code)}</code> {html.escape(e.message)}</li>" for e in items)
    return f'<ul class="dnb-errors">{rows}</ul>'


def _direction(stats: dict[str, Any], direction: str) -> str:
    size = f"{stats.get(f'transport_width_{direction}')}x{stats.get(f'transport_height_{direction}')}"
    return f"{direction} {size} at {stats.get(f'transport_fps_{direction}')} fps"
