"""decart_nb/figures.py: the one definition of the figures the panel and the status line show."""

from __future__ import annotations

from typing import Any

import pytest

from decart_nb.figures import DASH, FIGURE_NAMES, figures

LIVE: dict[str, Any] = {
    "state": "generating",
    "fps_in": 30.04,
    "fps_out": 29.6,
    "latency_ms_p50": 4.12,
    "latency_ms_p95": 12.0,
    "model_ms_p50": 3.0,
    "frames_dropped": 3,
    "width": 1280,
    "height": 704,
    "camera_width": 1280,
    "camera_height": 720,
}
CODEC: dict[str, Any] = LIVE | {
    "transport": "codec",
    "pipe": "socket",
    "transport_kbps_in": 812.4,
    "transport_kbps_out": 455.6,
    "transport_width_out": 640,
    "transport_height_out": 352,
    "transport_fps_out": 30.0,
    "transport_width_in": 1280,
    "transport_height_in": 720,
    "transport_fps_in": 29.5,
    "transport_rtt_ms": 41.7,
    "transport_reason": "UDP blocked: WebRTC found no network path",
}
WEBRTC: dict[str, Any] = LIVE | {
    "transport": "webrtc",
    "page_fps_presented": 27.6,
    "page_width": 960,
    "page_height": 528,
    "page_rtt_ms": 0.4,
    "page_kbps_sent": 2100.0,
    "page_kbps_received": 1800.0,
}


def shown(stats: dict[str, Any]) -> dict[str, str]:
    return {f.name: f.value for f in figures(stats)}


def titles(stats: dict[str, Any]) -> dict[str, str]:
    return {f.name: f.title for f in figures(stats)}


def test_the_figures_name_both_sizes_and_every_rate() -> None:
    got = shown(WEBRTC)
    assert list(got) == list(FIGURE_NAMES)
    assert got == {
        "camera": "1280×720",
        "output": "960×528",  # what the page receives, not the camera's size
        "fps in": "30.0",
        "fps out": "29.6",
        "fps shown": "27.6",
        "kernel": "4.1 ms",
        "round trip": "0.4 ms",
        "link": "WebRTC · 2100/1800 kbps",
    }
    assert "1280×704" in titles(WEBRTC)["output"], "the title names the model's own size"
    assert "3 dropped" in titles(WEBRTC)["fps in"]
    assert "12 ms" in titles(WEBRTC)["kernel"]


def test_over_the_comm_the_output_is_the_size_sent_and_the_round_trip_the_acks() -> None:
    got, said = shown(CODEC), titles(CODEC)
    assert got["output"] == "640×352"
    assert got["round trip"] == "42 ms" and "send to ack" in said["round trip"]
    assert got["link"] == "media socket (VP8) · 812/456 kbps"
    assert shown(CODEC | {"pipe": "comm"})["link"] == "comm (VP8) · 812/456 kbps"
    assert "in: 1280×720 at 29.5 fps" in said["link"] and "UDP blocked" in said["link"]
    assert got["fps shown"] == DASH  # no page_stats yet


@pytest.mark.parametrize(
    ("stats", "why"),
    [
        (LIVE | {"transport": "jpeg"}, "JPEG transport does not measure"),
        (LIVE | {"transport": "webrtc"}, "not measured its round trip yet"),
        (LIVE, "no page link"),
    ],
)
def test_a_round_trip_that_cannot_be_measured_is_a_dash_that_says_why(
    stats: dict[str, Any], why: str
) -> None:
    assert shown(stats)["round trip"] == DASH
    assert why in titles(stats)["round trip"]


@pytest.mark.parametrize("state", ["disconnected", "connecting", "reconnecting", None])
def test_not_live_every_figure_is_a_dash(state: str | None) -> None:
    stats = WEBRTC | {"state": state}
    assert set(shown(stats).values()) == {DASH}
    assert list(shown(stats)) == list(FIGURE_NAMES)
    assert set(shown(WEBRTC | {"state": "connected"}).values()) != {DASH}
    assert set(shown({"fps_in": 30.0})) == set(FIGURE_NAMES)  # no state, not live


def test_junk_and_missing_figures_are_dashes() -> None:
    junk = {"state": "generating", "fps_in": float("nan"), "fps_out": True, "width": "1280", "height": None}
    got = shown(junk)
    assert got["fps in"] == got["fps out"] == got["output"] == got["camera"] == got["kernel"] == DASH
    assert got["link"] == DASH
