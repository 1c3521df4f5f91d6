"""What displaying a Session shows: the video widget beside the control panel."""

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
    """The video (camera in, transformed video out) and the panel, side by side; they wrap onto
    two rows in a narrow notebook. Without a video widget, the panel alone, with the reason."""
    try:
        video = session.widget
    except Exception as exc:  # noqa: BLE001 - shown in the view and logged; the panel still works
        logger.warning("decart_nb: the video widget is unavailable, showing the panel alone: %r", exc)
        return _panel_alone(session.panel, exc)
    panel = session.panel
    panel.camera.attach(video)
    box = w.HBox([video, panel], layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
    box.add_class("dnb-view")
    return box


def _panel_alone(panel: w.Widget, exc: BaseException) -> w.Box:
    note = w.HTML(
        '<div class="dnb-message dnb-bad">Video unavailable: '
        f"<code>{html.escape(type(exc).__name__)}</code> {html.escape(str(exc))}</div>"
    )
    box = w.VBox([note, panel])
    box.add_class("dnb-view")
    return box
