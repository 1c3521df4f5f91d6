"""Faults that need the page (issue 9): the page reloads mid-stream; the kernel restarts with the
page open and the user starts again (that the restart stops the camera is
tests/browser/test_camera_browser.py::test_a_kernel_restart_stops_the_camera)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.lab import LabNotebook, open_notebook, wait_element

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"
# The kernel's view of the page's camera: its peers, and the camera frames that reach the model.
PEERS = "len(s._peers.peer_set.peers)"
FRAMES_IN = "s.stats.get('frames_in', 0)"
START = (
    "from decart_nb import Session\n"
    's = Session(source="camera", prompt="pencil sketch")\n'
    "states = []\n"
    "s.on('connection_change', states.append)\n"
    "s"
)
LIVE = "el.dataset.status === 'live' && el.dataset.state === 'generating'"


def assert_frames_flow(nb: LabNotebook) -> None:
    frames = nb.py(FRAMES_IN)
    assert nb.wait_py(f"{FRAMES_IN} > {frames} + 30", timeout=15), nb.py("s.stats")


def test_a_page_reloaded_mid_stream_is_noticed_and_displaying_again_resumes(
    chromium: Any, lab: Any, artifacts: Path
) -> None:
    nb = open_notebook(chromium, lab, "reload.ipynb", artifacts)
    try:
        nb.run_cell(START)
        wait_element(nb, ROOT, LIVE)
        nb.page.reload()
        nb.wait_kernel_idle()
        # The kernel learns that the camera went away: no frozen `generating` over a dead peer.
        assert nb.wait_py("'reconnecting' in states", timeout=15), nb.py("states")
        assert nb.py("s.state") == "reconnecting"
        # The user shows the session again in the reloaded page: the camera comes back.
        nb.run_cell("s")
        wait_element(nb, ROOT, LIVE, timeout=40)
        assert_frames_flow(nb)
        assert nb.py("states[-1]") == "generating" and nb.py(PEERS) == 1, nb.py(f"(states, {PEERS})")
        nb.screenshot("reloaded-page-live")
        nb.run_cell("s.disconnect()")
    finally:
        nb.close()


def test_after_a_kernel_restart_with_the_page_open_a_new_session_runs_in_the_same_page(
    chromium: Any, lab: Any, artifacts: Path
) -> None:
    nb = open_notebook(chromium, lab, "restart.ipynb", artifacts)
    try:
        nb.run_cell(START)
        wait_element(nb, ROOT, LIVE)
        nb.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()"
        )
        nb.wait_kernel_idle()
        assert nb.py("'s' not in globals()")  # a fresh kernel
        # The old widget is dead; a new session in the same page gets the camera and generates.
        nb.run_cell(START)
        newest = f"[...document.querySelectorAll('{ROOT}')].at(-1)"  # the new cell's widget
        nb.page.wait_for_function(
            f"() => {{ const el = {newest}; return !!el && ({LIVE}); }}", timeout=40_000, polling=250
        )
        assert_frames_flow(nb)
        assert nb.py("states[-1]") == "generating" and nb.py(PEERS) == 1
        nb.screenshot("after-kernel-restart-live")
        nb.run_cell("s.disconnect()")
    finally:
        nb.close()
