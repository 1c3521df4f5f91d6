"""The panel's session buttons: snapshot, record, record camera, disconnect/connect and the model
switch.

Snapshot and Record save into the session's out folder (`s.out_dir`, as `s.save_snapshot()` and
`s.record()` from a cell do); every file the session saves, the cells' too (its `output_saved`
event), shows here labelled, with a download link (previews.py). Record camera records what goes
into the model (`s.record(what="input")`: the camera, as the model sees it) for the chosen
seconds, a clip to replay later as `source=`; the line beside it says where it went, or why not.

Each one is a Session call that can take seconds (a snapshot waits for a frame, a recording for its
duration), so each runs in its own short-lived thread and never blocks the kernel.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w

from ...errors import DecartNBError
from ...models import realtime_names
from ..change import Change
from .label import labelled
from .previews import Previews

if TYPE_CHECKING:
    from ...session_port import SessionPort

__all__ = ["MAX_RECORD_S", "SessionActions"]

MAX_RECORD_S = 60
_ERROR_STYLE = "color: var(--jp-error-color1)"
Runner = Callable[[str, Callable[[], None]], bool]


class SessionActions:
    """`run(action, fn)` calls fn and shows its failure in the panel (ControlPanel._run)."""

    def __init__(self, port: SessionPort, run: Runner) -> None:
        session = port.session
        self._port = port
        self._session = session
        self._run = run
        self._recording = False
        self._syncing = False
        # No icons and no descriptions but buttons': an icon makes JupyterLab fetch its icon font,
        # a description loads MathJax (label.py), both on a first display's link (issue 24).
        self.snapshot_button = w.Button(description="Snapshot")
        self.snapshot_button.on_click(lambda _: self.take_snapshot())
        self.disconnect_button = w.Button(description="Disconnect")
        self.disconnect_button.on_click(lambda _: self._background("disconnect", session.disconnect))
        self.connect_button = w.Button(description="Reconnect")
        self.connect_button.on_click(lambda _: self._background("connect", self._connect))
        buttons = w.HBox([self.snapshot_button, self.disconnect_button, self.connect_button])
        buttons.add_class("dnb-actions")
        self.record_seconds = w.BoundedIntText(value=5, min=1, max=MAX_RECORD_S)
        self.record_seconds_row = labelled("Record (s)", self.record_seconds)
        self.record_button = w.Button(description="Record")
        self.record_button.on_click(lambda _: self.start_recording())
        self._recording_camera = False
        self.record_camera_button = w.Button(
            description="Record camera",
            tooltip="Record what goes into the model (the camera) for the seconds chosen: a clip to "
            "replay as source=",
        )
        self.record_camera_button.on_click(lambda _: self.start_camera_recording())
        self.record_camera_status = w.HTML()
        self.record_camera_status.add_class("dnb-record-camera-status")
        camera_row = w.HBox([self.record_camera_status])  # its button is in the dock (control.py)
        camera_row.add_class("dnb-record-camera")
        self.model_picker = w.Dropdown(options=realtime_names(), value=session.model.name)
        self.model_row = labelled("Model", self.model_picker)
        self.model_picker.observe(self._on_model_picked, "value")
        self.box = w.VBox([buttons, w.HBox([self.record_seconds_row, self.record_button]), self.model_row])
        self.previews = Previews(session.out_dir)
        # Record camera, then a note on where files go and the newest previews.
        self.outputs = w.VBox([camera_row, self.previews.box])
        self.outputs.add_class("dnb-outputs")
        port.listen(self._on_event)  # files saved from cells show here too

    def _on_event(self, event: str, payload: object) -> None:
        if event != "output_saved" or not isinstance(payload, Path):
            return
        if self.outputs.comm is None:  # the panel was closed (its widgets with it)
            self._port.unlisten(self._on_event)
            return
        self.previews.add(payload, self._session.out_dir)

    def _connect(self) -> None:
        self._session.connect()

    def take_snapshot(self) -> None:
        """Save the newest output frame in the session's out folder and show it, labelled."""

        def grab() -> None:
            self._session.save_snapshot()  # shown by its output_saved event

        self._background("snapshot", grab)

    def start_recording(self) -> None:
        """Record the chosen number of seconds into the out folder and show the clip, labelled."""
        if self._recording:
            return
        seconds = int(self.record_seconds.value)
        self._recording = True
        self.record_button.disabled = True
        self.record_button.description = f"Recording {seconds} s…"

        def record() -> None:
            try:
                self._session.record(seconds=seconds)  # shown by its output_saved event
            finally:
                self._recording = False
                self.record_button.description = "Record"
                self.show_state(self._session.state)

        self._background("record", record)

    def start_camera_recording(self) -> None:
        """Record the input (the camera) for the chosen seconds into the out folder; say where
        it went, or the error with its code (listed in the panel's errors too)."""
        if self._recording_camera:
            return
        seconds = int(self.record_seconds.value)
        self._recording_camera = True
        self.record_camera_button.disabled = True
        self.record_camera_button.description = f"Recording camera {seconds} s…"
        self.record_camera_status.value = ""

        def record() -> None:
            try:
                path = self._session.record(seconds=seconds, what="input")  # previewed by output_saved
                self.record_camera_status.value = f"Camera clip saved: <code>{html.escape(str(path))}</code>"
            except DecartNBError as error:
                failed = html.escape(f"Camera recording failed: {error}")  # the message has the code
                self.record_camera_status.value = f'<span style="{_ERROR_STYLE}">{failed}</span>'
                raise
            finally:
                self._recording_camera = False
                self.record_camera_button.description = "Record camera"
                self.show_state(self._session.state)

        self._background("record_camera", record)

    def show_state(self, state: str) -> None:
        live = state in ("connected", "generating")
        self.snapshot_button.disabled = not live
        self.record_button.disabled = not live or self._recording
        self.record_camera_button.disabled = not live or self._recording_camera
        self.disconnect_button.disabled = state == "disconnected"
        self.connect_button.disabled = state != "disconnected"

    def show_model(self, name: str) -> None:
        """The session switched model (from a cell, or from here): show it without switching."""
        self._syncing = True
        try:
            self.model_picker.value = name
        finally:
            self._syncing = False

    def _on_model_picked(self, change: Change) -> None:
        if not self._syncing and change["new"] != self._session.model.name:
            self._background("switch_model", lambda: self._session.switch_model(change["new"]))

    def _background(self, action: str, fn: Callable[[], None]) -> None:
        def run() -> None:
            with self._port.calls_from_view():  # the panel shows its own failures (no call_error)
                self._run(action, fn)

        threading.Thread(target=run, name=f"decart_nb-panel-{action}", daemon=True).start()
