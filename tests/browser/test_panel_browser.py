"""The control panel in a real JupyterLab page: typing a prompt and uploading an image change the
output, and screenshots of the panel in the light and dark themes are kept as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.lab import JupyterLab, LabNotebook

pytestmark = pytest.mark.browser

# A model whose output shows its state at a glance: the reference image's mean colour, else a
# colour named in the prompt, else the input. The page's video and the kernel's snapshot can both
# be checked against it.
SETUP = """
import numpy as np
from decart_nb import Session
from decart_nb.engines import CallableEngine, Control

COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}

def paint(frame, state):
    if state.image is not None:
        colour = state.image.reshape(-1, 3).mean(axis=0)
    else:
        words = (state.prompt or "").lower().split()
        colour = next((COLOURS[w] for w in words if w in COLOURS), None)
        if colour is None:
            return frame
    out = np.empty_like(frame)
    out[:] = np.asarray(colour, dtype=np.uint8)
    return out

engine = CallableEngine(paint, controls=(Control("grain", "Grain", 0.0, 1.0, 0.1, 0.0),))
s = Session(source="pattern", engine=engine, prompts=["deep blue", "bright red", "film noir"]).connect()
s
"""
SNAPSHOT_RGB = "[round(float(v)) for v in np.asarray(s.snapshot()).reshape(-1, 3).mean(axis=0)]"
VIDEO = ".dnb-view video.decart-output"  # the video widget's output (widgets/static/camera.js)


def near(rgb: Any, expected: tuple[int, int, int], tolerance: float = 30.0) -> bool:
    return rgb is not None and float(np.abs(np.asarray(rgb, float) - expected).max()) <= tolerance


def video_rgb(nb: LabNotebook) -> list[float] | None:
    grab = nb.grab_video(VIDEO, scale=0.1)
    return None if grab is None else grab.rgb.reshape(-1, 3).mean(axis=0).tolist()


def wait_video(
    nb: LabNotebook, expected: tuple[int, int, int], timeout_s: float = 20.0
) -> list[float] | None:
    end = nb.page.evaluate("() => performance.now()") + timeout_s * 1000
    rgb = video_rgb(nb)
    while not near(rgb, expected) and nb.page.evaluate("() => performance.now()") < end:
        nb.page.wait_for_timeout(250)
        rgb = video_rgb(nb)
    return rgb


def choose_file(page: Any, path: Path) -> None:
    """Click the panel's Upload button and pick `path` in the file chooser it opens."""
    with page.expect_file_chooser() as chooser:
        page.locator(".dnb-panel .dnb-upload").click()
    chooser.value.set_files(str(path))


def set_theme(nb: LabNotebook, theme: str) -> None:
    nb.page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    nb.page.wait_for_function(
        "(light) => document.body.dataset.jpThemeLight === String(light)", arg=theme == "JupyterLab Light"
    )
    nb.page.wait_for_timeout(500)  # let the theme's CSS variables settle before the screenshot


def panel_shots(nb: LabNotebook, artifacts: Path, theme: str) -> None:
    set_theme(nb, theme)
    name = "light" if "Light" in theme else "dark"
    nb.page.locator(".dnb-panel").screenshot(path=str(artifacts / f"panel-{name}.png"))
    nb.screenshot(f"panel-page-{name}")


def test_typing_and_uploading_in_the_page_change_the_output(
    notebook: LabNotebook, artifacts: Path, tmp_path: Path
) -> None:
    nb = notebook
    nb.run_cell(SETUP)
    page = nb.page
    page.wait_for_selector(".dnb-panel .dnb-badge-generating", timeout=30_000)
    has_video = page.locator(VIDEO).count() > 0

    # Type a prompt; no Enter: the panel sends it after the pause in typing.
    prompt = page.locator(".dnb-panel .dnb-prompt input")
    prompt.click()
    prompt.press_sequentially("deep blue", delay=40)
    assert nb.wait_py("s.generation.prompt == 'deep blue'", timeout=15), nb.diagnostics()
    assert nb.py("s.generation.version") == 2, "one set() for the whole typed prompt"
    assert near(nb.py(SNAPSHOT_RGB), (40, 60, 220))
    if has_video:
        rgb = wait_video(nb, (40, 60, 220))
        assert near(rgb, (40, 60, 220)), (rgb, nb.diagnostics())

    # Scrub the prompt slider one step with the keyboard: the session's second prompt.
    page.locator(".dnb-panel .dnb-prompt-slider .noUi-handle").press("ArrowRight")
    assert nb.wait_py("s.generation.prompt == 'bright red'", timeout=15), nb.diagnostics()
    assert near(nb.py(SNAPSHOT_RGB), (220, 40, 40))

    # Replace it and press Enter. With the pause-in-typing send pushed a minute away, only the
    # page's Enter can send it within the wait.
    nb.execute("s.panel._state_sender._delay = 60.0")
    prompt.fill("")
    prompt.press_sequentially("deep blue sea", delay=20)
    prompt.press("Enter")
    assert nb.wait_py("s.generation.prompt == 'deep blue sea'", timeout=15), nb.diagnostics()
    nb.execute("s.panel._state_sender._delay = 0.3")
    assert near(nb.py(SNAPSHOT_RGB), (40, 60, 220))

    # Upload a green reference image: the output takes its colour, the thumbnail shows it.
    picture = tmp_path / "green.png"
    Image.new("RGB", (120, 90), (30, 190, 70)).save(picture)
    choose_file(page, picture)
    assert nb.wait_py("s.generation.image is not None", timeout=15), nb.diagnostics()
    assert nb.py("s.generation.prompt") == "deep blue sea"  # sent together with the image
    assert near(nb.py(SNAPSHOT_RGB), (30, 190, 70))
    page.wait_for_selector(".dnb-panel .dnb-thumb", state="visible", timeout=10_000)
    if has_video:
        rgb = wait_video(nb, (30, 190, 70))
        assert near(rgb, (30, 190, 70)), (rgb, nb.diagnostics())

    # A file that is not an image: a message with its code, and the state stays.
    bogus = tmp_path / "notes.png"
    bogus.write_bytes(b"not an image at all")
    choose_file(page, bogus)
    page.wait_for_selector(".dnb-panel .dnb-message.dnb-bad:has-text('INVALID_INPUT')", timeout=10_000)
    assert near(nb.py(SNAPSHOT_RGB), (30, 190, 70))

    # Snapshot and a 1 s recording, shown under the panel; the kernel stays free meanwhile.
    page.locator(".dnb-panel button:has-text('Snapshot')").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('.dnb-outputs img');"
        " return i && i.naturalWidth === 1280; }",
        timeout=20_000,
    )
    page.locator(".dnb-panel .dnb-labelled:has-text('Record (s)') input").fill("1")  # label.py
    page.locator(".dnb-panel button[title='Record']").click()  # not Record camera beside it
    assert nb.py("1 + 1") == 2  # the kernel answers while the panel records
    page.wait_for_function(
        "() => { const v = document.querySelector('.dnb-outputs video');"
        " return v && v.readyState >= 1 && Math.abs(v.duration - 1) < 0.5; }",
        timeout=30_000,
    )

    panel_shots(nb, artifacts, "JupyterLab Light")
    panel_shots(nb, artifacts, "JupyterLab Dark")
    dark_panel = page.evaluate("() => getComputedStyle(document.querySelector('.dnb-panel')).backgroundColor")
    set_theme(nb, "JupyterLab Light")
    light_panel = page.evaluate(
        "() => getComputedStyle(document.querySelector('.dnb-panel')).backgroundColor"
    )
    assert dark_panel != light_panel, "the panel follows the theme"
    nb.execute("s.disconnect()")
    page.wait_for_selector(".dnb-panel .dnb-badge-disconnected", timeout=30_000)


def test_camera_controls_in_the_page(notebook: LabNotebook, artifacts: Path) -> None:
    """A camera session with the local model: the panel lists the page's cameras, and the mirror
    control reaches the session."""
    nb = notebook
    nb.run_cell("from decart_nb import Session\ns = Session(prompt='film noir')\ns")
    page = nb.page
    page.wait_for_selector(".dnb-panel .dnb-badge-generating", timeout=60_000)
    assert nb.wait_py("len(s.panel.camera.device.options) > 1", timeout=20), nb.diagnostics()
    assert nb.py("s.panel.prompt_slider.max") >= 2  # the local model's presets
    page.locator(".dnb-panel .dnb-fold-camera .dnb-fold-toggle").click()  # closed until asked for
    page.locator(".dnb-panel .dnb-camera select").first.select_option(label="On")
    assert nb.wait_py("s.mirror is True", timeout=10), nb.diagnostics()
    page.locator(".dnb-panel .dnb-fold-session .dnb-fold-toggle").click()  # Model's label, for the shot
    page.locator(".dnb-panel").screenshot(path=str(artifacts / "panel-camera-light.png"))
    nb.execute("s.disconnect()")
    page.wait_for_selector(".dnb-panel .dnb-badge-disconnected", timeout=30_000)


# -- Notebook 7 --------------------------------------------------------------------------------
def test_the_panel_in_notebook_7(chromium: Any, artifacts: Path, tmp_path: Path) -> None:
    with JupyterLab.start(tmp_path, app="notebook") as server:
        path = "panel.ipynb"
        server.api("PUT", f"contents/{path}", {"type": "notebook", "format": "json", "content": EMPTY})
        page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        nb = LabNotebook(page, server, path, artifacts)
        try:
            page.goto(server.url(f"notebooks/{path}"))
            nb.wait_kernel_idle()
            nb.run_cell(SETUP)
            page.wait_for_selector(".dnb-panel .dnb-badge-generating", timeout=30_000)
            prompt = page.locator(".dnb-panel .dnb-prompt input")
            prompt.click()
            prompt.press_sequentially("bright red", delay=30)
            prompt.press("Enter")
            assert nb.wait_py("s.generation.prompt == 'bright red'", timeout=15), nb.diagnostics()
            assert near(nb.py(SNAPSHOT_RGB), (220, 40, 40))
            page.locator(".dnb-panel").screenshot(path=str(artifacts / "panel-notebook7.png"))
            nb.screenshot("panel-page-notebook7")
            nb.execute("s.disconnect()")
        finally:
            nb.close()


EMPTY = {
    "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


# -- the event log -----------------------------------------------------------------------------
LOG = ".dnb-panel .dnb-events .dnb-log"
LOG_TEXT_JS = """([selector, mime]) => [...document.querySelectorAll(
  `${selector} .jp-OutputArea-output[data-mime-type="${mime}"]`)].map((e) => e.textContent).join('')"""


def log_text(nb: LabNotebook, mime: str) -> str:
    """The event log's text in the page, of one kind of output (stdout, stderr, plain lines)."""
    return str(nb.page.evaluate(LOG_TEXT_JS, [LOG, mime]))


def test_callbacks_print_and_fail_into_the_event_log_after_their_cells(
    notebook: LabNotebook, artifacts: Path
) -> None:
    """Issue 18: events come after the cell that caused them (connect() holds them to its end);
    what the callbacks print, and a callback's traceback, are in the page's event log."""
    nb = notebook
    nb.page.set_viewport_size({"width": 1440, "height": 900})
    nb.run_cell(
        'from decart_nb import Session\ns = Session(source="pattern")\ns.on("connection_change", print)\ns'
    )
    nb.page.wait_for_selector(LOG, state="attached", timeout=30_000)
    nb.run_cell(
        "def picky(state):\n"
        "    if state == 'generating':\n"
        "        raise RuntimeError(f'picky about {state}')\n"
        "s.on('connection_change', picky)\n"
        "s.disconnect()\n"
        "s.connect();"  # (the session once in the page: connect() returns it)
    )
    stdout = "application/vnd.jupyter.stdout"
    nb.page.wait_for_function(
        f"(a) => ({LOG_TEXT_JS})(a).includes('generating')", arg=[LOG, stdout], timeout=30_000
    )
    printed = log_text(nb, stdout)
    assert "connecting\nconnected\ngenerating\n" in printed, (printed, nb.diagnostics())
    nb.page.wait_for_function(
        f"(a) => ({LOG_TEXT_JS})(a).includes('picky about generating')",
        arg=[LOG, "application/vnd.jupyter.stderr"],
        timeout=30_000,
    )
    traceback = log_text(nb, "application/vnd.jupyter.stderr")
    assert "Traceback" in traceback and "RuntimeError: picky about generating" in traceback, traceback
    lines = log_text(nb, "text/plain")  # plain: an Output's HTML loads MathJax (issue 24)
    assert "generating" in lines and "connection_change callback" in lines, lines

    # A later cell's disconnect: its event comes while no cell runs, and is printed in the log too.
    # The cell's own prints still go to the cell: only the dispatcher thread's are routed.
    assert nb.run_cell("s.disconnect()\nprint('from the cell')") == "from the cell\n"
    nb.page.wait_for_function(
        f"(a) => ({LOG_TEXT_JS})(a).endsWith('generating\\ndisconnected\\n')",
        arg=[LOG, stdout],
        timeout=30_000,
    )
    nb.page.locator(".dnb-panel .dnb-events button:has-text('Show')").click()  # open, for the shots
    nb.page.wait_for_selector(LOG, state="visible", timeout=10_000)
    for theme in ("JupyterLab Light", "JupyterLab Dark"):
        set_theme(nb, theme)
        name = "light" if "Light" in theme else "dark"
        nb.page.locator(".dnb-panel .dnb-events").screenshot(path=str(artifacts / f"event-log-{name}.png"))
        nb.screenshot(f"event-log-page-{name}")
    set_theme(nb, "JupyterLab Light")
