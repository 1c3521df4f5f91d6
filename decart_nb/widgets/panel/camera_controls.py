"""Camera controls of the panel (mirror, facing mode, which camera), for camera sessions only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w

from ..change import Change
from .label import labelled

if TYPE_CHECKING:
    from ...session_core import Mirror
    from ...session_port import SessionPort
    from ..camera import CameraWidget

__all__ = ["CameraControls"]


_MIRRORS: list[tuple[str, Mirror]] = [("Off", False), ("On", True), ("Auto (front camera)", "auto")]
_DEFAULT = ("Default camera", "")


class CameraControls:
    """Mirror sets `session.mirror` (the camera widget forwards it to the page); facing mode and
    camera choice go to the camera widget (widgets/camera.py), whose page then asks the browser for
    that camera. Until a camera widget exists, facing mode is kept on the session for the next one."""

    def __init__(self, port: SessionPort) -> None:
        session = port.session
        self._session = session
        self._camera: CameraWidget | None = None
        self._syncing = False
        self.box: w.VBox | None = None
        if session.source != "camera":
            return
        # Labels beside the controls, not their descriptions (MathJax at a first display: label.py).
        self.mirror = w.Dropdown(options=_MIRRORS, value=session.mirror)
        self.mirror.observe(self._on_mirror, "value")
        self.facing = w.ToggleButtons(
            options=[("Front", "user"), ("Back", "environment")],
            value=session.facing_mode,
            style={"button_width": "72px"},
        )
        self.facing.observe(self._on_facing, "value")
        facing_row = labelled("Facing", self.facing)
        self.device = w.Dropdown(options=[_DEFAULT], value="")
        self.device.observe(self._on_device, "value")
        self.box = w.VBox([labelled("Mirror", self.mirror), facing_row, labelled("Camera", self.device)])
        self.box.add_class("dnb-camera")
        # The Session's lazily built video widget, if it exists already (never build it from here:
        # building it connects the session).
        existing = port.existing_view("widget")
        if existing is not None:
            self.attach(existing)

    def attach(self, camera: CameraWidget) -> None:
        """Follow a camera widget: its list of cameras, and the camera the page chose."""
        if self.box is None or camera is self._camera or not camera.has_trait("devices"):
            return
        self.close()
        self._camera = camera
        camera.observe(self._on_devices, "devices")
        camera.observe(self._on_device_id, "device_id")
        self._on_devices({"new": camera.devices})

    def _on_mirror(self, change: Change) -> None:
        self._session.mirror = change["new"]

    def _on_facing(self, change: Change) -> None:
        self._session.facing_mode = change["new"]
        if self._camera is not None:
            self._camera.facing_mode = change["new"]

    def _on_device(self, change: Change) -> None:
        if self._camera is not None and not self._syncing:
            self._camera.choose_camera(change["new"])

    def _on_device_id(self, change: Change) -> None:
        self._show_devices(self._camera.devices if self._camera is not None else [], change["new"])

    def _on_devices(self, change: Change) -> None:
        current = self._camera.device_id if self._camera is not None else ""
        self._show_devices(change["new"] or [], current)

    def _show_devices(self, devices: list[dict[str, str]], current: str) -> None:
        options = [_DEFAULT] + [
            (str(d.get("label") or f"Camera {i + 1}"), str(d.get("deviceId", "")))
            for i, d in enumerate(devices)
        ]
        self._syncing = True
        try:
            self.device.options = options
            self.device.value = current if current in {v for _, v in options} else ""
        finally:
            self._syncing = False

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.unobserve(self._on_devices, "devices")
            camera.unobserve(self._on_device_id, "device_id")
