"""The control panel without a browser: widget values are driven directly, as the page would."""

from __future__ import annotations

import html
import io
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import pytest
import traitlets
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.events import EventRecord, GenerationTick
from decart_nb.figures import FIGURE_NAMES
from decart_nb.session_port import port_of
from decart_nb.state import GenerationState
from decart_nb.widgets.camera import CameraWidget
from decart_nb.widgets.panel import ControlPanel
from decart_nb.widgets.panel import control as panel_module
from decart_nb.widgets.panel.event_log import LOG_ENTRIES, LOG_STREAM_CHARS, EventLog
from decart_nb.widgets.panel.live import STATES
from decart_nb.widgets.panel.presets import preset_prompts
from decart_nb.widgets.view import session_view
from tests.helpers import png_bytes, wait_until
from tests.test_codec_link import CodecPage
from tests.test_widget import RecordingComm, comm_of, comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py

SETTLE_S = 1.0  # longer than the debounce, with margin for a loaded machine


@dataclass
class Spy:
    """What the panel asked of the Session (set calls) and what the engine was given (apply)."""

    sets: list[dict[str, Any]] = field(default_factory=list)
    set_times: list[float] = field(default_factory=list)
    applied: list[GenerationState] = field(default_factory=list)

    def reset(self) -> None:
        self.sets.clear()
        self.set_times.clear()
        self.applied.clear()


def spy_on(session: Session) -> Spy:
    spy = Spy()
    real_set, real_apply = session.set, session.engine.apply

    def set_(*args: Any, **kwargs: Any) -> None:
        spy.sets.append(kwargs | dict(zip(("prompt", "image", "enhance"), args, strict=False)))
        spy.set_times.append(time.monotonic())
        real_set(*args, **kwargs)

    async def apply(state: GenerationState) -> None:
        spy.applied.append(state)
        await real_apply(state)

    session.set = set_  # type: ignore[method-assign]
    session.engine.apply = apply  # type: ignore[method-assign]
    return spy


@pytest.fixture
def live() -> Iterator[tuple[Session, ControlPanel, Spy]]:
    s = Session(source="pattern")
    s.connect()
    assert wait_until(lambda: s.state == "generating")
    panel = s.panel
    spy = spy_on(s)
    yield s, panel, spy
    panel.close()
    s.disconnect()


def image_bytes(
    fmt: str, color: tuple[int, int, int] = (20, 180, 60), size: tuple[int, int] = (80, 60)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def upload(panel: ControlPanel, data: bytes, name: str, mime: str) -> None:
    """What FileUpload receives when a person picks a file in the page."""
    item = {"name": name, "type": mime, "size": len(data), "content": memoryview(data), "last_modified": 0}
    panel.upload.set_state({"value": [item]})  # the path a message from the page takes


def press_enter(panel: ControlPanel) -> None:
    panel.prompt_box._handle_custom_msg({"event": "submit"}, [])  # the page's message on Enter


# -- the prompt ---------------------------------------------------------------------------------
def test_typing_sends_one_set_with_the_whole_state_after_the_pause(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    s, panel, spy = live
    upload(panel, image_bytes("PNG"), "ref.png", "image/png")
    assert wait_until(lambda: len(spy.sets) == 1)
    panel.enhance_box.value = False
    # Both sends acknowledged (spy.sets is appended before the engine gets the state).
    assert wait_until(lambda: len(spy.sets) == 2 and len(spy.applied) == 2)
    spy.reset()

    for text in ("p", "pe", "pen", "penc", "pencil sk", "pencil sketch"):
        panel.prompt_box.value = text
        time.sleep(0.02)
    typed_at = time.monotonic()
    time.sleep(SETTLE_S)

    assert len(spy.sets) == 1, spy.sets
    sent = spy.sets[0]
    assert sent["prompt"] == "pencil sketch" and sent["enhance"] is False
    assert isinstance(sent["image"], np.ndarray)  # the panel's image travels in the same call
    assert spy.set_times[0] - typed_at >= 0.25  # it waited for the pause in typing
    assert [(a.prompt, a.enhance, a.image is not None) for a in spy.applied] == [
        ("pencil sketch", False, True)
    ]
    assert s.generation.prompt == "pencil sketch" and s.generation.image is not None


def test_enter_sends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A debounce far longer than the test waits: only Enter can have sent the prompt.
    monkeypatch.setattr(panel_module, "PROMPT_DEBOUNCE_S", 30.0)
    s = Session(source="pattern").connect()
    try:
        panel = s.panel
        spy = spy_on(s)
        panel.prompt_box.value = "film noir"
        time.sleep(0.5)
        assert spy.sets == []
        press_enter(panel)
        assert wait_until(lambda: len(spy.sets) == 1, timeout=10)
        assert spy.sets[0]["prompt"] == "film noir"
        assert wait_until(lambda: s.generation.prompt == "film noir")
        time.sleep(0.5)
        assert len(spy.sets) == 1  # Enter replaced the pending send, it did not add one
        # The page may deliver the last keystrokes after Enter's message: they are sent at once.
        panel.prompt_box.value = "film noi"
        press_enter(panel)
        panel.prompt_box.value = "film noir, rain"
        assert wait_until(lambda: s.generation.prompt == "film noir, rain", timeout=10)
    finally:
        s.panel.close()
        s.disconnect()


def test_sending_the_state_the_session_holds_spends_no_version(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    """Two flushes in a row (the page's last keystroke, then Enter) both read the box: the second
    must not set an equal copy (with Decart's cloud that is a round trip, and a new version)."""
    s, panel, spy = live
    panel.prompt_box.value = "film noir"
    press_enter(panel)
    assert wait_until(lambda: s.generation.prompt == "film noir", timeout=10)
    held = s.generation
    panel._send_state()  # what the second flush runs
    assert s.generation is held and len(spy.sets) == 1
    panel.enhance_box.value = not held.enhance  # a real change still goes out
    press_enter(panel)
    assert wait_until(lambda: s.generation.enhance is not held.enhance, timeout=10)
    assert len(spy.sets) == 2


def test_an_empty_prompt_without_image_sends_nothing_and_says_why(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    s, panel, spy = live
    panel.prompt_box.value = "   "
    press_enter(panel)
    assert wait_until(lambda: "prompt" in panel.notice.value)
    assert spy.sets == [] and s.generation.prompt is None


def test_the_prompt_slider_scrubs_through_the_sessions_prompts() -> None:
    prompts = ["film noir", "pencil sketch", "anime"]
    s = Session(source="pattern", prompts=prompts).connect()
    try:
        panel = s.panel
        spy = spy_on(s)
        assert panel.prompt_slider.max == 2 and panel.prompt_scrub.layout.display != "none"
        panel.prompt_slider.value = 1
        panel.prompt_slider.value = 2
        assert panel.prompt_box.value == "anime"
        assert wait_until(lambda: s.generation.prompt == "anime")
        time.sleep(SETTLE_S)
        assert [c["prompt"] for c in spy.sets] == ["anime"]  # a scrub is one send, like typing
        assert "3/3" in panel.prompt_slider_label.value
    finally:
        s.panel.close()
        s.disconnect()
    # A session started on one of its prompts shows the slider at that prompt.
    s = Session(source="pattern", prompts=prompts, prompt="pencil sketch")
    try:
        assert s.panel.prompt_slider.value == 1 and "2/3" in s.panel.prompt_slider_label.value
    finally:
        s.panel.close()
        s.disconnect()


def test_presets_for_the_local_model_and_none_for_a_function() -> None:
    local = Session(source="pattern")
    assert len(preset_prompts(local)) >= 3
    assert local.panel.prompt_slider.max == len(local.panel.prompts) - 1
    own = Session(source="pattern", engine=lambda frame, state: frame)
    assert preset_prompts(own) == []
    assert own.panel.prompt_scrub.layout.display == "none"
    local.panel.close()
    own.panel.close()


def test_any_engine_offers_its_presets_by_declaring_them() -> None:
    """The panel asks the engine, not its name: a third-party engine's presets show too."""
    from decart_nb.engines import CallableEngine

    class Sketchy(CallableEngine):
        prompt_presets = ("charcoal", "ink wash")

    s = Session(source="pattern", engine=Sketchy(lambda frame, state: frame))
    try:
        assert preset_prompts(s) == ["charcoal", "ink wash"]
        assert s.panel.prompts == ["charcoal", "ink wash"] and s.panel.prompt_slider.max == 1
    finally:
        s.panel.close()


def test_a_control_slider_applies_through_set_controls(live: tuple[Session, ControlPanel, Spy]) -> None:
    s, panel, spy = live
    assert set(panel.control_sliders) == {c.name for c in s.engine.controls}
    slider = panel.control_sliders["strength"]
    assert (slider.min, slider.max, slider.value) == (0.0, 1.0, 1.0)
    slider.value = 0.35
    assert wait_until(lambda: s.controls["strength"] == pytest.approx(0.35))
    assert spy.applied[-1].controls["strength"] == pytest.approx(0.35)
    assert spy.sets == []  # controls do not resend prompt and image


# -- the reference image -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_a_valid_upload_is_previewed_and_sent_with_the_prompt(
    live: tuple[Session, ControlPanel, Spy], fmt: str, mime: str
) -> None:
    s, panel, spy = live
    panel.prompt_box.value = "watercolor"
    upload(panel, image_bytes(fmt, color=(200, 40, 40)), f"ref.{fmt.lower()}", mime)
    assert wait_until(lambda: len(spy.sets) == 1)
    assert spy.sets[0]["prompt"] == "watercolor" and spy.sets[0]["image"] is not None
    assert wait_until(lambda: s.generation.image is not None)
    assert s.generation.image.shape == (60, 80, 3)
    assert s.generation.image[..., 0].mean() > 150  # the red picture, not something else
    thumb = Image.open(io.BytesIO(panel.thumbnail.value))
    assert thumb.size == (80, 60) and panel.thumbnail.layout.display != "none"
    assert panel.upload_message.value == "" and not panel.clear_button.disabled
    time.sleep(SETTLE_S)
    assert len(spy.sets) == 1  # the pending prompt send was folded into the upload's send


@pytest.mark.parametrize(
    ("data", "name", "mime", "says"),
    [
        (b"\x89PNG\r\n\x1a\n this is not really a png", "broken.png", "image/png", "not a PNG, JPEG or WebP"),
        (image_bytes("GIF"), "anim.gif", "image/gif", "it is GIF"),
        (b"\xff\xd8" + b"\0" * (10 * 1024 * 1024 + 1), "huge.jpg", "image/jpeg", "the limit is 10 MB"),
    ],
    ids=["corrupt", "wrong-type", "oversized"],
)
def test_an_invalid_upload_is_explained_and_changes_nothing(
    live: tuple[Session, ControlPanel, Spy], data: bytes, name: str, mime: str, says: str
) -> None:
    s, panel, spy = live
    upload(panel, png_bytes((10, 10, 200)), "good.png", "image/png")
    assert wait_until(lambda: len(spy.sets) == 1 and s.generation.image is not None)
    good_thumb, version = panel.thumbnail.value, s.generation.version

    upload(panel, data, name, mime)
    time.sleep(SETTLE_S)
    assert ErrorCode.INVALID_INPUT in panel.upload_message.value and says in panel.upload_message.value
    assert len(spy.sets) == 1 and s.generation.version == version  # nothing was sent
    assert panel.thumbnail.value == good_thumb  # the previous image is still the panel's image
    assert s.generation.image[..., 2].mean() > 150


def test_clear_sends_the_prompt_alone_which_drops_the_image(live: tuple[Session, ControlPanel, Spy]) -> None:
    s, panel, spy = live
    panel.prompt_box.value = "anime"
    upload(panel, png_bytes(), "ref.png", "image/png")
    assert wait_until(lambda: s.generation.image is not None)
    panel.clear_button.click()
    assert wait_until(lambda: len(spy.sets) == 2)
    assert spy.sets[1]["prompt"] == "anime" and spy.sets[1]["image"] is None
    assert wait_until(lambda: s.generation.image is None)
    assert s.generation.prompt == "anime"
    assert panel.thumbnail.layout.display == "none" and panel.clear_button.disabled
    assert panel.no_image.layout.display != "none"


# -- live status -------------------------------------------------------------------------------
def test_the_badge_has_a_text_and_a_class_per_state() -> None:
    s = Session(source="pattern")
    panel = s.panel
    seen = {}
    for state in STATES:
        s._core.events.emit("connection_change", state)  # what the Session emits on each transition
        assert state in panel.badge.value
        classes = [c for c in panel.badge._dom_classes if c.startswith("dnb-state-")]
        assert classes == [f"dnb-state-{state}"]
        seen[state] = panel.badge.value
    assert len(set(seen.values())) == len(STATES)
    css = (Path(panel_module.__file__).parent.parent / "static" / "panel.css").read_text()
    for state in STATES:  # each state has its own look, from theme variables
        assert f".dnb-badge-{state} {{" in css
    assert "var(--jp-" in css
    panel.close()


def test_after_a_camera_failure_the_badge_says_the_session_waits_for_a_camera() -> None:
    s = Session(source="camera")
    panel = s.panel
    s.connect()  # a camera session waits for the page's offer: "connecting"
    try:
        assert wait_until(lambda: "connecting" in panel.badge.value)
        assert "no camera" not in panel.badge.value
        port_of(s).report_error(DecartNBError(ErrorCode.CAMERA_PERMISSION_DENIED, "denied"))
        assert wait_until(lambda: "connecting: no camera" in panel.badge.value)
        assert "CAMERA_PERMISSION_DENIED" in panel.badge.value  # the badge's title says why
        s._core.events.emit("connection_change", "connected")  # the camera worked on a retry
        assert wait_until(lambda: "no camera" not in panel.badge.value and "connected" in panel.badge.value)
    finally:
        panel.close()
        s.disconnect()


def test_while_decart_queues_the_badge_shows_the_place_and_the_expected_wait() -> None:
    from decart_nb.engines.queue import QueueClock

    s = Session(source="camera")  # a camera session waits for the page's offer: "connecting"
    panel = s.panel
    s.connect()
    clock = QueueClock()
    try:
        assert wait_until(lambda: "connecting" in panel.badge.value)
        s._core.events.emit(
            "queue_position", s._life.queue_clock.update(5, 9)
        )  # as the Decart engine's is told, at t=0 s
        assert wait_until(lambda: "connecting: queue 5 of 9<" in panel.badge.value)  # no wait known yet
        s._core.events.emit("queue_position", clock.update(5, 9, now=0.0))
        s._core.events.emit("queue_position", clock.update(3, 9, now=20.0))  # 10 s a place, 3 to go
        assert wait_until(lambda: "queue 3 of 9 · about 0:30" in panel.badge.value)
        assert "Decart" in panel.badge.value  # the title says what it waits for
        s._core.events.emit("connection_change", "connected")  # the session started: the queue is gone
        assert wait_until(lambda: "queue" not in panel.badge.value and "connected" in panel.badge.value)
    finally:
        panel.close()
        s.disconnect()


def test_the_panel_follows_a_real_session(no_leaked_threads: None) -> None:
    s = Session(source="pattern")
    panel = s.panel
    assert "disconnected" in panel.badge.value and panel.actions.snapshot_button.disabled
    s.connect()
    assert wait_until(lambda: "generating" in panel.badge.value)
    assert not panel.actions.snapshot_button.disabled and panel.actions.connect_button.disabled
    # Stats about once a second, and the tick timer.
    assert wait_until(lambda: "<b>2" in panel.stats.value or "<b>3" in panel.stats.value, timeout=15)
    assert wait_until(lambda: "0:02" in panel.timer.value, timeout=15)
    # A change made from a cell shows up in the panel.
    s.set_prompt("from a cell")
    assert wait_until(lambda: panel.prompt_box.value == "from a cell", timeout=10)
    s.disconnect()
    assert "disconnected" in panel.badge.value
    panel.close()


def test_errors_and_callback_failures_are_listed_with_codes() -> None:
    def broken(frame: np.ndarray, state: GenerationState) -> np.ndarray:
        raise ValueError("the model tripped")

    s = Session(source="pattern", engine=broken)
    panel = s.panel
    s.on("generation_tick", lambda tick: 1 / 0)
    s.connect()
    try:
        assert wait_until(lambda: ErrorCode.ENGINE_ERROR in panel.errors_box.value, timeout=15)
        assert "the model tripped" in panel.errors_box.value
        assert wait_until(lambda: "ZeroDivisionError" in panel.event_log.text, timeout=15)
        assert "Traceback" in panel.event_log.text and "generation_tick callback" in panel.event_log.text
        assert ErrorCode.ENGINE_ERROR in panel.event_log.text  # the log has the error's line too
    finally:
        panel.close()
        s.disconnect()


# -- the event log -------------------------------------------------------------------------------
def outputs_of(panel: ControlPanel) -> list[dict[str, Any]]:
    return list(panel.event_log.output.outputs)


def log_lines(panel: ControlPanel) -> list[str]:
    """The log's event lines without their colours (ANSI codes: event_log.py's _styled)."""
    lines = [o["data"]["text/plain"] for o in outputs_of(panel) if o["output_type"] == "display_data"]
    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]


def printed(panel: ControlPanel, stream: str = "stdout") -> str:
    return "".join(
        o["text"] for o in outputs_of(panel) if o["output_type"] == "stream" and o["name"] == stream
    )


def test_callbacks_print_and_raise_into_the_event_log_after_the_cell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What issue 18 saw: callbacks run on the dispatcher thread after the cell; their output was
    dropped. Here no cell runs at all: the dispatcher delivers after connect() returned."""

    def picky(state: str) -> None:
        if state == "generating":
            print("picky saw", state, file=sys.stderr)
            raise RuntimeError("not in the mood")

    s = Session(source="pattern")
    view = session_view(s)  # the video widget connects the session
    panel = s.panel
    assert wait_until(lambda: s.state == "generating")
    s.on("connection_change", print)
    s.on("connection_change", picky)
    try:
        s.disconnect()
        s.connect()
        tail = "disconnected\nconnecting\nconnected\ngenerating\n"
        assert wait_until(lambda: printed(panel).endswith(tail), timeout=15), printed(panel)
        assert wait_until(lambda: printed(panel, "stderr").endswith("picky saw generating\n"))
        assert wait_until(lambda: len([o for o in outputs_of(panel) if o["output_type"] == "error"]) >= 1)
        errors = [o for o in outputs_of(panel) if o["output_type"] == "error"]
        assert (errors[-1]["ename"], errors[-1]["evalue"]) == ("RuntimeError", "not in the mood")
        assert "Traceback" in errors[-1]["traceback"][0] and "picky" in "\n".join(errors[-1]["traceback"])
        lines = log_lines(panel)
        states = [line.split(" ", 1)[1] for line in lines if " callback " not in line]
        assert states[-4:] == tail.splitlines(keepends=True)  # timed lines, as they were emitted
        assert any("connection_change callback" in line and "picky raised" in line for line in lines)
        assert panel.event_log.box in panel.children and panel in view.children
        assert "generating" not in capsys.readouterr().out  # nothing went to the ordinary stream
    finally:
        panel.close()
        s.disconnect()


def test_without_a_display_callbacks_print_as_before_and_again_once_it_closed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = Session(source="pattern")
    s.on("connection_change", lambda state: print("state", state))
    panel = s.panel
    panel.close()  # the display is gone: its log takes nothing more
    try:
        s.connect()
        seen: list[str] = []  # readouterr() takes what is there: a print may be half written
        assert wait_until(
            lambda: seen.append(capsys.readouterr().out) or "state generating" in "".join(seen), timeout=15
        )
        assert printed(panel) == ""
    finally:
        s.disconnect()


def test_the_event_log_starts_with_what_happened_before_the_display() -> None:
    s = Session(source="pattern")
    s.connect()
    assert wait_until(lambda: s.state == "generating")
    panel = s.panel  # built after the events: they come from Session.events, with their times
    try:
        lines = log_lines(panel)
        assert [line.split(" ", 1)[1] for line in lines[:3]] == [
            "connecting\n",
            "connected\n",
            "generating\n",
        ]
    finally:
        panel.close()
        s.disconnect()


def test_the_event_log_is_bounded_and_keeps_the_newest() -> None:
    log = EventLog()
    for n in range(LOG_ENTRIES + 20):
        log("connection_change", f"state{n}")
    outputs = log.output.outputs
    assert len(outputs) == LOG_ENTRIES and "state20" in outputs[0]["data"]["text/plain"]
    log.write_callback_output("stdout", "x" * (LOG_STREAM_CHARS + 100) + "end\n")
    last = log.output.outputs[-1]
    assert last["output_type"] == "stream" and last["text"].endswith("end\n")
    assert len(last["text"]) <= LOG_STREAM_CHARS + 1


def test_the_event_log_colours_its_lines_without_html() -> None:
    """Issue 24: no HTML in the log's Output (JupyterLab typesets it: MathJax at a first display);
    the lines keep their colours as ANSI codes (panel.css maps them to the theme), not in .text."""
    log = EventLog()
    log("connection_change", "generating")
    log("error", DecartNBError(ErrorCode.ENGINE_ERROR, "it broke"))
    (state, error) = [o["data"] for o in log.output.outputs]
    assert all(list(data) == ["text/plain"] for data in (state, error))
    assert "\x1b[1;32mgenerating\x1b[0m" in state["text/plain"]  # green and bold, as the badge
    assert f"\x1b[1;31m{ErrorCode.ENGINE_ERROR}\x1b[0m it broke" in error["text/plain"]
    assert "\x1b" not in log.text and " generating\n" in log.text and "ENGINE_ERROR it broke" in log.text


def test_the_event_log_shows_history_hides_and_clears() -> None:
    history = [
        EventRecord(at=0.0, name="connection_change", payload="connected"),
        EventRecord(at=1.0, name="generation_tick", payload=GenerationTick(1.0)),  # too chatty
        EventRecord(at=2.0, name="error", payload=DecartNBError(ErrorCode.ENGINE_ERROR, "it broke")),
    ]
    log = EventLog(history)
    stamp = time.strftime("%H:%M:%S", time.localtime(0.0))
    assert log.text.startswith(f"{stamp} connected\n") and "ENGINE_ERROR it broke" in log.text
    assert len(log.output.outputs) == 2 and log.empty.layout.display == "none"
    log.toggle.click()
    assert log.output.layout.display == "none" and log.toggle.description == "Show"
    log.toggle.click()
    assert log.output.layout.display is None
    log.clear_button.click()
    assert log.output.outputs == () and log.empty.layout.display is None


def test_a_failed_set_is_shown_with_its_code(live: tuple[Session, ControlPanel, Spy]) -> None:
    s, panel, _ = live
    panel.prompt_box.value = "x" * 6000  # over the prompt limit
    press_enter(panel)
    assert wait_until(lambda: ErrorCode.INVALID_INPUT in panel.errors_box.value)
    assert s.generation.prompt is None


# -- actions -----------------------------------------------------------------------------------
def test_snapshot_and_record_run_in_the_background(
    live: tuple[Session, ControlPanel, Spy], tmp_path: Path
) -> None:
    s, panel, _ = live
    s.out_dir = tmp_path  # the files go next to the notebook: here, the test's own folder
    previews = panel.actions.previews  # what each file looks like: tests/test_outputs.py
    panel.actions.snapshot_button.click()
    assert wait_until(lambda: previews.newest("snapshot") is not None, timeout=15)
    shot = previews.newest("snapshot")
    assert shot is not None and Image.open(shot.path).size == (1280, 720)
    panel.actions.record_seconds.value = 1
    started = time.monotonic()
    panel.actions.record_button.click()
    assert time.monotonic() - started < 0.5  # the click returns; the kernel is not blocked
    assert panel.actions.record_button.disabled
    assert wait_until(lambda: previews.newest("clip") is not None, timeout=30)
    clip = previews.newest("clip")
    assert clip is not None and clip.path.read_bytes()[4:8] == b"ftyp"  # an mp4
    assert clip.path.parent == tmp_path
    assert wait_until(lambda: not panel.actions.record_button.disabled)


def test_disconnect_and_reconnect_buttons(live: tuple[Session, ControlPanel, Spy]) -> None:
    s, panel, _ = live
    panel.actions.disconnect_button.click()
    assert wait_until(lambda: s.state == "disconnected", timeout=20)
    assert wait_until(lambda: not panel.actions.connect_button.disabled)
    panel.actions.connect_button.click()
    assert wait_until(lambda: s.state == "generating", timeout=20)
    assert "generating" in panel.badge.value


def test_the_model_picker_switches_the_model(live: tuple[Session, ControlPanel, Spy]) -> None:
    s, panel, _ = live
    panel.actions.model_picker.value = "lucy-restyle-2"
    assert wait_until(lambda: s.model.name == "lucy-restyle-2", timeout=20)
    assert wait_until(lambda: s.stats.get("height") == 704, timeout=20)


def test_camera_controls_only_for_a_camera_session() -> None:
    assert Session(source="pattern").panel.camera.box is None
    s = Session(source="camera", mirror="auto")
    panel = s.panel
    assert panel.camera.box is not None and panel.camera.mirror.value == "auto"
    assert s.state == "disconnected"  # the panel alone does not build (and connect) the video widget
    panel.camera.mirror.value = True
    assert s.mirror is True
    panel.camera.facing.value = "environment"
    assert s.facing_mode == "environment"
    panel.close()


class FakeCamera(ipywidgets.Widget):  # the traits of widgets/camera.py's CameraWidget the panel uses
    devices = traitlets.List(traitlets.Dict())
    device_id = traitlets.Unicode("")
    facing_mode = traitlets.Unicode("user")

    def choose_camera(self, device_id: str) -> None:
        self.device_id = device_id


def test_camera_controls_follow_the_camera_widget() -> None:
    s = Session(source="camera")
    camera = FakeCamera()
    panel = s.panel
    panel.camera.attach(camera)
    camera.devices = [{"deviceId": "a1", "label": "Front cam"}, {"deviceId": "b2", "label": ""}]
    assert [label for label, _ in panel.camera.device.options] == ["Default camera", "Front cam", "Camera 2"]
    panel.camera.device.value = "b2"
    assert camera.device_id == "b2"
    camera.device_id = "a1"  # the page switched camera
    assert panel.camera.device.value == "a1"
    panel.camera.facing.value = "environment"
    assert camera.facing_mode == "environment"
    panel.close()
    camera.close()


# -- the view ----------------------------------------------------------------------------------
def test_view_falls_back_to_the_panel_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decart_nb.widgets.camera", None)  # import fails
    s = Session(source="pattern")
    view = session_view(s)
    assert s.panel in view.children
    assert "Video unavailable" in view.children[0].value
    s.panel.close()


def test_view_shows_video_beside_the_panel() -> None:
    s = Session(source="pattern")
    try:
        view = session_view(s)
        assert isinstance(view.children[0], CameraWidget)
        assert list(view.children) == [s.widget, s.panel]
    finally:
        s.panel.close()
        s.disconnect()


def test_stats_are_pushed_to_the_panel_and_closing_stops_listening(no_leaked_threads: None) -> None:
    with Session(source="pattern") as s:
        before = {t.name for t in threading.enumerate()}
        panel = s.panel
        # Numbers appear without the panel starting a thread of its own: the loop pushes them.
        assert wait_until(lambda: figure_values(panel).get("fps in", "–") != "–", timeout=15)
        assert {t.name for t in threading.enumerate()} - before == set()
        assert panel._on_event in s._core.events._watchers
        panel.close()
        assert panel._on_event not in s._core.events._watchers
        assert s.panel is not panel  # displaying the session again builds a fresh panel
        s.panel.close()


def test_the_panel_shows_the_codec_link_of_a_page(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()
        panel = s.panel

        def shown() -> bool:
            page.take_outputs()  # the page acks and decodes what arrives, as it streams
            linked = re.search(r"comm \(VP8\) · 0/[1-9]\d* kbps", panel.stats.value)
            return bool(linked) and figure_values(panel)["round trip"].endswith(" ms")

        # The round trip: what the output's acks take beyond a chunk's own size.
        assert wait_until(shown, timeout=15, every=0.01), panel.stats.value
        panel.close()
        s.widget.close()


# -- the read-out: figures, timer and errors follow the session's state --------------------------
def figure_values(panel: ControlPanel) -> dict[str, str]:
    """The panel's figures by name, as shown."""
    found = re.findall(r'data-figure="([^"]+)"[^>]*><b>([^<]*)</b>', panel.stats.value)
    return dict(found)


def test_the_panels_figures_are_the_status_lines_and_clear_when_not_live(
    comms: list[RecordingComm],
) -> None:
    with Session(source="pattern") as s:
        widget, panel = s.widget, s.panel
        assert wait_until(lambda: figure_values(panel).get("fps out", "–") != "–", timeout=15)
        assert wait_until(lambda: "0:01" in panel.timer.value or "0:02" in panel.timer.value, timeout=15)
        shown = figure_values(panel)
        assert list(shown) == list(FIGURE_NAMES), "the panel's names are the figures' names"
        # The status line is sent the same figures, from the same stats event.
        assert wait_until(
            lambda: [f[0] for f in widget.figures] == list(FIGURE_NAMES) and widget.figures[3][1] != "–"
        )
        live = s.stats
        s.disconnect()
        assert set(figure_values(panel).values()) == {"–"}
        assert {value for _, value, _ in widget.figures} == {"–"}
        assert "0:00" in panel.timer.value
        # A drop: the stats of a moment ago, then `reconnecting` (disconnected, no stats follow).
        s._core.events.emit("stats", live)
        assert figure_values(panel)["fps out"] != "–"
        s._core.events.emit("connection_change", "reconnecting")
        assert set(figure_values(panel).values()) == {"–"}
        assert {value for _, value, _ in widget.figures} == {"–"}
        panel.close()
        widget.close()


def test_errors_are_marked_resolved_once_a_good_state_is_applied(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    s, panel, _ = live
    port_of(s).report_error(DecartNBError(ErrorCode.ENGINE_ERROR, "the model tripped"))
    assert wait_until(lambda: ErrorCode.ENGINE_ERROR in panel.errors_box.value)
    assert "resolved" not in panel.errors_box.value
    s.set_prompt("a good state")  # generation_change: what failed before is over
    assert wait_until(lambda: "dnb-error-resolved" in panel.errors_box.value)
    assert ">resolved<" in panel.errors_box.value and ErrorCode.ENGINE_ERROR in panel.errors_box.value
    port_of(s).report_error(DecartNBError(ErrorCode.NOT_CONNECTED, "dropped"))  # a newer error is not
    assert wait_until(lambda: panel.errors_box.value.count("<li>") == 1)
    assert panel.errors_box.value.index(ErrorCode.NOT_CONNECTED) < panel.errors_box.value.index("resolved")
    s._core.events.emit("connection_change", "generating")  # generating again after it
    assert panel.errors_box.value.count("dnb-error-resolved") == 2


def test_an_error_a_cell_raised_is_listed_with_its_code_once() -> None:
    s = Session(source="pattern")
    panel = s.panel
    error = DecartNBError(ErrorCode.MODEL_NOT_FOUND, "no such model")
    s._core.events.emit("call_error", error)  # what Session's public methods emit when they raise
    assert ErrorCode.MODEL_NOT_FOUND in panel.errors_box.value and "no such model" in panel.errors_box.value
    panel.readout.add_error(error)  # the same failure again (a view that also shows its own)
    assert panel.errors_box.value.count("<li>") == 1
    panel.close()


def test_a_bad_call_from_a_cell_shows_in_the_panels_error_list(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    s, panel, _ = live
    with pytest.raises(DecartNBError) as raised:
        s.set_prompt("")  # as a cell would: the cell gets the exception, the panel lists it
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert f"<code>{ErrorCode.INVALID_INPUT}</code>" in panel.errors_box.value
    assert html.escape(raised.value.message) in panel.errors_box.value
    with pytest.raises(DecartNBError):
        s.switch_model("no-such-model")
    assert panel.errors_box.value.count("<li>") == 2
