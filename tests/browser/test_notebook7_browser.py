"""The camera widget in Notebook 7 (the README's "Where it runs" says it works there as in
JupyterLab): it renders, the page socket carries the page's messages, the fake camera's frames
reach the kernel over WebRTC and the transformed video plays in the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.lab import JupyterLab, LabNotebook, wait_element

from .test_camera_browser import LIVE_FPS, OUTPUT, ROOT, band_diff, best_stats, grab
from .test_panel_browser import EMPTY

pytestmark = pytest.mark.browser


def test_the_camera_widget_streams_over_webrtc_in_notebook_7(
    chromium: Any, artifacts: Path, tmp_path: Path
) -> None:
    with JupyterLab.start(tmp_path, app="notebook") as server:
        path = "camera.ipynb"
        server.api("PUT", f"contents/{path}", {"type": "notebook", "format": "json", "content": EMPTY})
        page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        nb = LabNotebook(page, server, path, artifacts)
        try:
            page.goto(server.url(f"notebooks/{path}"))
            nb.wait_kernel_idle()
            app = page.evaluate("() => window.jupyterapp.name")
            assert app == "Jupyter Notebook" and "/lab" not in page.url, (app, page.url)  # not JupyterLab
            nb.run_cell(
                'from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\ns'
            )
            wait_element(nb, ROOT, "el.dataset.state === 'generating' && el.dataset.status === 'live'", 60)
            wait_element(nb, ROOT, "el.dataset.transport === 'webrtc'")
            # Notebook 7's server has decart_nb_server too: the page's messages take its socket.
            wait_element(nb, ROOT, "el.dataset.socket === 'live'", 10)
            assert nb.wait_py("s.widget.active_transport == 'webrtc'", timeout=10), nb.diagnostics()
            stats = best_stats(nb)
            assert (stats["width"], stats["height"]) == (1280, 720), stats
            assert stats["fps_in"] >= LIVE_FPS, stats
            wait_element(nb, ROOT, "el.querySelector('video.decart-output').videoWidth > 0")
            output = grab(nb, OUTPUT)
            assert (output.width, output.height) == (1280, 720)
            assert nb.count_video_frames(OUTPUT, 2.0) >= LIVE_FPS, nb.diagnostics()  # live, not a still
            camera = grab(nb, f"{ROOT} video.decart-preview")
            assert band_diff(camera.rgb, output.rgb) > 10, "the output shows the camera untransformed"
            nb.screenshot("camera-notebook7")
            nb.execute("s.disconnect()")
            wait_element(nb, ROOT, "el.dataset.state === 'disconnected'", 30)
        finally:
            nb.close()
