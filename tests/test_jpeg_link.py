"""The JPEG link (transport "jpeg") without a browser: JPEG frames injected as the page sends them (one custom
message with one binary buffer each), the kernel's answers read off a recording comm."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from decart_nb import ErrorCode, Session
from decart_nb.widgets import frame_link
from decart_nb.widgets.camera import CameraWidget
from tests.helpers import wait_until
from tests.test_widget import RecordingComm, comm_of, comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py


def camera_jpeg(width: int = 1280, height: int = 720, n: int = 0) -> bytes:
    """A camera-like picture (gradient, colour bars, a moving block) as the page's JPEG."""
    xs = np.linspace(30, 220, width, dtype=np.float32)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = xs[None, :]
    rgb[..., 1] = np.linspace(200, 40, height, dtype=np.float32)[:, None]
    rgb[..., 2] = ((np.arange(width) * 6 // width) % 3 * 90 + 20)[None, :]
    x = (n * 24) % (width - width // 8)
    rgb[height // 3 : height // 2, x : x + width // 8] = 250
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"))


class JpegPage:
    """Plays the page's side of the JPEG link on a recording comm."""

    def __init__(self, rec: RecordingComm) -> None:
        self.rec = rec
        self.seq = 0

    def use_jpeg(self) -> None:
        self.rec.from_page({"type": "transport", "transport": "jpeg"})

    def send_frame(self, jpeg: bytes) -> int:
        self.seq += 1
        self.rec.from_page({"type": "frame", "seq": self.seq}, [jpeg])
        return self.seq

    def acked(self) -> set[int]:
        return {m["seq"] for m in self.rec.custom("frame_ack")}

    def outputs(self) -> list[tuple[dict[str, Any], bytes]]:
        return [(c, b[0]) for c, b in list(self.rec.binary) if c.get("type") == "frame"]

    def ack(self, seq: int) -> None:
        self.rec.from_page({"type": "frame_ack", "seq": seq})

    def stream(self, seconds: float, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> int:
        """Send camera frames as the page does (the next after the kernel's ack) and ack every
        output frame; returns how many camera frames went out."""
        sent, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.monotonic()
            seq = self.send_frame(camera_jpeg(*size, n=sent))
            sent += 1
            assert wait_until(lambda seq=seq: seq in self.acked(), timeout=5), f"frame {seq} was never acked"
            self.ack_outputs()
            time.sleep(max(0.0, start + 1 / fps - time.monotonic()))
        return sent

    def ack_outputs(self) -> None:
        for content, _ in self.outputs()[-1:]:
            self.ack(content["seq"])


@pytest.fixture
def camera_page(comms: list[RecordingComm]) -> Iterator[tuple[Session, CameraWidget, JpegPage]]:
    s = Session(source="camera", prompt="pencil sketch")
    widget = s.widget
    widget.transport = "jpeg"
    page = JpegPage(comm_of(widget, comms))
    yield s, widget, page
    widget.close()
    s.disconnect()


def test_camera_frames_over_the_comm_come_back_as_transformed_jpeg(
    camera_page: tuple[Session, CameraWidget, JpegPage],
) -> None:
    s, widget, page = camera_page
    states: list[str] = []
    s.on("connection_change", states.append)
    assert page.rec.updates("transport")[-1] == "jpeg"  # the page reads the choice
    page.use_jpeg()
    assert widget.active_transport == "jpeg"
    page.stream(seconds=2.0)
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state
    assert states == ["connecting", "connected", "generating"], states
    stats = s.stats
    assert (stats["width"], stats["height"]) == (1280, 720), stats
    assert stats["frames_in"] >= 10, stats
    outputs = page.outputs()
    assert len(outputs) >= 5, len(outputs)
    content, jpeg = outputs[-1]
    out = decoded(jpeg)
    assert out.shape == (720, 1280, 3) and (content["width"], content["height"]) == (1280, 720)
    sent = decoded(camera_jpeg())
    assert float(np.abs(out.astype(np.int16) - sent).mean()) > 10, "the output is the camera, untransformed"
    assert float(out.std()) > 5, "the output is a flat picture"


def test_a_page_frame_of_another_size_is_scaled_to_the_models(
    camera_page: tuple[Session, CameraWidget, JpegPage],
) -> None:
    s, _widget, page = camera_page
    page.use_jpeg()
    page.stream(seconds=1.0, size=(640, 360))
    assert wait_until(lambda: s.stats["frames_out"] > 0, timeout=10)
    stats = s.stats
    assert (stats["width"], stats["height"]) == (1280, 720), stats


def test_a_frame_that_is_not_an_image_is_an_error_and_the_stream_goes_on(
    camera_page: tuple[Session, CameraWidget, JpegPage],
) -> None:
    s, _widget, page = camera_page
    page.use_jpeg()
    page.send_frame(b"not a jpeg")
    assert wait_until(lambda: bool(s.errors), timeout=5)
    assert s.errors[-1].code == ErrorCode.INVALID_INPUT
    page.stream(seconds=1.0)
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state


def test_only_one_output_frame_is_in_flight_until_the_page_acks(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        page = JpegPage(comm_of(s.widget, comms))
        page.use_jpeg()  # a headless session shows its output over the comm too (receive only)
        assert wait_until(lambda: len(page.outputs()) == 1, timeout=10)
        time.sleep(1.5)  # the pattern runs at 30 fps all along
        assert len(page.outputs()) == 1, "the kernel sent more frames than the page acknowledged"
        first = page.outputs()[0][0]["seq"]
        page.ack(first)
        assert wait_until(lambda: len(page.outputs()) == 2, timeout=5)
        # Acking every frame at once: the rate is capped at the model's fps.
        start, n0 = time.monotonic(), len(page.outputs())
        while time.monotonic() - start < 2.0:
            page.ack_outputs()
            time.sleep(0.005)
        rate = (len(page.outputs()) - n0) / (time.monotonic() - start)
        assert 3 <= rate <= s.model.fps * 1.2, rate
        s.widget.close()


def test_closing_the_widget_stops_sending_and_leaves_no_thread(
    comms: list[RecordingComm], no_leaked_threads: None
) -> None:
    before = set(threading.enumerate())  # an earlier test's dispatcher may still be winding down
    s = Session(source="camera")
    page = JpegPage(comm_of(s.widget, comms))
    page.use_jpeg()
    page.stream(seconds=1.0)
    assert wait_until(lambda: bool(page.outputs()), timeout=10)
    s.widget.close()
    assert s.state == "disconnected"
    count = len(page.outputs())
    time.sleep(0.5)
    assert len(page.outputs()) == count
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("decart_nb")]


def test_disconnect_stops_the_sender_of_a_headless_session(
    comms: list[RecordingComm], no_leaked_threads: None
) -> None:
    s = Session(source="pattern").connect()
    widget = s.widget
    page = JpegPage(comm_of(widget, comms))
    page.use_jpeg()
    assert wait_until(lambda: bool(page.outputs()), timeout=10)
    s.disconnect()
    assert page.rec.custom("stop")
    count = len(page.outputs())
    page.ack_outputs()
    time.sleep(0.5)
    assert len(page.outputs()) == count
    widget.close()


def test_a_model_switch_over_the_comm_feeds_the_new_pipeline(
    camera_page: tuple[Session, CameraWidget, JpegPage],
) -> None:
    s, _widget, page = camera_page
    page.use_jpeg()
    page.stream(seconds=1.0)
    s.switch_model("lucy-restyle-2")  # 1280x704: the page restarts and draws at the new size
    assert page.rec.custom("restart")
    page.use_jpeg()
    page.stream(seconds=1.5, size=(1280, 704))
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state
    assert wait_until(lambda: s.stats["height"] == 704, timeout=5), s.stats
    assert wait_until(lambda: page.outputs()[-1][0]["height"] == 704, timeout=5)
    assert decoded(page.outputs()[-1][1]).shape == (704, 1280, 3)


def test_a_lost_ack_only_delays_the_next_frame(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frame_link, "ACK_TIMEOUT_S", 0.5)
    with Session(source="pattern") as s:
        page = JpegPage(comm_of(s.widget, comms))
        page.use_jpeg()
        assert wait_until(lambda: len(page.outputs()) >= 3, timeout=10)  # never acked
        s.widget.close()


def test_a_page_back_on_webrtc_gets_no_more_comm_frames(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        page = JpegPage(comm_of(s.widget, comms))
        page.use_jpeg()
        assert wait_until(lambda: bool(page.outputs()), timeout=10)
        page.rec.from_page({"type": "transport", "transport": "webrtc"})
        assert s.widget.active_transport == "webrtc"
        time.sleep(0.3)  # a frame already on its way may still land
        count = len(page.outputs())
        for _ in range(10):
            page.ack_outputs()
            time.sleep(0.1)
        assert len(page.outputs()) == count
        s.widget.close()
