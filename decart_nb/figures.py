"""The live figures a person reads: one definition for the panel's read-out and the video's
status line, so both show the same numbers under the same names.

`figures(stats)` turns a `Session.stats` dict into an ordered list of `Figure`s (name, value
text, hover title). Whenever the session is not live (disconnected, connecting, reconnecting)
every value is a dash: a number left over from an earlier connection would read as current.
The panel renders the list as cells (panel/live.py), the camera widget sends it to its page as
the `figures` trait, which the page (js/src/figures.ts) shows as-is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DASH", "FIGURE_NAMES", "LIVE_STATES", "Figure", "figures", "is_live"]

DASH = "–"
LIVE_STATES = ("connected", "generating")
FIGURE_NAMES = (
    "camera",
    "output",
    "fps in",
    "fps out",
    "fps shown",
    "kernel",
    "round trip",
    "link",
)
# How the page's transport (webrtc, codec, jpeg; the codec link with its pipe, comm or socket) is
# named, as the status line's "via ..." says it (the page's TRANSPORT_TEXT). The labels are what
# users have always read, so they keep the older words ("comm (JPEG)").
_LINK_NAMES = {
    ("webrtc", None): "WebRTC",
    ("codec", "comm"): "comm (VP8)",
    ("codec", "socket"): "media socket (VP8)",
    ("jpeg", None): "comm (JPEG)",
}
_TRANSPORTS = ("webrtc", "codec", "jpeg")
_NOT_LIVE = "the session is not live: figures show while it is connected or generating"


@dataclass(frozen=True)
class Figure:
    """One figure: its name, its value as shown ("–" when unknown) and what it means."""

    name: str
    value: str
    title: str

    def as_list(self) -> list[str]:
        """[name, value, title], as the widget's `figures` trait carries it."""
        return [self.name, self.value, self.title]


def is_live(state: object) -> bool:
    return state in LIVE_STATES


def figures(stats: Mapping[str, object], live: bool | None = None) -> list[Figure]:
    """The figures, in FIGURE_NAMES order; `live` defaults to what `stats["state"]` says."""
    if live is None:
        live = is_live(stats.get("state"))
    if not live:
        return [Figure(name, DASH, _NOT_LIVE) for name in FIGURE_NAMES]
    return [
        _camera(stats),
        _output(stats),
        _fps("fps in", stats.get("fps_in"), _fps_in_title(stats)),
        _fps("fps out", stats.get("fps_out"), "output frames the model makes per second"),
        _fps(
            "fps shown",
            stats.get("page_fps_presented"),
            "output frames the page puts on screen per second",
            "no page reports what it shows (the page sends its figures every 2 s)",
        ),
        _kernel(stats),
        _round_trip(stats),
        _link(stats),
    ]


# -- one function per figure -----------------------------------------------------------------------
def _camera(stats: Mapping[str, object]) -> Figure:
    size = _size(stats.get("camera_width"), stats.get("camera_height"))
    if size is None:
        return Figure("camera", DASH, "no camera on the page: the source is not the page's camera")
    return Figure("camera", size, "the size the page's camera delivers")


def _output(stats: Mapping[str, object]) -> Figure:
    """What the page receives: WebRTC's decoded size, or the size the frame link sends (both
    may be scaled down from the model's output to fit the link)."""
    made = _size(stats.get("width"), stats.get("height"))
    made_text = f"; the model makes {made}" if made else ""
    received = _size(stats.get("page_width"), stats.get("page_height"))
    if stats.get("transport") in ("codec", "jpeg"):
        received = _size(stats.get("transport_width_out"), stats.get("transport_height_out"))
    if received is not None:
        return Figure("output", received, f"the output as the page receives it{made_text}")
    if made is not None:
        return Figure("output", made, "the model's output (no page reports what it receives)")
    return Figure("output", DASH, "no output frame yet")


def _fps_in_title(stats: Mapping[str, object]) -> str:
    title = "frames reaching the kernel per second"
    dropped = stats.get("frames_dropped")
    if _number(dropped) is not None:
        title += (
            f" ({dropped} dropped in the kernel so far: a frame newer than the model's next one replaces it)"
        )
    return title


def _fps(name: str, value: object, title: str, unknown: str = "not measured yet") -> Figure:
    number = _number(value)
    return Figure(name, DASH, unknown) if number is None else Figure(name, f"{number:.1f}", title)


def _kernel(stats: Mapping[str, object]) -> Figure:
    p50 = _number(stats.get("latency_ms_p50"))
    if p50 is None:
        return Figure("kernel", DASH, "no output frame yet")
    title = "a frame's time in the kernel, from its arrival to its output (median"
    if (p95 := _number(stats.get("latency_ms_p95"))) is not None:
        title += f"; 95% within {_ms(p95)}"
    if (model := _number(stats.get("model_ms_p50"))) is not None:
        title += f"; the model alone {_ms(model)}"
    return Figure("kernel", _ms(p50), title + ")")


def _round_trip(stats: Mapping[str, object]) -> Figure:
    transport = stats.get("transport")
    if transport == "webrtc":
        rtt = _number(stats.get("page_rtt_ms"))
        if rtt is None:
            return Figure("round trip", DASH, "WebRTC has not measured its round trip yet")
        return Figure(
            "round trip", _ms(rtt), "the network round trip of WebRTC's connection (its STUN checks)"
        )
    if transport == "codec":
        rtt = _number(stats.get("transport_rtt_ms"))
        if rtt is None:
            return Figure("round trip", DASH, "not measured yet: it is fitted from the output's acks")
        return Figure(
            "round trip",
            _ms(rtt),
            "from the output's VP8 chunks: the part of send to ack that does not depend on a chunk's "
            "size (the round trip through the Jupyter server, and the page's decode)",
        )
    if transport == "jpeg":
        return Figure("round trip", DASH, "the JPEG transport does not measure its round trip")
    return Figure("round trip", DASH, "no page link: a page measures the round trip")


def _link(stats: Mapping[str, object]) -> Figure:
    transport = stats.get("transport")
    if not isinstance(transport, str) or transport not in _TRANSPORTS:
        return Figure("link", DASH, "no page shows this session")
    pipe = ("socket" if stats.get("pipe") == "socket" else "comm") if transport == "codec" else None
    parts = [_LINK_NAMES[transport, pipe]]
    if transport == "webrtc":
        kbps_in, kbps_out = _number(stats.get("page_kbps_sent")), _number(stats.get("page_kbps_received"))
    else:
        kbps_in, kbps_out = _number(stats.get("transport_kbps_in")), _number(stats.get("transport_kbps_out"))
    if kbps_in is not None or kbps_out is not None:
        parts.append(f"{_kbps(kbps_in)}/{_kbps(kbps_out)} kbps")
    title = ["bitrate in (page to kernel) / out (kernel to page)"]
    title += [_direction(stats, d) for d in ("in", "out") if f"transport_fps_{d}" in stats]
    reason = stats.get("transport_reason")
    if isinstance(reason, str) and reason:
        title.append(f"not WebRTC: {reason}")
    return Figure("link", " · ".join(parts), "; ".join(title))


# -- formatting ------------------------------------------------------------------------------------
def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _size(width: object, height: object) -> str | None:
    w, h = _number(width), _number(height)
    return f"{w:.0f}×{h:.0f}" if w and h else None


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _kbps(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f}"


def _direction(stats: Mapping[str, object], direction: str) -> str:
    size = _size(stats.get(f"transport_width_{direction}"), stats.get(f"transport_height_{direction}"))
    return f"{direction}: {size or DASH} at {stats.get(f'transport_fps_{direction}')} fps"
