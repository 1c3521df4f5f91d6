"""The camera widget in a real notebook: JupyterLab + Chromium whose fake camera plays a generated
1280x720 30 fps clip. The camera reaches the kernel, the transformed video comes back into the page,
a prompt from a cell changes it, a busy cell does not stop it, and a denied camera is explained.

The tests of the first notebook share one kernel and run in order (a kernel start costs ~7 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.lab import LabNotebook, launch_chromium, open_notebook, wait_element

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"
PREVIEW = f"{ROOT} video.decart-preview"
OUTPUT = f"{ROOT} video.decart-output"

# Every getUserMedia stream the page opens, so a test can check that all of them were stopped.
SPY_CAMERA = """() => {
  const md = navigator.mediaDevices;
  if (window.__streams) return;
  window.__streams = [];
  window.__gumCalls = 0;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    window.__gumCalls += 1;
    const stream = await original(constraints);
    window.__streams.push(stream);
    return stream;
  };
}"""
LIVE_CAMERA_TRACKS = """() => window.__streams
  .flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length"""
RECEIVED_CODEC = """async () => {
  const c = [...window.__decartNB.controllers].find((c) => c.running);
  const stats = [...(await c.pc.getStats()).values()];
  const inbound = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
  return stats.find((s) => s.id === inbound.codecId).mimeType;
}"""
# The running controller of the page's camera widget (camera.js keeps them in __decartNB).
CONTROLLER = "() => [...window.__decartNB.controllers].find((c) => c.running)"
# What the page sees when the user switches tabs (headless Chromium never hides a page itself).
SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  const state = hidden ? 'hidden' : 'visible';
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
# The page's frame rate is the benchmark's business; these tests only check that it is live.
LIVE_FPS = 5


def wait_page(nb: LabNotebook, condition: str, timeout: float = 30.0) -> None:
    """Wait for a JS condition on the widget's root element (`el`)."""
    wait_element(nb, ROOT, condition, timeout)


def band(rgb: np.ndarray) -> np.ndarray:
    """The bottom fifth of a picture: the clip's static colour bars (the moving disc stays above)."""
    return rgb[int(rgb.shape[0] * 0.8) :].astype(np.int16)


def band_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(band(a) - band(b)).mean())


def best_stats(nb: LabNotebook, seconds: float = 8.0) -> dict[str, Any]:
    """The session's stats sample with the highest input rate over a few seconds (shared machine)."""
    best: dict[str, Any] = {"fps_in": -1}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stats = nb.py("s.stats")
        if stats.get("fps_in", 0) > best["fps_in"]:
            best = stats
        if best["fps_in"] >= 28:
            break
        time.sleep(1.0)
    return best


# decart_nb's own threads, aiortc's decoders, and the media loop's executor (aiortc's encoders).
MEDIA_THREADS = (
    "[t.name for t in __import__('threading').enumerate() "
    "if t.name.startswith(('decart_nb', 'asyncio_')) or t.name.endswith('-decoder')]"
)


def assert_no_media_threads(nb: LabNotebook) -> None:
    """No decart_nb or aiortc thread is left in the kernel (they may take a moment to end)."""
    if not nb.wait_py(f"not {MEDIA_THREADS}", timeout=15):
        raise AssertionError(f"threads left behind: {nb.py(MEDIA_THREADS)}")


def grab(nb: LabNotebook, selector: str) -> Any:
    shot = nb.grab_video(selector)
    assert shot is not None, f"{selector} shows no picture\n{nb.diagnostics()}"
    return shot


@pytest.fixture(scope="module")
def camera_nb(chromium: Any, lab: Any, artifacts: Path) -> Iterator[LabNotebook]:
    """One notebook displaying Session(source="camera"), shared by the ordered tests below."""
    nb = open_notebook(chromium, lab, "camera.ipynb", artifacts)
    nb.page.evaluate(SPY_CAMERA)
    nb.run_cell('from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\ns')
    try:
        yield nb
    finally:
        nb.close()


def test_the_camera_reaches_the_kernel_at_720p30_and_the_output_is_transformed(
    camera_nb: LabNotebook,
) -> None:
    nb = camera_nb
    wait_page(nb, "el.dataset.state === 'generating' && el.dataset.status === 'live'")
    wait_page(nb, "el.dataset.transport === 'webrtc'")  # "auto" found WebRTC working
    wait_page(nb, "el.dataset.socket === 'live'", timeout=10)  # the page's messages take the socket
    assert nb.wait_py("s.widget.active_transport == 'webrtc'", timeout=10)
    stats = best_stats(nb)
    assert (stats["width"], stats["height"]) == (1280, 720), stats
    assert stats["fps_in"] >= 25, stats
    wait_page(nb, "el.querySelector('video.decart-output').videoWidth > 0")
    camera, output = grab(nb, PREVIEW), grab(nb, OUTPUT)
    assert (camera.width, camera.height) == (1280, 720)
    assert (output.width, output.height) == (1280, 720)  # the kernel's start bitrate: no 640x360
    assert band_diff(camera.rgb, output.rgb) > 10, "the output shows the camera untransformed"
    assert nb.count_video_frames(OUTPUT, 2.0) >= LIVE_FPS  # live, not a still
    # The page's own figures (WebRTC stats and the output <video>) reach session.stats.
    page = nb.wait_py("s.stats if (s.stats.get('page_fps_presented') or 0) > 0 else None", timeout=15)
    assert (page["page_width"], page["page_height"]) == (1280, 720), page
    assert page["page_fps_sent"] >= LIVE_FPS and page["page_fps_received"] >= LIVE_FPS, page
    assert page["page_fps_decoded"] >= LIVE_FPS, page
    shown = "el.querySelector('.decart-stats [data-figure=\"fps shown\"] b')"
    wait_page(nb, f"{shown} && !['', '–'].includes({shown}.textContent)")  # a figure, not the dash
    nb.screenshot("camera-live")


PLAYOUT_TARGET = f"""() => ({CONTROLLER})().pc.getReceivers()
  .find((r) => r.track && r.track.kind === 'video').jitterBufferTarget"""


def test_the_playout_target_reaches_the_pages_receiver(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    wait_page(nb, "el.dataset.status === 'live'")
    assert nb.page.evaluate(PLAYOUT_TARGET) == 0  # each frame shown as soon as it is decoded
    try:
        nb.execute("s.widget.playout_target_ms = 40")
        nb.page.wait_for_function(f"() => ({PLAYOUT_TARGET})() === 40", timeout=10_000)
    finally:
        nb.execute("s.widget.playout_target_ms = 0")
    nb.page.wait_for_function(f"() => ({PLAYOUT_TARGET})() === 0", timeout=10_000)


def test_a_prompt_set_from_a_cell_changes_the_pages_output(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    before = grab(nb, OUTPUT)
    nb.run_cell('s.set_prompt("film noir")')
    deadline = time.monotonic() + 10
    diff = 0.0
    while time.monotonic() < deadline and diff <= 10:
        time.sleep(0.3)
        diff = band_diff(before.rgb, grab(nb, OUTPUT).rgb)
    assert diff > 10, f"the output did not change after set_prompt (diff {diff:.1f})"
    nb.screenshot("camera-new-prompt")


def test_video_keeps_flowing_while_a_cell_is_busy(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    nb.start_cell("import time\nn0 = s.stats['frames_in']\ntime.sleep(4)\nprint(s.stats['frames_in'] - n0)")
    time.sleep(0.5)
    page_fps = nb.count_video_frames(OUTPUT, 2.5)  # the kernel is busy the whole time
    frames_in = int(nb.wait_cell(timeout=60).strip())
    assert frames_in >= 4 * 15, f"{frames_in} frames reached the kernel during a 4 s busy cell"
    assert page_fps >= LIVE_FPS, f"the page showed {page_fps:.1f} fps during a busy cell"


def frames_in_over(nb: LabNotebook, seconds: float) -> int:
    """How many camera frames reached the kernel over `seconds`."""
    n0 = nb.py("s.stats['frames_in']")
    time.sleep(seconds)
    return int(nb.py("s.stats['frames_in']")) - int(n0)


def test_switching_camera_replaces_the_sent_track_without_a_new_connection(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    devices = nb.wait_py("s.widget.devices", timeout=10)
    chosen = devices[-1]["deviceId"]
    before = nb.page.evaluate(f"() => ({{attempt: ({CONTROLLER})().attempt, calls: window.__gumCalls}})")
    nb.run_cell(f"s.widget.choose_camera({chosen!r})")
    nb.page.wait_for_function(f"() => window.__gumCalls > {before['calls']}", timeout=15_000)
    wait_page(nb, f"({CONTROLLER})().stream?.getVideoTracks()[0].getSettings().deviceId === {chosen!r}")
    assert nb.page.evaluate(f"() => ({CONTROLLER})().attempt") == before["attempt"]  # no new offer
    assert nb.wait_py(f"s.widget.camera.get('deviceId') == {chosen!r}", timeout=10)
    assert frames_in_over(nb, 2.0) >= 2 * 15  # the new track flows through the same peer
    assert nb.page.evaluate(LIVE_CAMERA_TRACKS) == 1  # the old camera was released


def test_the_camera_pauses_while_the_page_is_hidden_unless_told_to_keep_running(
    camera_nb: LabNotebook,
) -> None:
    nb = camera_nb
    nb.page.evaluate(SET_HIDDEN, True)
    try:
        wait_page(nb, "el.dataset.status === 'paused'", timeout=10)
        assert nb.page.evaluate(LIVE_CAMERA_TRACKS) == 0  # the camera light goes off
        time.sleep(1.0)
        assert frames_in_over(nb, 1.5) <= 2
    finally:
        nb.page.evaluate(SET_HIDDEN, False)
    wait_page(nb, "el.dataset.status === 'live'", timeout=15)
    assert frames_in_over(nb, 2.0) >= 2 * 15

    nb.run_cell("s.widget.keep_running_hidden = True")
    nb.page.evaluate(SET_HIDDEN, True)
    try:
        time.sleep(1.0)
        assert nb.page.evaluate("() => document.querySelector('.decart-camera').dataset.status") == "live"
        assert frames_in_over(nb, 2.0) >= 2 * 15
    finally:
        nb.page.evaluate(SET_HIDDEN, False)
        nb.run_cell("s.widget.keep_running_hidden = False")


def test_displaying_the_widget_twice_opens_the_camera_once(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    calls = nb.page.evaluate("() => window.__gumCalls")
    nb.run_cell("display(s.widget)")
    nb.page.wait_for_function(
        "() => document.querySelectorAll('.decart-camera').length === 2", timeout=10_000
    )
    time.sleep(1.0)
    assert nb.page.evaluate("() => window.__gumCalls") == calls
    statuses = nb.page.evaluate(
        "() => [...document.querySelectorAll('.decart-camera')].map(e => e.dataset.status)"
    )
    assert statuses == ["live", "live"]


def test_the_page_reconnects_by_itself_after_a_drop(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    nb.run_cell(
        "import decart_nb._loop as loop\n"
        "states = []\n"
        "s.on('connection_change', states.append)\n"
        "loop.run(s._peers.peer_set.camera.close(), timeout=10)  # what a network drop looks like to the page"
    )
    wait_page(nb, "el.dataset.status === 'reconnecting'", timeout=20)
    wait_page(nb, "el.dataset.status === 'live' && el.dataset.state === 'generating'", timeout=40)
    states = nb.wait_py("states if states[-1:] == ['generating'] else []", timeout=10)
    assert states[0] == "reconnecting" and states[-1] == "generating", states
    assert best_stats(nb, 4.0)["fps_in"] >= 20


def test_a_model_switch_asks_the_camera_for_the_new_models_size(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    nb.run_cell('s.switch_model("lucy-restyle-2")  # 1280x704')
    wait_page(nb, "el.querySelector('video.decart-preview').videoHeight === 704", timeout=30)
    wait_page(nb, "el.dataset.status === 'live' && el.dataset.state === 'generating'", timeout=30)
    stats = nb.wait_py("s.stats if s.stats['height'] == 704 else None", timeout=15)
    assert (stats["width"], stats["height"]) == (1280, 704), stats
    assert frames_in_over(nb, 2.0) >= 2 * 15


def test_disconnect_stops_the_camera_and_leaves_no_kernel_thread(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    nb.run_cell("s.disconnect()")
    wait_page(nb, "el.dataset.state === 'disconnected' && el.dataset.status === 'stopped'", timeout=15)
    nb.page.wait_for_function(f"() => ({LIVE_CAMERA_TRACKS})() === 0", timeout=10_000)
    assert_no_media_threads(nb)


def test_a_kernel_restart_stops_the_camera(camera_nb: LabNotebook) -> None:
    nb = camera_nb
    nb.run_cell('s2 = Session(source="camera")\ns2')
    nb.page.wait_for_function(f"() => ({LIVE_CAMERA_TRACKS})() > 0", timeout=30_000)
    nb.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    try:
        nb.page.wait_for_function(f"() => ({LIVE_CAMERA_TRACKS})() === 0", timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the camera is still on after a kernel restart\n{nb.diagnostics()}") from exc
    nb.wait_kernel_idle()


def test_leaving_the_page_closes_the_peer_and_the_session_winds_down(
    chromium: Any, lab: Any, artifacts: Path
) -> None:
    nb = open_notebook(chromium, lab, "leave.ipynb", artifacts)
    nb.run_cell(
        "import decart_nb.session\n"
        "decart_nb.session.RECONNECT_GIVE_UP_S = 3  # the page will not come back: no need to wait 30 s\n"
        'from decart_nb import Session\ns = Session(source="camera")\ns'
    )
    wait_page(nb, "el.dataset.status === 'live'")
    nb.page.context.close()
    # The same notebook in a new page reaches the same kernel (the widget's output was not saved).
    nb = open_notebook(chromium, lab, "leave.ipynb", artifacts)
    try:
        assert nb.wait_py("s.state == 'disconnected'", timeout=30), nb.py("s.state")
        assert nb.py("s._peers.peer_set.camera is None and not s._peers.peer_set.peers")
        assert_no_media_threads(nb)
    finally:
        nb.close()


def test_a_denied_camera_is_explained_in_the_page_and_reported_to_python(
    playwright: Any, clip: Path, lab: Any, artifacts: Path
) -> None:
    browser = launch_chromium(playwright, clip, grant_camera=False)
    nb = open_notebook(browser, lab, "denied.ipynb", artifacts)
    try:
        nb.run_cell('from decart_nb import Session\ns = Session(source="camera")\ns')
        wait_page(nb, "el.dataset.errorCode === 'CAMERA_PERMISSION_DENIED'", timeout=30)
        text = nb.page.inner_text(f"{ROOT} .decart-error")
        assert "blocked the camera" in text and "Allow camera access" in text, text
        assert nb.page.is_visible(f"{ROOT} .decart-retry")
        codes = nb.wait_py("[e.code for e in s.errors]", timeout=10)
        assert codes == ["CAMERA_PERMISSION_DENIED"], codes
        assert nb.py("s.state") != "disconnected"  # the user can allow the camera and try again
        nb.screenshot("camera-denied")
    finally:
        nb.close()
        browser.close()


def test_a_headless_session_shows_its_output_without_asking_for_a_camera(
    chromium: Any, lab: Any, artifacts: Path
) -> None:
    nb = open_notebook(chromium, lab, "headless.ipynb", artifacts)
    try:
        nb.page.evaluate(SPY_CAMERA)
        nb.run_cell('from decart_nb import Session\ns = Session(source="pattern", codec="h264")\ns')
        wait_page(nb, "el.querySelector('video.decart-output').videoWidth > 0", timeout=30)
        output = grab(nb, OUTPUT)
        assert (output.width, output.height) == (1280, 720)
        assert nb.count_video_frames(OUTPUT, 2.0) >= LIVE_FPS
        assert nb.page.evaluate("() => window.__gumCalls") == 0
        assert not nb.page.is_visible(PREVIEW)
        assert nb.page.evaluate(RECEIVED_CODEC) == "video/H264"  # the session's codec choice
        nb.screenshot("headless-output")
    finally:
        nb.close()


# -- the JPEG link: frames as JPEG over the notebook's comm -----------------------------------------
JPEG_ON_PAGE = "['jpeg', 'comm'].includes(el.dataset.transport)"  # 'comm': a page before issue 22

OUTPUT_FRAMES = f"{ROOT} canvas.decart-output-frames"
# What Binder looks like to the page: no ICE candidate can ever be gathered, so WebRTC never connects.
BLOCK_WEBRTC = """() => {
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(config) { super({...(config || {}), iceServers: [], iceTransportPolicy: 'relay'}); }
  };
}"""
COMM_RECEIVED = f"() => ({CONTROLLER})()?.link?.received ?? -1"


def grab_canvas(nb: LabNotebook, scale: float = 0.25) -> tuple[int, int, np.ndarray]:
    shot = nb.grab_video(OUTPUT_FRAMES, scale)
    assert shot is not None, f"the comm output canvas shows nothing\n{nb.diagnostics()}"
    return shot.width, shot.height, shot.rgb


def page_fps(nb: LabNotebook, seconds: float = 2.0) -> float:
    """Output frames per second the page received over the comm."""
    n0 = nb.page.evaluate(COMM_RECEIVED)
    time.sleep(seconds)
    return (nb.page.evaluate(COMM_RECEIVED) - n0) / seconds


def assert_live_over_the_comm(nb: LabNotebook, name: str, kind: str = "jpeg") -> dict[str, Any]:
    """Live over the comm as JPEG frames (kind "jpeg") or VP8 video ("codec", at a rung's size)."""
    on_page = JPEG_ON_PAGE if kind == "jpeg" else f"el.dataset.transport === '{kind}'"
    wait_page(nb, f"{on_page} && el.dataset.status === 'live'", timeout=40)
    wait_page(nb, "el.dataset.state === 'generating'", timeout=30)
    active = nb.wait_py(f"s.widget.active_transport == '{kind}'", timeout=10)
    assert active, nb.py("s.widget.active_transport")
    assert nb.page.evaluate(f"() => ({CONTROLLER})().pc") is None  # no WebRTC peer in the page
    # The status line says so: VP8 takes the media socket here (JupyterLab has decart_nb_server).
    said = nb.page.inner_text(f"{ROOT} .decart-transport")
    assert ("media socket" if kind == "codec" else "comm") in said, said
    stats = best_stats(nb, 6.0)
    assert (stats["width"], stats["height"]) == (1280, 720), stats
    assert stats["fps_in"] >= LIVE_FPS, stats
    fps = page_fps(nb)
    assert fps >= LIVE_FPS, f"the page received {fps:.1f} output fps over the comm"
    width, _, _ = grab_canvas(nb)
    width, height, output = grab_canvas(nb, 0.25 * 1280 / width)  # the preview grab's size
    if kind == "jpeg":
        assert (width, height) == (1280, 720)
    assert band_diff(grab(nb, PREVIEW).rgb, output) > 10, "the output shows the camera untransformed"
    print(f"{name}: kernel in {stats['fps_in']} fps, out {stats['fps_out']} fps, page {fps:.1f} fps")
    nb.screenshot(name)
    return stats


@pytest.fixture(scope="module")
def comm_nb(chromium: Any, lab: Any, artifacts: Path) -> Iterator[LabNotebook]:
    nb = open_notebook(chromium, lab, "comm.ipynb", artifacts)
    try:
        yield nb
    finally:
        nb.close()


def test_frames_travel_over_the_comm_when_asked(comm_nb: LabNotebook) -> None:
    nb = comm_nb
    nb.run_cell(
        'from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\n'
        's.widget.transport = "jpeg"\ns'
    )
    assert_live_over_the_comm(nb, "comm-live")
    nb.run_cell("s.disconnect()")
    wait_page(nb, "el.dataset.state === 'disconnected' && el.dataset.status === 'stopped'", timeout=15)
    assert_no_media_threads(nb)


def test_auto_falls_back_to_the_comm_when_webrtc_cannot_connect(comm_nb: LabNotebook) -> None:
    nb = comm_nb
    nb.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    nb.page.wait_for_function("() => !document.querySelector('.decart-camera')", timeout=10_000)
    nb.page.evaluate(BLOCK_WEBRTC)
    start = time.monotonic()
    # transport="auto", the default
    nb.run_cell('from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\ns')
    wait_page(nb, "el.dataset.transport === 'codec'", timeout=40)  # video over the comm (VP8)
    print(f"auto: fell back to the comm {time.monotonic() - start:.1f} s after the cell ran")
    assert_live_over_the_comm(nb, "comm-fallback", "codec")
    assert nb.py("len(s._peers.peer_set.peers)") == 0  # the failed WebRTC attempt was closed in the kernel
    assert nb.py("[e.code for e in s.errors]") == []
    nb.run_cell("s.disconnect()")
    assert_no_media_threads(nb)


def test_a_headless_session_shows_its_output_over_the_comm(comm_nb: LabNotebook) -> None:
    nb = comm_nb
    nb.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    nb.page.wait_for_function("() => !document.querySelector('.decart-camera')", timeout=10_000)
    nb.run_cell('s = Session(source="pattern")\ns.widget.transport = "jpeg"\ns')
    wait_page(nb, f"{JPEG_ON_PAGE} && el.dataset.status === 'live'", timeout=30)
    width, height, _ = grab_canvas(nb)
    assert (width, height) == (1280, 720)
    fps = page_fps(nb)
    assert fps >= LIVE_FPS, f"the page received {fps:.1f} output fps over the comm"
    print(f"comm-headless: page {fps:.1f} fps")
    nb.run_cell("s.disconnect()")
    assert_no_media_threads(nb)


# What a network that blocks UDP looks like to the page, until the test lets it through again.
BLOCK_WEBRTC_FOR_NOW = """() => {
  const Original = (window.__realRTC ??= window.RTCPeerConnection);
  window.__blockWebRTC = true;
  window.RTCPeerConnection = class extends Original {
    constructor(config) {
      super(window.__blockWebRTC ? {...(config || {}), iceServers: [], iceTransportPolicy: 'relay'} : config);
    }
  };
}"""


def test_a_fallback_is_not_for_life_reconnect_probes_webrtc_again(
    chromium: Any, lab: Any, artifacts: Path
) -> None:
    """'auto' falls back to the comm where UDP is blocked, and says why (status line, title,
    session.stats); once the network passes UDP, Reconnect (session.connect(), as the panel's
    button) brings the session back on WebRTC with no reason."""
    nb = open_notebook(chromium, lab, "reprobe.ipynb", artifacts)
    try:
        nb.page.evaluate(BLOCK_WEBRTC_FOR_NOW)
        nb.run_cell('from decart_nb import Session\ns = Session(source="camera", prompt="pencil sketch")\ns')
        wait_page(nb, "el.dataset.transport === 'codec' && el.dataset.status === 'live'", timeout=40)
        reason = nb.wait_py("s.stats.get('transport_reason')", timeout=10)
        assert str(reason).startswith("UDP blocked"), nb.py("s.stats")
        assert nb.py("s.stats['transport']") == "codec"
        said = nb.page.inner_text(f"{ROOT} .decart-transport")
        assert said.endswith("· UDP blocked"), said
        title = nb.page.get_attribute(f"{ROOT} .decart-transport", "title") or ""
        assert reason in title, title
        nb.screenshot("fallback-reason")
        nb.page.evaluate("() => { window.__blockWebRTC = false; }")  # the network passes UDP again
        nb.run_cell("s.disconnect()\ns.connect()  # the panel's Reconnect")
        wait_page(nb, "el.dataset.transport === 'webrtc' && el.dataset.status === 'live'", timeout=40)
        wait_page(nb, "el.dataset.state === 'generating'", timeout=30)
        stats = nb.wait_py("s.stats if s.stats.get('transport') == 'webrtc' else {}", timeout=10)
        assert stats.get("transport_reason") == "", stats
        assert nb.page.inner_text(f"{ROOT} .decart-transport") == "via WebRTC"
        assert nb.count_video_frames(OUTPUT, 2.0) >= LIVE_FPS
        assert nb.py("[e.code for e in s.errors]") == []
        nb.run_cell("s.disconnect()")
    finally:
        nb.close()
