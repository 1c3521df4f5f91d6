"""The control panel: prompt, sliders, reference image, live status and actions for a Session.

Everything goes through the Session's public methods, so a notebook cell and the panel act on one
state. Widget callbacks may run on the kernel's main thread or a subshell thread while a cell runs:
they only read widget values and hand work to short-lived threads (the Session's methods wait for
the engine's acknowledgement, which must never stall a comm handler). The session pushes what the
panel shows (state, errors, ticks, stats once a second, states set from cells) to its listener.

Layout: a dock of what a person uses all the time (state and figures, prompt, reference image,
Snapshot/Record), then collapsible sections (sections.py) for the rest; panel.css places them.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np

from ...errors import DecartNBError, ErrorCode
from ...models import ModelSpec
from ..change import Change
from ..sheets import style_sheets
from .actions import SessionActions
from .camera_controls import CameraControls
from .debounce import Debouncer
from .event_log import EventLog
from .label import label
from .presets import preset_prompts
from .readout import Readout
from .sections import Section
from .upload import ACCEPT, read_upload, thumbnail_png

if TYPE_CHECKING:
    from ...session_port import SessionPort

__all__ = ["PROMPT_DEBOUNCE_S", "ControlPanel"]

logger = logging.getLogger("decart_nb")

PROMPT_DEBOUNCE_S = 0.3  # a prompt is sent this long after the last keystroke (or at once on Enter)
SUBMIT_TAIL_S = 1.0  # value updates this soon after Enter are sent at once too
CONTROL_DEBOUNCE_S = 0.1  # coalesces slider moves that arrive together
_WIDE = {"description_width": "initial"}


def _css() -> str:
    """panel.css, the enhance toggle's sheet, then readout.css (the live read-out's own rules)."""
    return style_sheets("panel.css", "toggle.css", "readout.css")


class ControlPanel(w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """Controls for running prompt and reference-image experiments by hand."""

    def __init__(self, port: SessionPort) -> None:
        session = port.session
        self._port = port
        self._session = session
        state = session.generation
        self._image: np.ndarray | None = state.image
        self._image_name = "reference image" if state.image is not None else ""
        self._known_version: int = state.version
        self._send_lock = threading.Lock()
        self._syncing = False
        self._closed = False
        self._submitted_at = -1e9
        self._state_sender = Debouncer(self._send_state, PROMPT_DEBOUNCE_S, "decart_nb-panel-set")
        self._controls_sender = Debouncer(self._send_controls, CONTROL_DEBOUNCE_S, "decart_nb-panel-controls")
        # A state set from a cell is shown from a short-lived thread: never on the media loop,
        # which emits it (a new reference image's thumbnail takes milliseconds to encode).
        self._follower = Debouncer(self._pull_state, 0.0, "decart_nb-panel-follow")

        self._build_live()
        self._build_prompt(state.prompt or "", state.enhance)
        self._build_controls(session.controls)
        self._build_image()
        self.camera = CameraControls(port)
        self.actions = SessionActions(port, self._run)
        self.event_log = EventLog(session.events)  # what happened before the panel was built
        self.event_log.set_open(False)  # a section like the others: closed until asked for
        self.dock = self._build_dock()
        self.sections = self._build_sections()
        super().__init__(
            [
                w.HTML(f"<style>{_css()}</style>", layout=w.Layout(display="none")),
                self.dock,
                *self.sections.values(),
                self.event_log.box,
            ]
        )
        self.add_class("dnb-panel")
        self.errors_box.observe(self._on_errors_shown, "value")
        self._on_errors_shown({"new": self.errors_box.value})
        port.listen(self._on_event)
        port.listen(self.event_log)  # also takes what callbacks print (see events.py)
        self._show_state(session.state)

    # -- building ---------------------------------------------------------------------------
    def _build_dock(self) -> w.Box:
        """What a person uses all the time, in four areas panel.css lays out: the state and its
        figures, the prompt, the reference image, snapshot and record."""
        actions = self.actions
        areas = {
            "status": [self.live],
            "prompt": [self.prompt_box, w.HBox([self.enhance_box, self.prompt_scrub]), self.notice],
            "image": [self.image_row, self.upload_message],
            "capture": [
                w.HBox(
                    [
                        actions.snapshot_button,
                        actions.record_seconds_row,
                        actions.record_button,
                        actions.record_camera_button,
                    ]
                )
            ],
        }
        boxes = []
        for name, children in areas.items():
            box = w.VBox(children)
            box.add_class(f"dnb-dock-{name}")
            boxes.append(box)
        dock = w.Box(boxes)
        dock.add_class("dnb-dock")
        return dock

    def _build_sections(self) -> dict[str, Section]:
        """The rest, closed until asked for: the outputs open when Snapshot or Record is clicked
        (their result is looked at at once), the error list when an error arrives."""
        actions = self.actions
        for button in (actions.snapshot_button, actions.record_button, actions.record_camera_button):
            button.on_click(lambda _: setattr(self.sections["outputs"], "expanded", True))
        session_row = w.HBox([actions.disconnect_button, actions.connect_button])
        session_row.add_class("dnb-actions")
        sections = {
            "outputs": Section("Outputs", actions.outputs, name="outputs"),
            "errors": Section("Errors", self.errors_box, name="errors"),
            "controls": Section("Controls", *self.control_rows, name="controls"),
            "camera": Section("Camera", *([self.camera.box] if self.camera.box else []), name="camera"),
            "session": Section("Session", actions.model_row, session_row, name="session"),
        }
        return {name: s for name, s in sections.items() if s.body.children}

    def _build_live(self) -> None:
        self.readout = Readout(self._session)
        self.badge, self.timer = self.readout.badge, self.readout.timer
        self.stats, self.errors_box = self.readout.stats, self.readout.errors_box
        self.live = w.HBox([self.badge, self.timer, self.stats])
        self.live.add_class("dnb-live")
        self.notice = w.HTML()

    def _build_prompt(self, prompt: str, enhance: bool) -> None:
        self.prompt_box = w.Text(
            value=prompt,
            placeholder="Describe the look; Enter sends now",
            continuous_update=True,
        )
        self.prompt_box.add_class("dnb-prompt")
        self.prompt_box.observe(self._on_prompt_typed, "value")
        self.prompt_box.on_msg(self._on_prompt_msg)
        # A toggle, not a Checkbox: ipywidgets typesets every Checkbox's label (see label.py).
        self.enhance_box = w.ToggleButton(
            value=enhance, description="Enhance prompt", tooltip="Let the model enhance the prompt"
        )
        self.enhance_box.add_class("dnb-enhance")
        self.enhance_box.observe(lambda _: self._changed(at_once=True), "value")
        self.prompts = preset_prompts(self._session)
        start = self.prompts.index(prompt) if prompt in self.prompts else 0
        self.prompt_slider = w.IntSlider(
            value=start,
            min=0,
            max=max(0, len(self.prompts) - 1),
            readout=False,
            continuous_update=True,
            style=_WIDE,
            layout=w.Layout(flex="1 1 auto"),
        )
        self.prompt_slider.observe(self._on_prompt_slider, "value")
        self.prompt_slider.add_class("dnb-prompt-slider")
        self.prompt_slider_label = w.HTML(self._slider_label(start))
        self.prompt_scrub = w.HBox([label("Prompts"), self.prompt_slider, self.prompt_slider_label])
        if not self.prompts:
            self.prompt_scrub.layout.display = "none"

    def _build_controls(self, values: dict[str, float]) -> None:
        self.control_sliders: dict[str, w.FloatSlider] = {}
        self.control_rows: list[w.HBox] = []  # each slider with its label (see label.py)
        for control in self._session.engine.controls:
            slider = w.FloatSlider(
                value=values.get(control.name, control.default),
                min=control.min,
                max=control.max,
                step=control.step,
                tooltip=control.help,
                continuous_update=False,
                style=_WIDE,
            )
            slider.add_class("dnb-control")
            slider.observe(self._on_control_slider, "value")
            self.control_sliders[control.name] = slider
            row = w.HBox([label(control.label, control.help), slider])
            row.add_class("dnb-control-row")
            self.control_rows.append(row)

    def _build_image(self) -> None:
        # No icons (FileUpload's default is one): an icon makes JupyterLab fetch its icon font.
        self.upload = w.FileUpload(accept=ACCEPT, multiple=False, description="Upload", icon="")
        self.upload.observe(self._on_upload, "value")
        self.upload.add_class("dnb-upload")
        self._held_upload: tuple[object, ...] = ()  # the upload the held image came from, if any
        self.thumbnail = w.Image(format="png")
        self.thumbnail.add_class("dnb-thumb")
        self.clear_button = w.Button(description="Clear", tooltip="Remove the reference image")
        self.clear_button.on_click(lambda _: self.clear_image())
        self.no_image = w.HTML('<div class="dnb-thumb-empty">No image</div>')
        self.image_name = w.HTML()
        self.image_name.add_class("dnb-image-name")
        buttons = w.HBox([self.upload, self.clear_button])
        buttons.add_class("dnb-image-buttons")
        self.image_row = w.HBox([self.thumbnail, self.no_image, w.VBox([self.image_name, buttons])])
        self.image_row.add_class("dnb-image-row")
        self.upload_message = w.HTML()
        self._show_image()

    # -- sending the state ------------------------------------------------------------------
    def _changed(self, at_once: bool = False) -> None:
        if self._syncing or self._closed:
            return
        if at_once:
            self._state_sender.flush()
        else:
            self._state_sender.schedule()

    def submit(self) -> None:
        """Send the panel's state now (what Enter in the prompt box does)."""
        self._submitted_at = time.monotonic()
        self._changed(at_once=True)

    def _on_prompt_typed(self, _: Change) -> None:
        # The page throttles value updates while a message is unanswered, so the last keystrokes
        # can reach the kernel after Enter's message: they belong to the submitted prompt.
        self._changed(at_once=time.monotonic() - self._submitted_at < SUBMIT_TAIL_S)

    def _on_prompt_msg(self, _: object, content: object, buffers: object) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            self.submit()

    def _on_prompt_slider(self, change: Change) -> None:
        index = int(change["new"])
        self.prompt_slider_label.value = self._slider_label(index)
        if self.prompts and not self._syncing:
            self.prompt_box.value = self.prompts[index]  # the box's observer sends it

    def _slider_label(self, index: int) -> str:
        return f'<span class="dnb-muted">{index + 1}/{len(self.prompts)}</span>' if self.prompts else ""

    def _send_state(self) -> None:
        """One set() with the whole panel state: prompt, image and enhance together."""
        with self._send_lock:
            prompt = self.prompt_box.value if self.prompt_box.value.strip() else None
            image, enhance = self._image, bool(self.enhance_box.value)
            if prompt is None and image is None:
                self._show_notice("Type a prompt or upload a reference image: a state needs one of them.")
                return
            held = self._session.generation
            if (prompt, enhance) == (held.prompt, held.enhance) and image is held.image:
                return  # the session holds this state already (a second flush): no version spent
            if self._run("set", lambda: self._session.set(prompt=prompt, image=image, enhance=enhance)):
                self._known_version = self._session.generation.version
                self._show_notice("")

    def _on_control_slider(self, _: Change) -> None:
        if not (self._syncing or self._closed):
            self._controls_sender.schedule()

    def _send_controls(self) -> None:
        with self._send_lock:
            values = {name: float(slider.value) for name, slider in self.control_sliders.items()}
            if self._run("set_controls", lambda: self._session.set_controls(**values)):
                self._known_version = self._session.generation.version

    # -- reference image --------------------------------------------------------------------
    def _on_upload(self, change: Change) -> None:
        """Read the chosen file. The button's count ("Upload (1)") shows whether the held image is
        an upload: a good file stays the upload's value; after a bad one the value goes back to
        the held upload's, so that choosing that same bad file again is a change again."""
        value = change["new"]
        if not value or self._closed or tuple(value) == self._held_upload:
            return
        try:
            name, pixels = read_upload(value)
        except DecartNBError as error:
            self._show_upload_error(error)
            self.upload.value = self._held_upload
        else:
            self._image, self._image_name, self._held_upload = pixels, name, tuple(value)
            self.upload_message.value = ""
            self._show_image()
            self._changed(at_once=True)

    def clear_image(self) -> None:
        """Drop the reference image and send the state without it."""
        self._image, self._image_name = None, ""
        self._forget_upload()
        self.upload_message.value = ""
        self._show_image()
        self._changed(at_once=True)

    def _forget_upload(self) -> None:
        """The held image is no upload now: the count goes to 0, and choosing the file it came
        from again is a change."""
        self._held_upload = ()
        if self.upload.value:
            self.upload.value = ()

    def _show_upload_error(self, error: DecartNBError) -> None:
        # Shown next to the upload button only: it is about this file, not about the session.
        logger.warning("decart_nb panel: %s", error)
        self.upload_message.value = (
            f'<div class="dnb-message dnb-bad"><code>{error.code}</code> {_escape(error.message)}</div>'
        )

    def _show_image(self) -> None:
        has = self._image is not None
        self.thumbnail.value = thumbnail_png(self._image) if self._image is not None else b""
        self.thumbnail.layout.display = None if has else "none"
        self.no_image.layout.display = "none" if has else None
        # The name shows beside it: ipywidgets 8's Image view throws on a tooltip change
        # ("Error setting state: Cannot read properties of undefined (reading 'length')").
        self.image_name.value = (
            f'<span title="{_escape(self._image_name)}">{_escape(self._image_name)}</span>'
            if has
            else '<span class="dnb-muted">Reference image</span>'
        )
        self.clear_button.disabled = not has

    # -- running Session calls -------------------------------------------------------------
    def _run(self, action: str, fn: Callable[[], None]) -> bool:
        """Run one Session call; a failure is shown in the panel with its code (and logged)."""
        try:
            fn()
        except DecartNBError as error:
            self._add_error(error)
            return False
        except Exception as exc:  # shown in the panel and logged with its traceback
            logger.exception("decart_nb: the panel's %s failed", action)
            self._add_error(DecartNBError(ErrorCode.ENGINE_ERROR, f"{action} failed: {exc!r}", cause=exc))
            return False
        return True

    # -- live -------------------------------------------------------------------------------
    def _on_event(self, event: str, payload: object) -> None:
        # Called on the emitting thread (often the media loop): only cheap widget updates here.
        if self._closed:
            return
        self.readout.on_event(event, payload)
        if event == "connection_change":
            self.actions.show_state(str(payload))
        elif event == "model_change" and isinstance(payload, ModelSpec):
            self.actions.show_model(payload.name)
        elif event == "generation_change":
            self._follower.flush()
        elif event in ("error", "call_error"):  # a cell's failed call is listed too (readout.py)
            self._open_errors()

    def _show_state(self, state: str) -> None:
        self.readout.show_state(state)
        self.actions.show_state(state)

    def _add_error(self, error: DecartNBError) -> None:
        self.readout.add_error(error)
        self._open_errors()

    def _open_errors(self) -> None:
        """A new error needs attention: its section opens (a person may close it again)."""
        self.sections["errors"].expanded = True

    def _on_errors_shown(self, change: Change) -> None:
        """The error list's section shows only while the list has something in it."""
        self.sections["errors"].layout.display = None if change["new"] else "none"

    def _show_notice(self, text: str) -> None:
        self.notice.value = f'<div class="dnb-message">{_escape(text)}</div>' if text else ""

    # -- following changes made from cells --------------------------------------------------
    def _pull_state(self) -> None:
        """Show a state a cell set (seen through its version). Runs in the follower's thread, so
        it may wait for a send of the panel's own, after which the version tells who set last."""
        if self._state_sender.pending:
            return  # the panel's pending send replaces the whole state anyway
        with self._send_lock:
            state = self._session.generation
            if state.version == self._known_version or self._closed:
                return
            self._known_version = state.version

            def show() -> None:
                self.prompt_box.value = state.prompt or ""
                self.enhance_box.value = state.enhance
                for name, slider in self.control_sliders.items():
                    if name in state.controls:
                        slider.value = state.controls[name]
                if state.image is not self._image:  # a cell's image (or none): not the upload's
                    self._image = state.image
                    self._image_name = "reference image" if state.image is not None else ""
                    self._forget_upload()
                self._show_image()

            self._sync(show)

    def _sync(self, fn: Callable[[], None]) -> None:
        """Set widget values from the Session without sending them back."""
        self._syncing = True
        try:
            fn()
        finally:
            self._syncing = False

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening and pending sends, then close the widgets."""
        self._closed = True
        self._port.unlisten(self._on_event)
        self._port.unlisten(self.event_log)  # callbacks print to the ordinary streams again
        self._state_sender.close()
        self._controls_sender.close()
        self._follower.close()
        self.camera.close()
        self._port.forget_view(self)  # displaying the session again builds a new panel
        for child in _descendants(self):
            child.close()
        super().close()


def _descendants(box: w.Box) -> list[w.Widget]:
    found: list[w.Widget] = []
    for child in box.children:
        if isinstance(child, w.Box):
            found.extend(_descendants(child))
        found.append(child)
    return found


def _escape(text: str) -> str:
    return html.escape(text)
