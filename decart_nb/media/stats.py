"""Live figures for `session.stats`, fed by the same timings the frames carry."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

__all__ = ["PAGE_STATS", "StreamStats"]

_WINDOW_S = 2.0
_LATENCY_SAMPLES = 300
_PAGE_FRESH_S = 5.0  # the page reports every 2 s: older figures are from a page that went away
#: What the camera widget's page reports (js/src/rtc_link.ts, samplePageStats), as `page_<name>`.
PAGE_STATS = (
    "fps_sent",
    "fps_received",
    "fps_decoded",
    "fps_presented",
    "frames_dropped",
    "freezes",
    "width",
    "height",
    "rtt_ms",  # WebRTC: the selected candidate pair's round trip (getStats currentRoundTripTime)
    "kbps_sent",  # WebRTC: the camera's bitrate out of the page
    "kbps_received",  # WebRTC: the output's bitrate into the page
)


class StreamStats:
    """Counters and rolling windows; written on the loop thread, read from any thread."""

    def __init__(self) -> None:
        self._in: deque[float] = deque(maxlen=512)
        self._out: deque[float] = deque(maxlen=512)
        self._latency: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._model: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.width = 0
        self.height = 0
        self._page: dict[str, float | None] = {}
        self._page_at = 0.0

    def on_input(self) -> None:
        self.frames_in += 1
        self._in.append(time.perf_counter())

    def on_drop(self) -> None:
        self.frames_dropped += 1

    def on_output(self, t_in: float, model_ms: float, width: int, height: int) -> None:
        now = time.perf_counter()
        self.frames_out += 1
        self._out.append(now)
        self._latency.append((now - t_in) * 1000.0)
        self._model.append(model_ms)
        self.width, self.height = width, height

    def on_page(self, figures: dict[str, float | None]) -> None:
        self._page = {f"page_{k}": figures.get(k) for k in PAGE_STATS}
        self._page_at = time.perf_counter()

    def snapshot(self) -> dict[str, float | int | None]:
        now = time.perf_counter()
        page = self._page if now - self._page_at <= _PAGE_FRESH_S else {}
        latency = np.array(self._latency) if self._latency else None
        model = np.array(self._model) if self._model else None
        return {
            "fps_in": _rate(self._in, now),
            "fps_out": _rate(self._out, now),
            "latency_ms_p50": _pct(latency, 50),
            "latency_ms_p95": _pct(latency, 95),
            "model_ms_p50": _pct(model, 50),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "width": self.width,
            "height": self.height,
        } | page


def _rate(times: deque[float], now: float) -> float:
    recent = [t for t in list(times) if now - t <= _WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    return round((len(recent) - 1) / span, 1) if span > 0 else 0.0


def _pct(values: np.ndarray | None, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values is not None else float("nan")
