"""The control panel: the panel itself (control.py), its session buttons (actions.py), camera
controls (camera_controls.py), live read-outs (live.py), prompt presets (presets.py), reference-image
upload (upload.py), the event log (event_log.py) and the debouncer that keeps Session calls off comm
threads (debounce.py)."""

from __future__ import annotations

from .control import PROMPT_DEBOUNCE_S, ControlPanel

__all__ = ["PROMPT_DEBOUNCE_S", "ControlPanel"]
