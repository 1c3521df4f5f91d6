"""The camera widget without a browser: what the kernel sends the page, and an aiortc peer that
plays the page (offers its camera through the widget's messages, receives the output)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import comm
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from comm.base_comm import BaseComm
from IPython.core.events import EventManager, available_events

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.figures import FIGURE_NAMES, figures
from decart_nb.media import stats as stats_module
from decart_nb.media.stamp import STAMP_ROWS, read_stamp, write_stamp
from decart_nb.media.stats import StreamStats
from decart_nb.session_port import port_of
from decart_nb.widgets import camera as camera_module
from decart_nb.widgets.camera import CAMERA_ADVICE, CameraWidget
from tests.helpers import wait_until


class RecordingComm(BaseComm):
    """A comm that keeps what the kernel sends instead of publishing it."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.binary: list[tuple[dict[str, Any], list[bytes]]] = []  # custom messages with buffers
        super().__init__(**kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        self.sent.append((msg_type, dict(data or {})))
        if buffers and (data or {}).get("method") == "custom":
            self.binary.append((data["content"], [bytes(b) for b in buffers]))

    # -- what a test looks at ---------------------------------------------------------------
    def from_page(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """Deliver a custom message as the page would (through the comm, like the kernel does)."""
        msg = {"content": {"data": {"method": "custom", "content": content}}, "buffers": buffers or []}
        self.handle_msg(msg)

    def custom(self, kind: str | None = None) -> list[dict[str, Any]]:
        msgs = [d["content"] for t, d in self.sent if t == "comm_msg" and d.get("method") == "custom"]
        return [m for m in msgs if kind is None or m.get("type") == kind]

    def updates(self, trait: str) -> list[Any]:
        return [
            d["state"][trait]
            for t, d in self.sent
            if t == "comm_msg" and d.get("method") == "update" and trait in d.get("state", {})
        ]

    def opened_state(self) -> dict[str, Any]:
        return next(d["state"] for t, d in self.sent if t == "comm_open")


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    made: list[RecordingComm] = []

    def create(**kwargs: Any) -> RecordingComm:
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create)
    return made


def comm_of(widget: CameraWidget, comms: list[RecordingComm]) -> RecordingComm:
    return next(c for c in comms if c.comm_id == widget.comm.comm_id)


@pytest.fixture
def camera(comms: list[RecordingComm]) -> Iterator[tuple[Session, CameraWidget, RecordingComm]]:
    s = Session(source="camera", mirror="auto")
    widget = s.widget
    yield s, widget, comm_of(widget, comms)
    widget.close()
    s.disconnect()


# -- messages -------------------------------------------------------------------------------------
def test_the_page_gets_the_models_constraints_and_the_shipped_module(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    state = rec.opened_state()
    assert (state["width"], state["height"], state["fps"]) == (1280, 720, 30)
    assert state["mode"] == "camera" and state["facing_mode"] == "user" and state["codec"] == "vp8"
    assert state["ice_server_count"] == 0  # no public STUN unless the user asks for one
    assert rec.custom("ice_servers") == []  # none to send
    assert state["mirror"] == "auto"
    assert state["keep_running_hidden"] is False
    assert state["transport"] == "auto"  # WebRTC, the comm when it does not connect
    # The ES module travels as a string (anywidget loads it from a Blob URL): no imports, no CDN.
    assert "RTCPeerConnection" in state["_esm"] and "getUserMedia" in state["_esm"]
    assert not re.search(r"^\s*import\b|\bimport\(|://", state["_esm"], re.M)
    assert s.state == "connecting"  # displayed: connected, waiting for the page's camera
    assert rec.updates("state")[-1] == "connecting" or state["state"] == "connecting"


def test_a_headless_session_shows_its_output_only() -> None:
    with Session(source="pattern") as s:
        assert s.widget.mode == "receive"
        s.widget.close()


def test_a_kernel_no_relay_started_offers_no_page_socket(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a kernel started by a server with decart_nb_server (which marks its environment)
    offers the page socket: elsewhere the page's websocket would be a 404 in its console."""
    from decart_nb.widgets.media_socket import RELAY_ENV

    monkeypatch.delenv(RELAY_ENV)
    s = Session(source="camera", ice_servers=["stun:stun.example.org"])
    try:
        rec = comm_of(s.widget, comms)
        assert rec.custom("ice_servers"), "the servers still come unasked"
        s.disconnect()
        s.connect()
        assert not rec.custom("media_socket")
        assert s.widget._media is None
    finally:
        s.widget.close()
        s.disconnect()


def test_the_relay_mark_is_the_one_the_server_extension_sets() -> None:
    import decart_nb_server
    from decart_nb.widgets.media_socket import RELAY_ENV

    assert decart_nb_server.RELAY_ENV == RELAY_ENV


def test_ice_servers_reach_the_page_in_the_browsers_shape(comms: list[RecordingComm]) -> None:
    """By a comm message, never in the state: with each offer of the page socket, at a reconnect
    and when the page asks; the state says only how many to wait for."""
    turn = {"urls": "turn:turn.example.org:3478", "username": "u", "credential": "c"}
    expected = [turn, {"urls": "stun:stun.example.org"}]
    s = Session(source="camera", ice_servers=[turn, "stun:stun.example.org"])
    try:
        rec = comm_of(s.widget, comms)
        state = rec.opened_state()
        assert state["ice_server_count"] == 2 and "ice_servers" not in state
        sent = rec.custom("ice_servers")
        assert sent and all(m["servers"] == expected for m in sent)
        kinds = [m["type"] for m in rec.custom() if m["type"] in ("ice_servers", "media_socket")]
        assert kinds[:2] == ["ice_servers", "media_socket"]  # the servers come with the socket's offer
        before = len(sent)
        rec.from_page({"type": "want_ice_servers"})
        assert len(rec.custom("ice_servers")) == before + 1
        s.disconnect()
        s.connect()
        kinds = [m["type"] for m in rec.custom() if m["type"] in ("ice_servers", "restart")]
        assert kinds[-2:] == ["ice_servers", "restart"]  # a reconnect's new peer has them first
    finally:
        s.disconnect()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("NotAllowedError", ErrorCode.CAMERA_PERMISSION_DENIED),
        ("NotFoundError", ErrorCode.CAMERA_NOT_FOUND),
        ("NotReadableError", ErrorCode.CAMERA_BUSY),
        ("OverconstrainedError", ErrorCode.CAMERA_OVERCONSTRAINED),
    ],
)
def test_camera_failures_are_error_events_with_their_code_and_advice(
    camera: tuple[Session, CameraWidget, RecordingComm], name: str, code: str
) -> None:
    s, _widget, rec = camera
    seen: list[DecartNBError] = []
    s.on("error", seen.append)
    rec.from_page({"type": "camera_error", "name": name, "message": "browser says no"})
    assert wait_until(lambda: len(seen) == 1, timeout=5)
    assert seen[0].code == code and s.errors[-1].code == code
    assert seen[0].data["browser_message"] == "browser says no"
    shown = rec.updates("error")[-1]
    assert shown["code"] == code and shown["message"] == CAMERA_ADVICE[code]
    assert s.state != "disconnected"  # the session stays up: the user can fix it and retry


def test_an_offer_is_answered_on_the_media_loop_without_blocking_the_handler(
    camera: tuple[Session, CameraWidget, RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, _widget, rec = camera
    threads: list[str] = []

    class AnsweredPeer:  # the peer answer_async made, as far as the widget uses it
        def __init__(self, answer_sdp: str) -> None:
            self.answer_sdp = answer_sdp

        async def close(self) -> None:
            pass

    async def slow_answer(sdp: str) -> AnsweredPeer:
        threads.append(threading.current_thread().name)
        await asyncio.sleep(0.5)
        return AnsweredPeer(f"answer to {sdp}")

    monkeypatch.setattr(port_of(s), "answer_async", slow_answer)
    start = time.perf_counter()
    rec.from_page({"type": "offer", "sdp": "v=0 offer", "attempt": 3})
    assert time.perf_counter() - start < 0.2  # the comm handler only hands off
    assert wait_until(lambda: bool(rec.custom("answer")), timeout=5)
    assert rec.custom("answer") == [{"type": "answer", "attempt": 3, "sdp": "answer to v=0 offer"}]
    assert threads == ["decart_nb-loop"]


def test_a_bad_offer_gets_an_answer_error_and_an_error_event(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    rec.from_page({"type": "offer", "sdp": "v=0\r\nm=video nonsense\r\n", "attempt": 1})
    assert wait_until(lambda: bool(rec.custom("answer_error")), timeout=5)
    error = rec.custom("answer_error")[0]["error"]
    assert error["code"] == ErrorCode.WEBRTC_SIGNALING_ERROR
    assert s.errors[-1].code == ErrorCode.WEBRTC_SIGNALING_ERROR


def test_an_offer_to_a_disconnected_session_says_how_to_restart(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    s.disconnect()
    assert rec.custom("stop") == [{"type": "stop"}]  # the page stops its camera
    assert rec.updates("state")[-1] == "disconnected"
    rec.from_page({"type": "offer", "sdp": "v=0", "attempt": 1})
    error = rec.custom("answer_error")[0]["error"]
    assert error["code"] == ErrorCode.NOT_CONNECTED and "connect()" in error["message"]
    s.connect()  # connecting again asks the page to start over
    assert rec.custom("restart")


def test_the_cameras_facing_mode_drives_mirror_auto(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, widget, rec = camera
    assert not s._core.mirror_now()
    rec.from_page({"type": "camera", "facingMode": "user", "label": "Front", "width": 1280, "height": 720})
    assert wait_until(s._core.mirror_now, timeout=5)
    rec.from_page({"type": "camera", "facingMode": "environment", "label": "Back"})
    assert wait_until(lambda: not s._core.mirror_now(), timeout=5)
    assert widget.camera["label"] == "Back"


def test_the_page_lists_cameras_and_a_choice_goes_back_as_a_trait(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    _s, widget, rec = camera
    cams = [{"deviceId": "a1", "label": "Front"}, {"deviceId": "b2", "label": "USB"}]
    rec.from_page({"type": "devices", "devices": cams})
    assert widget.devices == cams
    widget.choose_camera("b2")
    assert rec.updates("device_id")[-1] == "b2"  # the page swaps the sent track, same peer
    with pytest.raises(DecartNBError) as info:
        widget.choose_camera("nope")
    assert info.value.code == ErrorCode.INVALID_INPUT
    widget.facing_mode = "environment"  # a kind of camera replaces a camera chosen by id
    assert rec.updates("facing_mode")[-1] == "environment" and rec.updates("device_id")[-1] == ""


def test_the_page_reconnecting_makes_the_session_report_reconnecting(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    states: list[str] = []
    s.on("connection_change", states.append)
    rec.from_page({"type": "reconnecting", "attempt": 1})
    assert wait_until(lambda: s.state == "reconnecting", timeout=5)
    assert wait_until(lambda: "reconnecting" in states, timeout=5)
    assert rec.updates("state")[-1] == "reconnecting"


def test_the_page_stopping_its_camera_leaves_the_session_waiting_for_it(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    rec.from_page({"type": "stopped", "reason": "no view left"})  # the output was cleared
    assert wait_until(lambda: s.state == "reconnecting", timeout=5)  # a new view offers again


def test_the_codec_choice_reaches_the_page(comms: list[RecordingComm]) -> None:
    s = Session(source="camera", codec="h264")
    try:
        assert comm_of(s.widget, comms).opened_state()["codec"] == "h264"
    finally:
        s.disconnect()


def test_a_model_switch_sends_new_constraints_and_restarts_the_page(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    s.switch_model("lucy-restyle-2")
    assert rec.updates("height")[-1] == 704
    assert rec.custom("restart")


def test_figures_and_mirror_reach_the_page_as_plain_json(comms: list[RecordingComm]) -> None:
    """The figures, not the stats dict: the page shows them as they are and reads nothing else."""
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        assert "stats" not in rec.opened_state()

        def fps_out() -> str:
            sent = rec.updates("figures")
            return {name: value for name, value, _ in sent[-1]}.get("fps out", "–") if sent else "–"

        assert wait_until(lambda: fps_out() != "–", timeout=10)
        s.mirror = True
        assert wait_until(lambda: True in rec.updates("mirror"), timeout=5)
        s.widget.close()
    for _, data in rec.sent:
        json.dumps(data, allow_nan=False)  # NaN (no latency yet) would break the page's JSON.parse


def test_what_the_page_reports_lands_in_session_stats_and_junk_does_not(
    comms: list[RecordingComm],
) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        assert "page_fps_received" not in s.stats  # nothing reported yet
        rec.from_page(
            {
                "type": "page_stats",
                "fps_sent": 29.94,
                "fps_received": 30,
                "fps_decoded": float("nan"),
                "fps_presented": "28",
                "frames_dropped": True,
                "freezes": 0,
                "width": 1280,
                "height": [720],
            }
        )
        assert wait_until(lambda: "page_fps_received" in s.stats, timeout=5)
        page = {k: v for k, v in s.stats.items() if k.startswith("page_")}
        assert page == {
            "page_fps_sent": 29.9,
            "page_fps_received": 30.0,
            "page_fps_decoded": None,
            "page_fps_presented": None,
            "page_frames_dropped": None,
            "page_freezes": 0.0,
            "page_width": 1280.0,
            "page_height": None,
            "page_rtt_ms": None,  # WebRTC's figures: this page sent none
            "page_kbps_sent": None,
            "page_kbps_received": None,
        }


def test_the_status_line_gets_the_panels_figures_and_dashes_when_not_live(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        assert [name for name, _, _ in rec.opened_state()["figures"]] == list(FIGURE_NAMES)

        def live_figures() -> dict[str, str]:
            sent = rec.updates("figures")
            return {name: value for name, value, _ in sent[-1]} if sent else {}

        assert wait_until(lambda: live_figures().get("fps out", "–") != "–", timeout=10)
        live = s.stats
        s.disconnect()
        assert set(live_figures().values()) == {"–"}
        # A drop: the stats of a moment ago, then `reconnecting` (disconnected: no stats follow).
        s._core.events.emit("stats", live)
        assert live_figures()["fps out"] != "–"
        s._core.events.emit("connection_change", "reconnecting")
        assert set(live_figures().values()) == {"–"}
        s.widget.close()


def test_the_pages_camera_size_reaches_the_stats_beside_the_output(
    camera: tuple[Session, CameraWidget, RecordingComm],
) -> None:
    s, _widget, rec = camera
    rec.from_page({"type": "camera", "facingMode": "user", "label": "Front", "width": 1280, "height": 720})
    rec.from_page({"type": "transport", "transport": "webrtc", "codec": "vp8", "reason": ""})
    assert wait_until(lambda: s.stats.get("camera_width") == 1280, timeout=5), s.stats
    assert s.stats["camera_height"] == 720 and s.stats["transport"] == "webrtc"
    live = s.stats | {"state": "generating"}
    assert {f.name: f.value for f in figures(live)}["camera"] == "1280×720"


def test_the_widgets_error_clears_once_a_good_state_is_applied(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        widget = s.widget
        port_of(s).report_error(DecartNBError(ErrorCode.ENGINE_ERROR, "the model tripped"))
        assert widget.error["code"] == ErrorCode.ENGINE_ERROR
        s.set_prompt("a good state")  # generation_change: the error no longer holds
        assert widget.error == {}
        port_of(s).report_error(DecartNBError(ErrorCode.NOT_CONNECTED, "dropped"))
        s._core.events.emit("connection_change", "generating")  # generating again after it
        assert widget.error == {}
        widget.close()


def test_page_figures_go_stale_when_the_page_stops_reporting(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(stats_module.time, "perf_counter", lambda: clock[0])
    stats = StreamStats()
    stats.on_page({"fps_received": 30.0})
    assert stats.snapshot()["page_fps_received"] == 30.0
    clock[0] += 6.0  # three reports missed: the page went away
    assert "page_fps_received" not in stats.snapshot()


def test_the_api_key_never_reaches_the_page(comms: list[RecordingComm]) -> None:
    key = "sk-test-DO-NOT-SHIP-4242"
    s = Session(source="camera", api_key=key)
    try:
        rec = comm_of(s.widget, comms)
        rec.from_page({"type": "camera_error", "name": "NotAllowedError", "message": "x"})
        rec.from_page({"type": "offer", "sdp": "v=0", "attempt": 1})
        assert wait_until(lambda: bool(rec.custom("answer_error")), timeout=5)
    finally:
        s.disconnect()
    assert key not in json.dumps([d for _, d in rec.sent], default=str)


def test_closing_the_widget_closes_the_comm_and_leaves_no_thread(
    comms: list[RecordingComm], no_leaked_threads: None
) -> None:
    s = Session(source="camera")
    widget = s.widget
    rec = comm_of(widget, comms)
    widget.close()
    assert rec.sent[-1][0] == "comm_close"  # the page's model goes: it stops the camera and the peer
    assert s.state == "disconnected"  # a camera session ends with its camera
    assert s.widget is not widget  # displaying the session again makes a fresh widget
    s.widget.close()


# -- an aiortc peer playing the page ---------------------------------------------------------------
class StampedCamera(MediaStreamTrack):
    """A 1280x720 30 fps synthetic camera: a gradient with a moving bar, frame number stamped."""

    kind = "video"

    def __init__(self, width: int = 1280, height: int = 720, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._n = 0
        xs = np.linspace(40, 220, width, dtype=np.float32)
        self._y = np.repeat(xs[None, :], height, axis=0).astype(np.uint8)
        self._u = np.full((height // 2, width // 2), 90, np.uint8)
        self._v = np.full((height // 2, width // 2), 170, np.uint8)

    def frame_luma(self, n: int) -> np.ndarray:
        y = self._y.copy()
        x = (n * 16) % (self.width - 64)
        y[STAMP_ROWS:, x : x + 64] = 235
        write_stamp(y, n)
        return y

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.perf_counter()
        self._start = self._start or now
        due = self._start + self._n / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        y = self.frame_luma(self._n)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (y, self._u, self._v), strict=True):
            plane.update(np.ascontiguousarray(data))
        frame.pts, frame.time_base = self._n * 3000, Fraction(1, 90000)
        self._n += 1
        return frame


async def offer_through_widget(pc: RTCPeerConnection, rec: RecordingComm, attempt: int = 1) -> None:
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers before returning: no trickle
    rec.from_page({"type": "offer", "sdp": pc.localDescription.sdp, "attempt": attempt})
    for _ in range(300):
        answers = [m for m in rec.custom("answer") if m["attempt"] == attempt]
        if answers:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answers[0]["sdp"], type="answer"))
            return
        errors = rec.custom("answer_error")
        assert not errors, errors
        await asyncio.sleep(0.05)
    raise AssertionError("no answer from the widget")


@pytest.mark.webrtc
def test_a_peer_camera_reaches_the_kernel_at_720p_and_gets_transformed_video_back(
    comms: list[RecordingComm],
) -> None:
    s = Session(source="camera", prompt="pencil sketch", frame_stamps=True)
    rec = comm_of(s.widget, comms)
    source = StampedCamera()

    async def play_the_page() -> tuple[list[dict[str, Any]], list[float]]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(source, direction="sendrecv")
        received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        pc.on("track", lambda track: received.done() or received.set_result(track))
        try:
            await offer_through_widget(pc, rec)
            output = await asyncio.wait_for(received, 10)
            diffs = await compare_output(output, source, frames=20)
            samples = []
            for _ in range(6):  # the best of a few samples: the machine is shared
                await asyncio.sleep(1.0)
                samples.append(await asyncio.to_thread(lambda: s.stats))
            return samples, diffs
        finally:
            await pc.close()

    try:
        samples, diffs = asyncio.run(play_the_page())
    finally:
        s.widget.close()
        s.disconnect()
    last = samples[-1]
    assert (last["width"], last["height"]) == (1280, 720), last
    # Frames counted over the six seconds, not a rate: a CI run beside other work saw 18.6 fps
    # against a floor of 25; 30 fps at 720p is the bench's to measure.
    assert last["frames_in"] - samples[0]["frames_in"] >= 30, samples
    assert last["state"] == "generating"
    # The same frames, by stamp: the model's output differs from what the peer sent.
    assert len(diffs) >= 10 and float(np.median(diffs)) > 10, diffs


async def compare_output(output: MediaStreamTrack, source: StampedCamera, frames: int) -> list[float]:
    """Mean luma difference between output frames and the input frames with the same stamp."""
    diffs: list[float] = []
    for _ in range(frames * 5):
        frame = await asyncio.wait_for(output.recv(), 10)
        y = frame.to_ndarray(format="yuv420p")[: frame.height]
        n = read_stamp(y)
        if n is None:
            continue
        sent = source.frame_luma(n)
        diffs.append(float(np.abs(y[STAMP_ROWS:].astype(np.int16) - sent[STAMP_ROWS:]).mean()))
        if len(diffs) >= frames:
            break
    return diffs


@pytest.mark.webrtc
def test_a_receive_only_page_gets_a_headless_sessions_output(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)

        async def receive() -> tuple[int, int, int]:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")  # no camera
            received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
            pc.on("track", lambda track: received.done() or received.set_result(track))
            try:
                await offer_through_widget(pc, rec)
                track = await asyncio.wait_for(received, 10)
                count = 0
                for _ in range(10):
                    frame = await asyncio.wait_for(track.recv(), 10)
                    count += 1
                return frame.width, frame.height, count
            finally:
                await pc.close()

        width, height, count = asyncio.run(receive())
        s.widget.close()
    assert (width, height, count) == (1280, 720, 10)


# -- kernel_busy: the page knows when a cell runs --------------------------------------------------
class CellShell:
    """The part of IPython's shell the widget uses: its events (pre_run_cell, post_run_cell)."""

    def __init__(self) -> None:
        self.events = EventManager(self, available_events)

    def run_cell(self) -> None:
        self.events.trigger("pre_run_cell", None)
        self.events.trigger("post_run_cell", None)


def test_kernel_busy_follows_the_cells_and_the_widget_lets_go_of_them_on_close(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = CellShell()
    monkeypatch.setattr(camera_module, "_ipython", lambda: shell)
    s = Session(source="camera")
    widget = s.widget
    rec = comm_of(widget, comms)
    try:
        # Made on the main thread of a kernel: by a running cell.
        assert widget.kernel_busy is True and rec.opened_state()["kernel_busy"] is True
        shell.events.trigger("post_run_cell", None)
        assert widget.kernel_busy is False and rec.updates("kernel_busy")[-1] is False
        shell.events.trigger("pre_run_cell", None)
        assert widget.kernel_busy is True and rec.updates("kernel_busy")[-1] is True
        shell.run_cell()
        assert rec.updates("kernel_busy")[-2:] == [True, False]
    finally:
        widget.close()
        s.disconnect()
    assert not shell.events.callbacks["pre_run_cell"] and not shell.events.callbacks["post_run_cell"]
    shell.run_cell()  # a closed widget hears no cell
    assert widget.kernel_busy is False


def test_a_widget_made_off_a_kernel_or_off_the_main_thread_is_not_busy(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(source="camera") as s:  # no IPython here
        assert s.widget.kernel_busy is False
        s.widget.close()
    shell = CellShell()
    monkeypatch.setattr(camera_module, "_ipython", lambda: shell)
    made: list[CameraWidget] = []
    with Session(source="pattern") as s:
        thread = threading.Thread(target=lambda: made.append(s.widget), name="test-maker")
        thread.start()
        thread.join(10)
        assert made and made[0].kernel_busy is False
        made[0].close()


# -- the first display stays light (issue 24) ---------------------------------------------------
def _loads_more(widget: Any) -> str | None:
    """Why displaying `widget` makes JupyterLab fetch more than the widget's own code, or None.
    ipywidgets typesets a description (and a Checkbox's label, a Label's or HTMLMath's text) with
    JupyterLab's LaTeX typesetter, whose first use loads MathJax (~200 KB gzipped); an icon loads
    the icon font (~80 KB); an Output's HTML is typeset too (bench/first_visit.py's timeline)."""
    import ipywidgets as w

    buttons = (w.Button, w.ToggleButton, w.FileUpload)
    if isinstance(widget, (w.Checkbox, w.Label, w.HTMLMath)):
        return f"a {type(widget).__name__} (typeset)"
    if getattr(widget, "description", "") and not isinstance(widget, buttons):
        return f"{type(widget).__name__} description {widget.description!r} (typeset)"
    if getattr(widget, "icon", ""):
        return f"{type(widget).__name__} icon {widget.icon!r} (the icon font)"
    if isinstance(widget, w.Output) and any("text/html" in o.get("data", {}) for o in widget.outputs):
        return "an Output with HTML (typeset)"
    return None


def _all_widgets(widget: Any) -> list[Any]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found.extend(_all_widgets(child))
    return found


def test_the_panels_own_controls_load_no_mathjax_and_no_icon_font() -> None:
    s = Session(source="camera")
    panel = s.panel
    try:
        own = [
            panel.prompt_box,
            panel.enhance_box,
            panel.prompt_scrub,
            panel.sections["controls"],
            panel.image_row,
            panel.upload_message,
            panel.notice,
        ]
        found = {w: _loads_more(w) for part in own for w in _all_widgets(part)}
        assert panel.control_sliders and all(s in found for s in panel.control_sliders.values())
        assert not [why for why in found.values() if why], [why for why in found.values() if why]
    finally:
        panel.close()
        s.disconnect()


def test_the_whole_session_view_loads_no_mathjax_and_no_icon_font() -> None:
    from decart_nb.widgets.view import session_view

    s = Session(source="camera")
    view = session_view(s)
    try:
        s.panel.event_log("connection_change", "connecting")  # a line in the log, as at a display
        found = [why for w in _all_widgets(view) if (why := _loads_more(w))]
        assert not found, found
    finally:
        s.panel.close()
        s.disconnect()


def test_the_compare_view_loads_no_mathjax_and_no_icon_font() -> None:
    from decart_nb import compare
    from decart_nb.widgets.compare_view import compare_view

    cmp = compare([{"prompt": "anime"}, {"prompt": "film noir"}], source="pattern")
    view = compare_view(cmp)
    try:
        found = [why for w in _all_widgets(view) if (why := _loads_more(w))]
        assert not found, found
    finally:
        view.close()
        cmp.disconnect()
