"""The session view's layout in a real page (issue 21): at 1440x900 in JupyterLab with the file
browser open, at 1920x1080, and in Notebook 7 at 1440x900, the videos, the state badge, the prompt,
the reference image, Snapshot and Record are on screen without scrolling and overlap nothing; the
videos keep their size when the session disconnects; a narrow notebook does not overflow sideways;
the upload button's count follows the held image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from harness.lab import JupyterLab, LabNotebook

from .layout import PARTS, Box, clipped_by, measure, open_view, overlaps, page_overflow, scroll_to_view

pytestmark = pytest.mark.browser

CELL = 'from decart_nb import Session\ns = Session(source="camera", prompt="anime")\ns'
LIVE_S = 120.0  # a loaded 2-core machine starts the local model slowly; generous on purpose
UPLOAD = ".dnb-panel .dnb-upload"
# The second session view's video widget and panel (the first is the camera session's).
BESIDE_JS = """(() => {
  const view = document.querySelectorAll('.dnb-view')[1];
  const video = view && view.querySelector('.decart-receive');
  const panel = view && view.querySelector('.dnb-panel');
  return video && panel ? [video.getBoundingClientRect(), panel.getBoundingClientRect()].map(
    (r) => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom})) : null;
})()"""


def wait_badge(nb: LabNotebook, state: str) -> None:
    nb.page.wait_for_selector(f".dnb-panel .dnb-badge-{state}", timeout=LIVE_S * 1000)


def check_on_screen(nb: LabNotebook, where: str) -> dict[str, Box]:
    """Every part inside the viewport, no two overlapping; the boxes."""
    scroll_to_view(nb)
    size = nb.page.viewport_size
    found = measure(nb)
    missing = [name for name, box in found.items() if box is None]
    assert not missing, f"{where}: not rendered: {missing}\n{nb.diagnostics()}"
    boxes = {name: box for name, box in found.items() if box is not None}
    outside = {name: box for name, box in boxes.items() if not box.inside(size["width"], size["height"])}
    assert not outside, f"{where}: off screen in {size}: {outside}"
    names = list(PARTS)
    clashes = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if overlaps(boxes[a], boxes[b])]
    assert not clashes, f"{where}: overlapping: {clashes} {boxes}"
    # The prompt box whole, its right border too (a box's overflow clip once cut it off).
    assert clipped_by(nb, ".dnb-panel .dnb-prompt input") == "", clipped_by(
        nb, ".dnb-panel .dnb-prompt input"
    )
    return boxes


def same_size(a: Box, b: Box) -> bool:
    return abs(a.width - b.width) <= 2 and abs(a.height - b.height) <= 2


def choose_file(nb: LabNotebook, path: Path) -> None:
    with nb.page.expect_file_chooser() as chooser:
        nb.page.locator(UPLOAD).click()
    chooser.value.set_files(str(path))


def upload_text(nb: LabNotebook) -> str:
    return str(nb.page.locator(UPLOAD).inner_text()).strip()


def test_the_view_fits_and_holds_still_in_jupyterlab(
    chromium: Any, lab: JupyterLab, artifacts: Path, tmp_path: Path
) -> None:
    nb = open_view(chromium, lab, 1440, 900, CELL, artifacts)
    try:
        wait_badge(nb, "generating")
        live = check_on_screen(nb, "JupyterLab 1440x900, file browser open")
        assert live["camera"].width >= 400, f"the videos are small: {live['camera']}"
        nb.screenshot("layout-1440")

        # The upload button counts the held image; the same file can be chosen again after Clear.
        picture = tmp_path / "green.png"
        Image.new("RGB", (120, 90), (30, 190, 70)).save(picture)
        choose_file(nb, picture)
        assert nb.wait_py("s.generation.image is not None", timeout=30), nb.diagnostics()
        nb.page.wait_for_function(f"() => document.querySelector('{UPLOAD}').textContent.includes('(1)')")
        assert "green.png" in nb.page.locator(".dnb-panel .dnb-image-name").inner_text()
        nb.page.locator(".dnb-panel button:has-text('Clear')").first.click()
        assert nb.wait_py("s.generation.image is None", timeout=30), nb.diagnostics()
        nb.page.wait_for_function(f"() => document.querySelector('{UPLOAD}').textContent.includes('(0)')")
        choose_file(nb, picture)
        assert nb.wait_py("s.generation.image is not None", timeout=30), "the same file again"
        assert "(1)" in upload_text(nb), upload_text(nb)

        # Disconnected: the videos keep their size, nothing moves onto them.
        nb.execute("s.disconnect()")
        wait_badge(nb, "disconnected")
        nb.page.wait_for_timeout(500)  # the page's last state renders
        stopped = check_on_screen(nb, "JupyterLab 1440x900, disconnected")
        for part in ("camera", "output"):
            assert same_size(live[part], stopped[part]), (part, live[part], stopped[part])

        # 1920x1080: everything on screen too, the videos larger.
        nb.execute("s.connect();")
        wait_badge(nb, "generating")
        nb.page.set_viewport_size({"width": 1920, "height": 1080})
        wide = check_on_screen(nb, "JupyterLab 1920x1080, file browser open")
        assert wide["camera"].width >= live["camera"].width, (wide["camera"], live["camera"])
        nb.screenshot("layout-1920")

        # Narrow: the view stacks inside its output area, nothing sticks out sideways.
        nb.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        for width in (700, 480):
            nb.page.set_viewport_size({"width": width, "height": 900})
            nb.page.wait_for_timeout(500)
            assert page_overflow(nb) == [], (width, page_overflow(nb))
        nb.screenshot("layout-narrow")
        nb.execute("s.disconnect()")

        # Without a camera there is one video: the panel sits beside it when the row has room.
        nb.page.set_viewport_size({"width": 1440, "height": 900})
        nb.run_cell('p = Session(source="pattern")\np')
        nb.page.wait_for_function(f"() => ({BESIDE_JS}) !== null", timeout=LIVE_S * 1000)
        video, panel = nb.page.evaluate(BESIDE_JS)
        assert panel["left"] >= video["right"] and panel["top"] < video["bottom"], (video, panel)
        nb.execute("p.disconnect()")
    finally:
        nb.close()


def test_the_view_fits_in_notebook_7(chromium: Any, artifacts: Path, tmp_path: Path) -> None:
    with JupyterLab.start(tmp_path, app="notebook") as server:
        nb = open_view(chromium, server, 1440, 900, CELL, artifacts)
        try:
            wait_badge(nb, "generating")
            check_on_screen(nb, "Notebook 7 1440x900")
            assert page_overflow(nb) == [], page_overflow(nb)
            nb.screenshot("layout-notebook7")
            nb.execute("s.disconnect()")
        finally:
            nb.close()
