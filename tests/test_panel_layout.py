"""The panel's layout without a browser: what the dock holds, which sections open when, and what
the upload button shows (its count is the number of files in FileUpload's value)."""

from __future__ import annotations

import time

import ipywidgets as w
import pytest

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.widgets import compare_view
from decart_nb.widgets.panel import ControlPanel
from decart_nb.widgets.panel import control as panel_module
from decart_nb.widgets.panel.sections import Section
from decart_nb.widgets.sheets import style_sheets
from tests.helpers import png_bytes, wait_until
from tests.test_panel import SETTLE_S, Spy, image_bytes, live, upload

__all__ = ["live"]  # the fixture, shared with test_panel.py


def descendants(widget: w.Widget) -> list[w.Widget]:
    found = [widget]
    for child in getattr(widget, "children", ()):
        found.extend(descendants(child))
    return found


def test_the_dock_holds_what_a_person_uses_all_the_time() -> None:
    s = Session(source="camera")
    panel = s.panel
    try:
        dock = descendants(panel.dock)
        for part in (
            panel.badge,
            panel.timer,
            panel.stats,
            panel.prompt_box,
            panel.enhance_box,
            panel.thumbnail,
            panel.upload,
            panel.clear_button,
            panel.actions.snapshot_button,
            panel.actions.record_button,
            panel.actions.record_seconds,
        ):
            assert part in dock, part
        sections = panel.sections
        assert set(sections) == {"outputs", "errors", "controls", "camera", "session"}
        assert not any(section.expanded for section in sections.values()), "closed until asked for"
        assert panel.camera.box in descendants(sections["camera"])
        assert panel.actions.model_picker in descendants(sections["session"])
        assert panel.actions.outputs in descendants(sections["outputs"])
        assert panel.event_log.box in panel.children and panel.event_log.output.layout.display == "none"
        everywhere = [child for child in descendants(panel) if child is not panel]
        assert len(everywhere) == len({id(child) for child in everywhere}), "a widget placed twice"
    finally:
        panel.close()


def test_a_section_opens_and_closes_from_python_and_its_page_toggle() -> None:
    section = Section("Camera", w.Label("inside"), name="camera")
    assert not section.expanded and section.toggle.value is False
    section.toggle.value = True  # what a click in the page sends
    assert section.expanded
    section.expanded = False
    assert section.toggle.value is False
    assert "dnb-fold-camera" in section._dom_classes and "dnb-fold-body" in section.body._dom_classes
    css = panel_module._css()
    # The page hides a closed section's body itself: no kernel round trip for a click.
    assert ".dnb-fold > .dnb-fold-toggle:not(.mod-active) ~ .dnb-fold-body { display: none; }" in css


def test_the_error_list_shows_and_opens_when_an_error_arrives() -> None:
    s = Session(source="pattern")
    panel = s.panel
    try:
        errors = panel.sections["errors"]
        assert errors.layout.display == "none" and not errors.expanded  # nothing to show
        s._core.events.emit("error", DecartNBError(ErrorCode.ENGINE_ERROR, "it broke"))
        assert wait_until(lambda: errors.expanded and errors.layout.display is None)
        assert "it broke" in panel.errors_box.value
        errors.expanded = False  # a person closes it; the list stays
        assert errors.layout.display is None
    finally:
        panel.close()


def test_the_upload_count_is_the_held_image_and_the_same_file_can_be_chosen_again(
    live: tuple[Session, ControlPanel, Spy],
) -> None:
    s, panel, spy = live
    panel.prompt_box.value = "anime"
    good = image_bytes("PNG", color=(200, 40, 40))
    upload(panel, good, "red.png", "image/png")
    assert wait_until(lambda: len(spy.sets) == 1 and s.generation.image is not None)
    assert len(panel.upload.value) == 1, "the button says Upload (1) while the upload is held"
    assert "red.png" in panel.image_name.value

    upload(panel, b"not an image", "notes.png", "image/png")  # a bad file: the good one stays
    assert wait_until(lambda: ErrorCode.INVALID_INPUT in panel.upload_message.value)
    assert len(panel.upload.value) == 1 and panel.upload.value[0]["name"] == "red.png"
    assert "red.png" in panel.image_name.value
    panel.upload_message.value = ""
    upload(panel, b"not an image", "notes.png", "image/png")  # the same bad file again: told again
    assert wait_until(lambda: ErrorCode.INVALID_INPUT in panel.upload_message.value)

    panel.clear_button.click()
    assert wait_until(lambda: s.generation.image is None)
    assert panel.upload.value == () and "red.png" not in panel.image_name.value
    upload(panel, good, "red.png", "image/png")  # the same file as before the Clear
    assert wait_until(lambda: s.generation.image is not None), "choosing it again sent it"
    assert len(panel.upload.value) == 1

    s.set(prompt="anime", image=png_bytes((10, 10, 200)))  # a cell's image replaces the upload
    assert wait_until(lambda: panel.upload.value == () and "red.png" not in panel.image_name.value)
    sets = len(spy.sets)
    upload(panel, good, "red.png", "image/png")  # so the same file can be chosen once more
    assert wait_until(lambda: len(spy.sets) == sets + 1 and s.generation.image[..., 0].mean() > 150)
    time.sleep(SETTLE_S)


@pytest.mark.parametrize("state", ["connecting", "generating", "disconnected"])
def test_the_view_is_laid_out_by_css_alone(state: str) -> None:
    """No inline sizes on the view, the video or the panel: panel.css sizes them from the output
    area's width, the same in every state."""
    from decart_nb.widgets.view import session_view

    s = Session(source="pattern")
    try:
        view = session_view(s)
        s._core.events.emit("connection_change", state)
        for part in (view, *view.children):
            assert part.layout.width is None and part.layout.flex is None and part.layout.flex_flow is None
        assert "dnb-view" in view._dom_classes and "dnb-video" in view.children[0]._dom_classes
    finally:
        s.panel.close()
        s.disconnect()


def test_without_video_the_reason_has_a_row_above_the_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from decart_nb.widgets.view import session_view

    monkeypatch.setitem(sys.modules, "decart_nb.widgets.camera", None)  # the import fails
    s = Session(source="pattern")
    try:
        view = session_view(s)
        assert "dnb-view-note" in view.children[0]._dom_classes and view.children[1] is s.panel
        assert ".dnb-view > .dnb-view-note {\n  flex: 1 1 100%;" in panel_module._css()
    finally:
        s.panel.close()


def test_the_panel_and_the_compare_view_take_the_enhance_toggles_look_from_one_sheet() -> None:
    toggle = style_sheets("toggle.css")
    assert '.dnb-enhance::before { content: "\\2610' in toggle  # the box's two states, in words
    assert '.dnb-enhance.mod-active::before { content: "\\2611' in toggle
    assert toggle in panel_module._css() and toggle in compare_view._STYLE
    own = style_sheets("panel.css", "readout.css", "compare.css")
    assert "dnb-enhance::before" not in own and "dnb-enhance.mod-active::before" not in own
