"""The control panel: the panel itself and its layout (control.py: the dock of primary controls,
the rest in collapsible sections, sections.py), its session buttons (actions.py) and the previews
of saved files (previews.py), camera controls (camera_controls.py), the live read-out (readout.py,
live.py), prompt presets (presets.py), reference-image upload (upload.py), the event log
(event_log.py) and the debouncer that keeps Session calls off comm threads (debounce.py)."""

from __future__ import annotations

from .control import PROMPT_DEBOUNCE_S, ControlPanel

__all__ = ["PROMPT_DEBOUNCE_S", "ControlPanel"]
