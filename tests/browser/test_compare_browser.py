"""compare() in a real page (issue 23): JupyterLab + Chromium with the fake camera, a comparison of
two local arms with two prompts displayed; the camera goes to the shared input, both arms' views
play live frames, and the two outputs differ. Screenshots of the compare view at 1440x900 (light
and dark) and 1920x1080 (light) go to artifacts/shots23/ for a person to look at."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.lab import REPO, JupyterLab, open_notebook

from .layout import scroll_to_view, set_theme

pytestmark = pytest.mark.browser

CELL = (
    "from decart_nb.comparison import compare\n"
    'cmp = compare([{"name": "anime", "prompt": "anime"}, {"name": "noir", "prompt": "film noir"}])\n'
    "cmp"
)
LIVE_S = 120.0  # a loaded 2-core machine starts three pipelines slowly; generous on purpose
# The grid's children: the shared input's cell, then one cell per arm, in order.
ARM_VIDEO = ".dnb-compare-grid > :nth-child({n}) video.decart-output"
PLAYING_JS = """(selector) => { const v = document.querySelector(selector);
  return !!v && v.videoWidth > 0 && v.currentTime > 1; }"""


def test_two_local_arms_play_side_by_side(chromium: Any, lab: JupyterLab) -> None:
    shots = REPO / "artifacts" / "shots23"
    shots.mkdir(parents=True, exist_ok=True)
    nb = open_notebook(chromium, lab)
    try:
        nb.page.set_viewport_size({"width": 1440, "height": 900})
        nb.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
        nb.run_cell(CELL)
        nb.page.wait_for_selector(".dnb-compare .dnb-compare-input", timeout=60_000)
        for n in (2, 3):  # both arms play what the kernel sends them
            nb.page.wait_for_function(PLAYING_JS, arg=ARM_VIDEO.format(n=n), timeout=LIVE_S * 1000)
        states = nb.wait_py(
            "all(s == 'generating' for s in cmp.state.values()) and cmp.state", timeout=LIVE_S
        )
        assert states == {"anime": "generating", "noir": "generating"}, nb.diagnostics()
        # The page's camera reached the shared input, which sends nothing back (the page previews it).
        assert nb.py("cmp.input.state") == "connected" and nb.py("cmp.input.stats['fps_out']") == 0
        # Live: each arm's video presents new frames (a few a second even on a machine loaded
        # by other work: no rate floor here); two prompts: two different pictures.
        for n in (2, 3):
            assert nb.count_video_frames(ARM_VIDEO.format(n=n), 3.0) >= 1.0, nb.diagnostics()
        anime, noir = (nb.grab_video(ARM_VIDEO.format(n=n)) for n in (2, 3))
        assert anime is not None and noir is not None
        assert float(np.abs(anime.rgb.astype(int) - noir.rgb.astype(int)).mean()) > 10
        # Each arm labelled with its own name, state and figures.
        labels = nb.page.locator(".dnb-compare-arm .dnb-compare-label").all_inner_texts()
        assert [t.splitlines()[0].split()[0] for t in labels] == ["anime", "noir"], labels
        nb.page.wait_for_function(
            "() => [...document.querySelectorAll('.dnb-compare-arm .dnb-compare-label')]"
            ".every((l) => /generating · \\d+ fps/.test(l.textContent))",
            timeout=30_000,
        )
        for width, height, themes in ((1440, 900, ("light", "dark")), (1920, 1080, ("light",))):
            nb.page.set_viewport_size({"width": width, "height": height})
            for theme in themes:
                set_theme(nb, f"JupyterLab {theme.capitalize()}")
                nb.page.locator(".jp-Notebook .jp-Cell").last.click()  # no focus ring in the view
                scroll_to_view(nb)
                nb.page.wait_for_timeout(1500)  # the labels' figures refresh once a second
                nb.page.screenshot(path=str(shots / f"compare-{width}x{height}-{theme}.png"))
        nb.execute("cmp.disconnect()")
    finally:
        nb.close()
