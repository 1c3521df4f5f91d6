"""The page reaches the kernel while a cell runs (issue 18), in a real JupyterLab + Chromium, with
decart_nb_server (the page's messages have a socket of their own) and without it (a server from
another environment: they come as comm messages, which blocking Session calls handle while they
wait).

- One cell `display(s); s.snapshot()` returns a frame within 3 s of the cell's start.
- A cell that sleeps 20 s while the page loads the widget: with the extension frames reach the
  kernel's pipeline within 2 s of display; without it the page says it waits for the kernel, and
  frames come within 2 s of the cell's end.

Times are taken in the kernel (time.monotonic), so a slow page-to-test round trip does not count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import JupyterLab, LabNotebook, open_notebook, relay_status

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"
WAITING = "waiting for the kernel (a cell is running)"
FIRST_FRAME_S = 3.0  # the issue's: one cell display + snapshot
LIVE_AFTER_S = 2.0  # the issue's: display (extension) or the cell's end (none) to frames in the kernel
SLEEP_S = 20.0

# The kernel imports decart_nb (and aiortc, av) before the timed cell: a first import is the
# kernel's start-up, not the page reaching it.
IMPORTS = "import threading, time\nfrom decart_nb import Session\nimport decart_nb.widgets.camera"

# A thread in the kernel notes when the session's pipeline has its first camera frame.
WATCH = """
_marks = {}

def _watch_frames(session, deadline):
    while time.monotonic() < deadline:
        if session.stats.get("frames_in", 0) > 0:
            _marks["first_frame"] = time.monotonic()
            return
        time.sleep(0.05)
"""

ONE_CELL = """_t0 = time.monotonic()
s = Session(source="camera")
display(s)
img = s.snapshot(timeout=15)
_elapsed = time.monotonic() - _t0"""

SLEEPING_CELL = f"""s = Session(source="camera")
display(s)
_marks["display"] = time.monotonic()
threading.Thread(target=_watch_frames, args=(s, time.monotonic() + 90), daemon=True).start()
time.sleep({SLEEP_S})
_marks["cell_end"] = time.monotonic()"""


def page_text(nb: LabNotebook) -> str:
    """The camera widget's visible text (status line, notice), lower case."""
    text = nb.page.evaluate(f"() => document.querySelector('{ROOT}')?.innerText ?? ''")
    return str(text).lower()


def assert_webrtc(nb: LabNotebook) -> None:
    """The camera came over WebRTC: a kernel that was busy when the page connected is no reason to
    fall back to the comm (the page's transport message can come a moment after the first frame)."""
    if not nb.wait_py("s.stats.get('transport') == 'webrtc'", timeout=10):
        raise AssertionError(f"not on WebRTC: {nb.py('s.stats')}\n{nb.diagnostics()}")


@contextlib.contextmanager
def notebook_on(lab: JupyterLab, chromium: Any, artifacts: Path, shot: str) -> Iterator[LabNotebook]:
    """A notebook on `lab` with decart_nb imported and the frame watcher defined."""
    nb = open_notebook(chromium, lab, artifacts=artifacts)
    try:
        nb.run_cell(IMPORTS + "\n" + WATCH)
        yield nb
    finally:
        nb.screenshot(shot)
        nb.close()


@pytest.mark.parametrize("extension", [True, False], ids=["extension", "no-extension"])
def test_one_cell_display_and_snapshot_returns_a_frame(
    extension: bool, chromium: Any, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    lab: JupyterLab = request.getfixturevalue("lab" if extension else "lab_without_server")
    with notebook_on(lab, chromium, artifacts, f"one-cell-snapshot-{request.node.callspec.id}") as nb:
        nb.run_cell(ONE_CELL, timeout=60)
        size, elapsed = nb.py("[img.size, _elapsed]")
        print(f"one cell display + snapshot: {elapsed:.2f} s")
        assert size == [1280, 720], size
        assert elapsed < FIRST_FRAME_S, f"snapshot after {elapsed:.2f} s\n{nb.diagnostics()}"
        assert_webrtc(nb)


def test_a_sleeping_cell_gets_frames_while_it_sleeps_with_the_extension(
    chromium: Any, lab: JupyterLab, artifacts: Path
) -> None:
    assert relay_status(lab) != 404, lab.log_tail()  # the relay is there
    with notebook_on(lab, chromium, artifacts, "sleeping-cell-extension") as nb:
        nb.run_cell(SLEEPING_CELL, timeout=SLEEP_S + 60)
        marks = nb.py("_marks")
        assert "first_frame" in marks, f"no camera frame in the kernel: {marks}\n{nb.diagnostics()}"
        late = marks["first_frame"] - marks["display"]
        print(f"first camera frame in the kernel {late:.2f} s after display")
        assert late < LIVE_AFTER_S, f"first frame {late:.2f} s after display\n{nb.diagnostics()}"
        assert_webrtc(nb)


def test_a_sleeping_cell_without_the_extension_says_the_page_waits_for_it(
    chromium: Any, lab_without_server: JupyterLab, artifacts: Path
) -> None:
    with notebook_on(lab_without_server, chromium, artifacts, "sleeping-cell-no-extension") as nb:
        nb.start_cell(SLEEPING_CELL)
        # While the cell sleeps, the page (which has rendered the widget) says what it waits for.
        try:
            nb.page.wait_for_function(
                f"""() => (document.querySelector('{ROOT}')?.innerText ?? '')
                    .toLowerCase().includes('{WAITING}')""",
                timeout=(SLEEP_S - 5) * 1000,
                polling=250,
            )
        except Exception as exc:
            raise AssertionError(
                f"the page never said {WAITING!r}: {page_text(nb)!r}\n{nb.diagnostics()}"
            ) from exc
        nb.screenshot("sleeping-cell-no-extension-waiting")
        nb.wait_cell(timeout=SLEEP_S + 60)
        marks = nb.wait_py("'first_frame' in _marks and _marks", timeout=30)
        assert marks, f"no camera frame in the kernel: {nb.py('_marks')}\n{nb.diagnostics()}"
        late = marks["first_frame"] - marks["cell_end"]
        print(f"first camera frame in the kernel {late:.2f} s after the cell's end")
        assert late < LIVE_AFTER_S, f"first frame {late:.2f} s after the cell's end\n{nb.diagnostics()}"
        assert_webrtc(nb)  # the page waited out the busy kernel (20 s, past its answer timeout)
