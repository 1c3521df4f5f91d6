"""What displaying a Session shows: the video widget and the control panel.

panel.css lays them out from the output area's width alone, never from what they show, so nothing
moves when the state changes: the videos keep a 16:9 box as wide as the row allows; the panel sits
beside them where the output area is wide, under them (its dock in two columns) where it is not.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

import ipywidgets as w

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["session_view"]

logger = logging.getLogger("decart_nb")


def session_view(session: Session) -> w.Box:
    """The video (camera in, transformed video out) and the panel. Without a video widget, the
    panel alone, with the reason."""
    try:
        video = session.widget
    except Exception as exc:  # noqa: BLE001 - shown in the view and logged; the panel still works
        logger.warning("decart_nb: the video widget is unavailable, showing the panel alone: %r", exc)
        return _panel_alone(session.panel, exc)
    panel = session.panel
    panel.camera.attach(video)
    video.add_class("dnb-video")
    box = w.HBox([video, panel])
    box.add_class("dnb-view")
    return box


def _panel_alone(panel: w.Widget, exc: BaseException) -> w.Box:
    note = w.HTML(
        '<div class="dnb-message dnb-bad">Video unavailable: '
        f"<code>{html.escape(type(exc).__name__)}</code> {html.escape(str(exc))}</div>"
    )
    note.add_class("dnb-view-note")  # a row of its own above the panel (panel.css)
    box = w.VBox([note, panel])
    box.add_class("dnb-view")
    return box
