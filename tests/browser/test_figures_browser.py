"""One set of figures in a real JupyterLab page (issue 21): the video's status line and the panel's
read-out show the same figures under the same names (WebRTC's round trip among them, measured by
the page), and after Disconnect both show dashes and the timer 0:00."""

from __future__ import annotations

import pytest

from decart_nb.figures import DASH, FIGURE_NAMES
from harness.lab import LabNotebook, wait_element

pytestmark = pytest.mark.browser

STATUS = ".decart-camera .decart-stats"
PANEL = ".dnb-panel .dnb-stats"
# {name: value} of the figures an element shows (each one a [data-figure] with its value in <b>).
FIGURES = """(selector) => Object.fromEntries([...document.querySelectorAll(
  `${selector} [data-figure]`)].map((f) => [f.dataset.figure, f.querySelector('b').textContent]))"""


def shown(nb: LabNotebook, selector: str) -> dict[str, str]:
    return dict(nb.page.evaluate(FIGURES, selector))


def test_the_status_line_and_the_panel_show_one_set_of_figures_and_clear_them(notebook: LabNotebook) -> None:
    nb = notebook
    nb.run_cell('from decart_nb import Session\ns = Session(source="camera", prompt="anime")\ns')
    assert nb.wait_py("s.state == 'generating'", timeout=60), nb.diagnostics()
    # The page reports WebRTC's round trip every 2 s: once it is shown, every figure is.
    measured = (
        "[...el.querySelectorAll('[data-figure]')].every((f) => f.querySelector('b').textContent !== '–')"
    )
    wait_element(nb, STATUS, measured, timeout=60)
    status, panel = shown(nb, STATUS), shown(nb, PANEL)
    assert list(status) == list(panel) == list(FIGURE_NAMES), (status, panel)
    assert status["camera"] == panel["camera"] == "1280×720", (status, panel)
    assert status["round trip"].endswith(" ms") and status["link"].startswith("WebRTC"), status
    wait_element(nb, PANEL, "el.textContent.includes(' ms')")  # the panel's round trip, too

    nb.execute("s.disconnect()")
    wait_element(nb, STATUS, "[...el.querySelectorAll('b')].every((b) => b.textContent === '–')")
    wait_element(nb, PANEL, "[...el.querySelectorAll('b')].every((b) => b.textContent === '–')")
    assert set(shown(nb, STATUS).values()) == set(shown(nb, PANEL).values()) == {DASH}
    assert nb.page.inner_text(".dnb-panel .dnb-timer") == "0:00"
