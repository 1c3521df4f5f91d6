"""The camera's track ends mid-stream (camera unplugged, or the browser's permission revoked): the
page tells the kernel (`camera_ended`), shows the error with Try again, and Try again brings the
camera back, with no refused status transition and no message off the schema on the way (a
hide/show of the page first walks through paused as well).

Chromium's fake camera cannot be unplugged, and `track.stop()` from the page fires no `ended`
event, so the test stops the live track and dispatches `new Event("ended")` on it: what the browser
does when the device goes away, as far as the page's listener can tell."""

from __future__ import annotations

import pytest

from decart_nb.errors import ErrorCode
from decart_nb.widgets.camera import CAMERA_ENDED_ADVICE
from harness.lab import LabNotebook, wait_element

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"
LIVE = "el.dataset.status === 'live' && el.dataset.state === 'generating'"
END_THE_CAMERA = """() => {
  const c = [...window.__decartNB.controllers].find((c) => c.running);
  const track = c.stream.getVideoTracks()[0];
  track.stop();
  track.dispatchEvent(new Event('ended'));
  return track.label;
}"""
# What the page sees when the user switches tabs (headless Chromium never hides a page itself).
SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
# Console lines that mean the status table or the message schema was broken.
BROKEN = ("refused status transition", "off the schema")


def wait_page(nb: LabNotebook, condition: str, timeout: float = 30.0) -> None:
    wait_element(nb, ROOT, condition, timeout)


def test_a_camera_that_ends_mid_stream_is_reported_and_try_again_restarts_it(notebook: LabNotebook) -> None:
    nb = notebook
    nb.run_cell(
        'from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\n'
        "events = []\ns.on('error', lambda e: events.append(e.code))\ns"
    )
    wait_page(nb, LIVE, timeout=40)
    # A walk through more statuses first (live -> paused -> starting -> live), for the console check.
    nb.page.evaluate(SET_HIDDEN, True)
    try:
        wait_page(nb, "el.dataset.status === 'paused'", timeout=10)
    finally:
        nb.page.evaluate(SET_HIDDEN, False)
    wait_page(nb, LIVE, timeout=30)
    label = nb.page.evaluate(END_THE_CAMERA)

    wait_page(nb, "el.dataset.status === 'camera-error'", timeout=10)
    wait_page(nb, f"el.dataset.errorCode === '{ErrorCode.CAMERA_ERROR}'", timeout=15)
    assert nb.wait_py("events", timeout=10) == [ErrorCode.CAMERA_ERROR]
    assert nb.py("s.errors[-1].data") == {"name": "ended", "label": label}
    text = nb.page.inner_text(f"{ROOT} .decart-error")
    assert CAMERA_ENDED_ADVICE in text, text
    assert nb.page.is_visible(f"{ROOT} .decart-retry")
    assert "Try again" in nb.page.inner_text(f"{ROOT} .decart-notice")
    # The camera is released; the kernel keeps its peer (the camera stalls: connected, not generating).
    assert nb.page.evaluate("() => [...window.__decartNB.controllers].every((c) => !c.stream)")
    assert nb.wait_py("s.state == 'connected'", timeout=15), nb.py("s.state")
    nb.screenshot("camera-ended")

    frames = nb.py("s.stats.get('frames_in', 0)")
    nb.page.click(f"{ROOT} .decart-retry")
    wait_page(nb, LIVE, timeout=40)
    wait_page(nb, "el.dataset.errorCode === ''", timeout=10)  # the new camera clears the error
    assert nb.wait_py(f"s.stats.get('frames_in', 0) > {frames} + 30", timeout=15), nb.py("s.stats")
    assert nb.py("len(s._peers.peer_set.peers)") == 1  # the idle peer was replaced, not added to
    broken = [line for line in nb.console if any(b in line for b in BROKEN)]
    assert broken == [], broken
    nb.run_cell("s.disconnect()")
