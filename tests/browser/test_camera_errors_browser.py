"""The camera widget's getUserMedia failures, in a real notebook (JupyterLab + Chromium).

Chromium's fake camera always opens, so an init script wraps navigator.mediaDevices.getUserMedia
before JupyterLab loads: per case it rejects with the DOMException a real browser gives for a
camera that cannot do the model's size (OverconstrainedError), is missing (NotFoundError) or is
held by another application (NotReadableError), and records the constraints of every call.

One notebook (one kernel) runs the cases in order; each displays a fresh camera session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from decart_nb.errors import ErrorCode
from decart_nb.widgets.camera import CAMERA_ADVICE
from harness.lab import LabNotebook, open_notebook, wait_element

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"

# Runs in every page of the context before JupyterLab: `window.__gum.mode` says how to fail
# ("pass", "overconstrained-first", "overconstrained", or a DOMException name to always throw).
FAKE_GET_USER_MEDIA = """(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia || window.__gum) return;
  const original = md.getUserMedia.bind(md);
  window.__gum = {mode: 'pass', calls: []};
  const strict = (c) => /"(exact|min)"/.test(JSON.stringify(c || {}));
  const reject = (call, name, message) => {
    call.result = name;
    const err = new DOMException(message, name);
    if (name === 'OverconstrainedError') Object.defineProperty(err, 'constraint', {value: 'width'});
    throw err;
  };
  md.getUserMedia = async (constraints) => {
    const gum = window.__gum;
    const call = {constraints: JSON.parse(JSON.stringify(constraints || null)), result: 'ok'};
    call.strict = strict(constraints);
    const firstStrict = call.strict && !gum.calls.some((c) => c.strict);
    gum.calls.push(call);
    if (gum.mode === 'overconstrained-first' && firstStrict) {
      reject(call, 'OverconstrainedError', 'no 1280x720 here (test)');
    } else if (gum.mode === 'overconstrained') {
      reject(call, 'OverconstrainedError', 'no such size at all (test)');
    } else if (gum.mode !== 'pass' && gum.mode !== 'overconstrained-first') {
      reject(call, gum.mode, `${gum.mode} (test)`);
    }
    return original(constraints);
  };
})();"""

START_SESSION = (
    "from decart_nb import Session\n"
    'events = []\ns = Session(source="camera", prompt="pencil sketch")\n'
    "s.on('error', lambda e: events.append(e.code))\ns"
)
CAMERA_CODES = "[e.code for e in s.errors if e.code.startswith('CAMERA_')]"


class _InitScriptBrowser:
    """A Chromium whose new contexts run `script` first in every page (open_notebook makes one)."""

    def __init__(self, browser: Any, script: str) -> None:
        self._browser = browser
        self._script = script

    def new_context(self, **kwargs: Any) -> Any:
        context = self._browser.new_context(**kwargs)
        context.add_init_script(script=self._script)
        return context


def wait_page(nb: LabNotebook, condition: str, timeout: float = 30.0) -> None:
    """Wait for a JS condition on the widget's root element (`el`)."""
    wait_element(nb, ROOT, condition, timeout)


def best_fps_in(nb: LabNotebook, seconds: float = 8.0) -> float:
    """The highest input rate the session reported over a few seconds (shared machine)."""
    best = -1.0
    end = time.monotonic() + seconds
    while time.monotonic() < end and best <= 20:
        best = max(best, float(nb.py("s.stats['fps_in']") or 0))
        time.sleep(1.0)
    return best


@pytest.fixture(scope="module")
def errors_nb(chromium: Any, lab: Any, artifacts: Path) -> Iterator[LabNotebook]:
    nb = open_notebook(
        _InitScriptBrowser(chromium, FAKE_GET_USER_MEDIA), lab, "camera-errors.ipynb", artifacts
    )
    assert nb.page.evaluate("() => !!window.__gum"), "the init script did not wrap getUserMedia"
    try:
        yield nb
    finally:
        nb.close()


@pytest.fixture
def case(errors_nb: LabNotebook) -> Iterator[Any]:
    """Set the fake's mode, display a fresh camera session, and disconnect it afterwards."""
    nb = errors_nb

    def start(mode: str) -> LabNotebook:
        nb.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        nb.page.wait_for_function(f"() => !document.querySelector('{ROOT}')", timeout=10_000)
        nb.page.evaluate("(mode) => { window.__gum.mode = mode; window.__gum.calls = []; }", mode)
        nb.run_cell(START_SESSION)
        return nb

    yield start
    nb.run_cell("s.disconnect()")


def screenshot(nb: LabNotebook, name: str, selector: str = ROOT) -> None:
    """A screenshot with `selector` scrolled into view (the session's panel follows the widget)."""
    nb.page.locator(selector).first.scroll_into_view_if_needed()
    nb.screenshot(name)


def gum_calls(nb: LabNotebook) -> list[dict[str, Any]]:
    return list(nb.page.evaluate("() => window.__gum.calls"))


def assert_error_shown(nb: LabNotebook, code: str, name: str) -> None:
    """The kernel got `code` once, as an error event, and the page shows its advice."""
    wait_page(nb, f"el.dataset.errorCode === '{code}'", timeout=30)
    wait_page(nb, "el.dataset.status === 'camera-error'", timeout=10)
    events = nb.wait_py("events", timeout=10)
    assert events == [code], events
    assert nb.py(CAMERA_CODES) == [code]
    assert nb.py("s.errors[-1].data['name']") == name
    text = nb.page.inner_text(f"{ROOT} .decart-error")
    assert code in text and CAMERA_ADVICE[code] in text, text
    assert nb.page.is_visible(f"{ROOT} .decart-retry")  # the user can fix it and try again


def test_an_overconstrained_camera_is_retried_with_ideal_constraints(case: Any) -> None:
    started = time.monotonic()
    nb = case("overconstrained-first")
    wait_page(nb, "el.dataset.status === 'live' && el.dataset.state === 'generating'", timeout=40)
    calls = gum_calls(nb)
    assert len(calls) == 2, calls
    first, retry = calls
    assert first["strict"] and first["result"] == "OverconstrainedError", first
    assert first["constraints"]["video"]["width"] == {"exact": 1280}, first
    assert not retry["strict"] and retry["result"] == "ok", retry
    video = retry["constraints"]["video"]
    assert (video["width"], video["height"]) == ({"ideal": 1280}, {"ideal": 720}), retry
    fps_in = best_fps_in(nb)
    assert fps_in > 10, f"the kernel got {fps_in} fps after the retry\n{nb.diagnostics()}"
    assert nb.py("s.state") == "generating"
    assert nb.py(CAMERA_CODES) == [] and nb.py("events") == []
    assert nb.page.evaluate(f"() => document.querySelector('{ROOT}').dataset.errorCode") == ""
    print(f"overconstrained-first: live after {time.monotonic() - started:.1f} s, kernel in {fps_in} fps")
    screenshot(nb, "camera-error-overconstrained-retried")


def test_a_camera_overconstrained_even_as_a_preference_is_reported(case: Any) -> None:
    nb = case("overconstrained")
    assert_error_shown(nb, ErrorCode.CAMERA_OVERCONSTRAINED, "OverconstrainedError")
    calls = gum_calls(nb)
    assert [c["strict"] for c in calls] == [True, False], calls  # exact, then ideal: both refused
    screenshot(nb, "camera-error-overconstrained", f"{ROOT} .decart-error")


@pytest.mark.parametrize(
    ("name", "code"),
    [("NotFoundError", ErrorCode.CAMERA_NOT_FOUND), ("NotReadableError", ErrorCode.CAMERA_BUSY)],
)
def test_a_missing_or_busy_camera_is_explained(case: Any, name: str, code: str) -> None:
    nb = case(name)
    assert_error_shown(nb, code, name)
    assert len(gum_calls(nb)) == 1  # only OverconstrainedError is worth a second try
    screenshot(nb, f"camera-error-{name}", f"{ROOT} .decart-error")
