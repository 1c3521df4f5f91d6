"""The control panel: prompt, sliders, reference image, live status and actions for a Session.

Everything goes through the Session's public methods, so a notebook cell and the panel act on one
state. Widget callbacks may run on the kernel's main thread or a subshell thread while a cell runs:
they only read widget values and hand work to short-lived threads (the Session's methods wait for
the engine's acknowledgement, which must never stall a comm handler). The session pushes what the
panel shows (state, errors, ticks, stats once a second, states set from cells) to its listener.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import numpy as np

from ...errors import DecartNBError, ErrorCode
from .actions import SessionActions
from .camera_controls import CameraControls
from .debounce import Debouncer
from .event_log import EventLog
from .presets import preset_prompts
from .readout import Readout
from .upload import ACCEPT, read_upload, thumbnail_png

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["ControlPanel", "PROMPT_DEBOUNCE_S"]

logger = logging.getLogger("decart_nb")

PROMPT_DEBOUNCE_S = 0.3  # a prompt is sent this long after the last keystroke (or at once on Enter)
SUBMIT_TAIL_S = 1.0  # value updates this soon after Enter are sent at once too
CONTROL_DEBOUNCE_S = 0.1  # coalesces slider moves that arrive together
_WIDE = {"description_width": "initial"}


def _css() -> str:
    return resources.files("decart_nb.widgets").joinpath("static/panel.css").read_text(encoding="utf-8")


class ControlPanel(w.VBox):
    """Controls for running prompt and reference-image experiments by hand."""

    def __init__(self, session: Session) -> None:
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
        self.camera = CameraControls(session)
        self.actions = SessionActions(session, self._run)
        self.event_log = EventLog(session.events)  # what happened before the panel was built
        super().__init__(
            [
                w.HTML(f"<style>{_css()}</style>", layout=w.Layout(display="none")),
                self.live,
                self._section("Prompt", self.prompt_box, self.enhance_box, self.prompt_scrub),
                *self._optional("Controls", *self.control_sliders.values()),
                self._section("Reference image", self.image_row, self.upload_message),
                *self._optional("Camera", *([self.camera.box] if self.camera.box is not None else [])),
                self._section("Session", self.actions.box),
                self.actions.outputs,
                self.notice,
                self.errors_box,
                self.event_log.box,
            ],
            layout=w.Layout(width="360px", min_width="300px", flex="0 1 360px"),
        )
        self.add_class("dnb-panel")
        session.listen(self._on_event)
        session.listen(self.event_log)  # also takes what callbacks print (see events.py)
        self._show_state(session.state)

    # -- building ---------------------------------------------------------------------------
    @staticmethod
    def _section(title: str, *children: w.Widget) -> w.VBox:
        box = w.VBox([w.HTML(f'<div class="dnb-title">{title}</div>'), *children])
        box.add_class("dnb-section")
        return box

    def _optional(self, title: str, *children: w.Widget) -> list[w.VBox]:
        return [self._section(title, *children)] if children else []

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
            layout=w.Layout(width="100%"),
        )
        self.prompt_box.add_class("dnb-prompt")
        self.prompt_box.observe(self._on_prompt_typed, "value")
        self.prompt_box.on_msg(self._on_prompt_msg)
        self.enhance_box = w.Checkbox(value=enhance, description="Enhance prompt", indent=False)
        self.enhance_box.observe(lambda _: self._changed(at_once=True), "value")
        self.prompts = preset_prompts(self._session)
        start = self.prompts.index(prompt) if prompt in self.prompts else 0
        self.prompt_slider = w.IntSlider(
            value=start,
            min=0,
            max=max(0, len(self.prompts) - 1),
            description="Prompts",
            readout=False,
            continuous_update=True,
            style=_WIDE,
            layout=w.Layout(flex="1 1 auto"),
        )
        self.prompt_slider.observe(self._on_prompt_slider, "value")
        self.prompt_slider.add_class("dnb-prompt-slider")
        self.prompt_slider_label = w.HTML(self._slider_label(start))
        self.prompt_scrub = w.HBox([self.prompt_slider, self.prompt_slider_label])
        if not self.prompts:
            self.prompt_scrub.layout.display = "none"

    def _build_controls(self, values: dict[str, float]) -> None:
        self.control_sliders: dict[str, w.FloatSlider] = {}
        for control in self._session.engine.controls:
            slider = w.FloatSlider(
                value=values.get(control.name, control.default),
                min=control.min,
                max=control.max,
                step=control.step,
                description=control.label,
                tooltip=control.help,
                continuous_update=False,
                style=_WIDE,
                layout=w.Layout(width="100%"),
            )
            slider.observe(self._on_control_slider, "value")
            self.control_sliders[control.name] = slider

    def _build_image(self) -> None:
        self.upload = w.FileUpload(accept=ACCEPT, multiple=False, description="Upload")
        self.upload.observe(self._on_upload, "value")
        self.upload.add_class("dnb-upload")
        self.thumbnail = w.Image(format="png", layout=w.Layout(max_width="96px", max_height="96px"))
        self.thumbnail.add_class("dnb-thumb")
        self.clear_button = w.Button(description="Clear", icon="times", tooltip="Remove the reference image")
        self.clear_button.on_click(lambda _: self.clear_image())
        self.no_image = w.HTML('<div class="dnb-thumb-empty">No image</div>')
        self.image_row = w.HBox([self.thumbnail, self.no_image, w.VBox([self.upload, self.clear_button])])
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

    def _on_prompt_typed(self, _: dict[str, Any]) -> None:
        # The page throttles value updates while a message is unanswered, so the last keystrokes
        # can reach the kernel after Enter's message: they belong to the submitted prompt.
        self._changed(at_once=time.monotonic() - self._submitted_at < SUBMIT_TAIL_S)

    def _on_prompt_msg(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            self.submit()

    def _on_prompt_slider(self, change: dict[str, Any]) -> None:
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

    def _on_control_slider(self, _: dict[str, Any]) -> None:
        if not (self._syncing or self._closed):
            self._controls_sender.schedule()

    def _send_controls(self) -> None:
        with self._send_lock:
            values = {name: float(slider.value) for name, slider in self.control_sliders.items()}
            if self._run("set_controls", lambda: self._session.set_controls(**values)):
                self._known_version = self._session.generation.version

    # -- reference image --------------------------------------------------------------------
    def _on_upload(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value or self._closed:
            return
        try:
            name, pixels = read_upload(value)
        except DecartNBError as error:
            self._show_upload_error(error)
        else:
            self._image, self._image_name = pixels, name
            self.upload_message.value = ""
            self._show_image()
            self._changed(at_once=True)
        finally:
            self.upload.value = ()  # so that choosing the same file again is a change

    def clear_image(self) -> None:
        """Drop the reference image and send the state without it."""
        self._image, self._image_name = None, ""
        self.upload_message.value = ""
        self._show_image()
        self._changed(at_once=True)

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
        self.thumbnail.tooltip = self._image_name or None
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
    def _on_event(self, event: str, payload: Any) -> None:
        # Called on the emitting thread (often the media loop): only cheap widget updates here.
        if self._closed:
            return
        self.readout.on_event(event, payload)
        if event == "connection_change":
            self.actions.show_state(payload)
        elif event == "model_change":
            self.actions.show_model(payload.name)
        elif event == "generation_change":
            self._follower.flush()

    def _show_state(self, state: str) -> None:
        self.readout.show_state(state)
        self.actions.show_state(state)

    def _add_error(self, error: DecartNBError) -> None:
        self.readout.add_error(error)

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
                self._image = state.image
                self._image_name = "reference image" if state.image is not None else ""
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
        self._session.unlisten(self._on_event)
        self._session.unlisten(self.event_log)  # callbacks print to the ordinary streams again
        self._state_sender.close()
        self._controls_sender.close()
        self._follower.close()
        self.camera.close()
        self._session.forget_view(self)  # displaying the session again builds a new panel
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
