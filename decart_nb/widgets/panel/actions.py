"""The panel's session buttons: snapshot, record, disconnect/connect and the model switch.

Each one is a Session call that can take seconds (a snapshot waits for a frame, a recording for its
duration), so each runs in its own short-lived thread and never blocks the kernel.
"""

from __future__ import annotations

import html
import io
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ...models import realtime_names

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["MAX_RECORD_S", "SessionActions"]

MAX_RECORD_S = 60
_WIDE = {"description_width": "initial"}
Runner = Callable[[str, Callable[[], None]], bool]


class SessionActions:
    """`run(action, fn)` calls fn and shows its failure in the panel (ControlPanel._run)."""

    def __init__(self, session: Session, run: Runner) -> None:
        self._session = session
        self._run = run
        self._recording = False
        self._syncing = False
        self._clip_dir: Path | None = None
        self.snapshot_button = w.Button(description="Snapshot", icon="camera")
        self.snapshot_button.on_click(lambda _: self.take_snapshot())
        self.disconnect_button = w.Button(description="Disconnect", icon="stop")
        self.disconnect_button.on_click(lambda _: self._background("disconnect", session.disconnect))
        self.connect_button = w.Button(description="Reconnect", icon="play")
        self.connect_button.on_click(lambda _: self._background("connect", self._connect))
        buttons = w.HBox([self.snapshot_button, self.disconnect_button, self.connect_button])
        buttons.add_class("dnb-actions")
        self.record_seconds = w.BoundedIntText(
            value=5, min=1, max=MAX_RECORD_S, description="Record (s)", style=_WIDE
        )
        self.record_seconds.layout.width = "150px"
        self.record_button = w.Button(description="Record", icon="circle")
        self.record_button.on_click(lambda _: self.start_recording())
        self.model_picker = w.Dropdown(
            options=realtime_names(), value=session.model.name, description="Model", style=_WIDE
        )
        self.model_picker.observe(self._on_model_picked, "value")
        self.box = w.VBox([buttons, w.HBox([self.record_seconds, self.record_button]), self.model_picker])
        self.snapshot_view = w.Image(format="png", layout=w.Layout(display="none", width="100%"))
        self.record_view = w.Video(format="mp4", autoplay=True, loop=True, controls=True)
        self.record_view.layout = w.Layout(display="none", width="100%")
        self.record_path = w.HTML()
        self.outputs = w.VBox([self.snapshot_view, self.record_view, self.record_path])
        self.outputs.add_class("dnb-outputs")

    def _connect(self) -> None:
        self._session.connect()

    def take_snapshot(self) -> None:
        """Grab the newest output frame and show it under the panel."""

        def grab() -> None:
            buf = io.BytesIO()
            self._session.snapshot().save(buf, format="PNG")
            self.snapshot_view.value = buf.getvalue()
            self.snapshot_view.layout.display = None

        self._background("snapshot", grab)

    def start_recording(self) -> None:
        """Record the chosen number of seconds and show the clip (kept in a temporary folder)."""
        if self._recording:
            return
        seconds = int(self.record_seconds.value)
        self._recording = True
        self.record_button.disabled = True
        self.record_button.description = f"Recording {seconds} s…"

        def record() -> None:
            try:
                path = self._next_clip()
                self._session.record(path, seconds)
                self.record_view.value = path.read_bytes()
                self.record_view.layout.display = None
                saved = f"Saved to <code>{html.escape(str(path))}</code>"
                self.record_path.value = f'<span class="dnb-muted">{saved}</span>'
            finally:
                self._recording = False
                self.record_button.description = "Record"
                self.show_state(self._session.state)

        self._background("record", record)

    def _next_clip(self) -> Path:
        if self._clip_dir is None:
            self._clip_dir = Path(tempfile.mkdtemp(prefix="decart_nb-clips-"))
        return self._clip_dir / f"clip-{len(list(self._clip_dir.iterdir())) + 1}.mp4"

    def show_state(self, state: str) -> None:
        live = state in ("connected", "generating")
        self.snapshot_button.disabled = not live
        self.record_button.disabled = not live or self._recording
        self.disconnect_button.disabled = state == "disconnected"
        self.connect_button.disabled = state != "disconnected"

    def show_model(self, name: str) -> None:
        """The session switched model (from a cell, or from here): show it without switching."""
        self._syncing = True
        try:
            self.model_picker.value = name
        finally:
            self._syncing = False

    def _on_model_picked(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != self._session.model.name:
            self._background("switch_model", lambda: self._session.switch_model(change["new"]))

    def _background(self, action: str, fn: Callable[[], None]) -> None:
        def run() -> None:
            with self._session.calls_from_view():  # the panel shows its own failures (no call_error)
                self._run(action, fn)

        threading.Thread(target=run, name=f"decart_nb-panel-{action}", daemon=True).start()
