"""Video over the comm (the "codec" transport: VP8 chunks through WebCodecs) on a shaped link with
UDP blocked, in real JupyterLab + Chromium whose fake camera plays the stamped clip.

The page <-> JupyterLab link is shaped with tc inside the test's loopback-only namespace
(shaping.py: htb at 1 or 5 Mbit/s shared by both directions, every UDP packet dropped), so WebRTC
cannot connect, and the tests check what issue 12 asks of the page:
(a) transport="auto" picks the codec transport within 2 s of the WebRTC offer;
(b) at 1 Mbit/s the page shows the camera's picture (each output frame's stamp is read back from
    the view's canvas and matched with the frame the preview showed, and the picture's static
    colour bars match the camera's), so a grey, garbled or frozen output fails, at a frame rate;
(c) the same at 5 Mbit/s;
(d) glass-to-glass latency over ~20 s at 1 Mbit/s does not grow (last third vs first third);
(e) the chunks travel over the page socket (decart_nb_server's relay), and when it goes away the
    video goes on over the comm;
and a page without WebCodecs falls back to JPEG over the comm; and (issue 19) once the kernel's
connection ended, a listener on its freed port gets nothing from the page.

Frame-rate floors: issue 12's targets are >= 15 fps at 1 Mbit/s and >= 25 fps at 5 Mbit/s; the
bench (`bench/run --only codec --repeat 3`) judges those on a median of 3 and meets them with the
media socket (17.5 and 26.2 fps; bench/README.md). These tests assert floors that the transport
meets with a margin on a loaded 2-core CI machine (10 fps at both rates; with one core kept busy
by another process the test measured 16-18 and 15.6-16.2), so the suite never flakes; a stalled,
frozen or grey output still fails them, since only frames with a new, valid stamp count. Raise
them with the transport. (a)-(e) share one notebook and one session and run in order; with the
fallback's own page, about 75 s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench.codec import CanvasRun, measure_output
from bench.runs import pct
from decart_nb.widgets import socket_handshake as hs
from decart_nb.widgets.media_socket import MAGIC, READY, framed
from harness.lab import JupyterLab, LabNotebook, open_notebook, wait_element
from harness.shaping import Shaping, shaped_link

pytestmark = pytest.mark.browser

ROOT = ".decart-camera"
PREVIEW = f"{ROOT} video.decart-preview"
OUTPUT = f"{ROOT} canvas.decart-output-frames"
JPEG_ON_PAGE = "['jpeg', 'comm'].includes(el.dataset.transport)"  # 'comm': a page before issue 22
AUTO_PICK_S = 2.0  # issue 12: "auto" uses the comm video transport within 2 s when UDP is blocked
FPS_FLOOR = {1000: 10.0, 5000: 10.0}  # CI floors (the bench judges the targets, 15 and 25)
WARMUP_S = 4.0  # the rate controllers settle after a change of rate
GROWTH_MS = 150.0  # a queue building up grows latency by seconds over 20 s, not by this
# When the page first makes a WebRTC offer, and when its widget first says "codec".
SPY_TRANSPORT = """() => {
  window.__offerAt = null; window.__codecAt = null;
  const proto = RTCPeerConnection.prototype, createOffer = proto.createOffer;
  proto.createOffer = function (...args) {
    window.__offerAt ??= performance.now();
    return createOffer.apply(this, args);
  };
  const timer = setInterval(() => {
    const el = document.querySelector('.decart-camera');
    if (el && el.dataset.transport === 'codec') {
      window.__codecAt = performance.now();
      clearInterval(timer);
    }
  }, 10);
}"""


@pytest.fixture(scope="module")
def link(lab: JupyterLab) -> Iterator[Shaping]:
    """The page <-> JupyterLab link, UDP blocked, unshaped until a test sets its rate."""
    with shaped_link(None, port=lab.port) as shaping:
        yield shaping


@pytest.fixture(scope="module")
def codec_nb(chromium: Any, lab: JupyterLab, link: Shaping, artifacts: Path) -> Iterator[LabNotebook]:
    nb = open_notebook(chromium, lab, "codec.ipynb", artifacts)
    try:
        yield nb
    finally:
        nb.close()


def wait_page(nb: LabNotebook, condition: str, timeout: float = 30.0) -> None:
    wait_element(nb, ROOT, condition, timeout)


def coarse(rgb: np.ndarray) -> np.ndarray:
    """The picture as 32x18 cells (any size of the model's aspect)."""
    return np.asarray(Image.fromarray(rgb).resize((32, 18), Image.Resampling.BOX), dtype=np.int16)


def band_difference(nb: LabNotebook) -> float:
    """Mean difference between the output's and the camera's static colour bars (bottom fifth)."""
    camera, output = nb.grab_video(PREVIEW), nb.grab_video(OUTPUT, scale=1.0)
    assert camera is not None and output is not None, f"no picture to compare\n{nb.diagnostics()}"
    return float(np.abs(coarse(camera.rgb)[-4:] - coarse(output.rgb)[-4:]).mean())


def assert_recognisable(nb: LabNotebook, run: CanvasRun, floor: float, name: str) -> None:
    print(
        f"{name}: {run.summary()}; kernel fps in/out {run.stats.get('fps_in')} / {run.stats.get('fps_out')}"
    )
    nb.screenshot(name)
    assert run.fps >= floor, f"{name}: {run.summary()}\n{nb.diagnostics()}"
    # Frames count only with a new valid stamp that the preview showed before (not grey, not
    # garbled, not frozen); the picture stays readable between them.
    assert run.unreadable <= run.ticks // 4, f"{name}: the stamp was unreadable too often: {run.summary()}"
    assert pct(run.latency_ms, 50) < 1000, f"{name}: the output lags the camera: {run.summary()}"
    difference = band_difference(nb)
    assert difference < 25, (
        f"{name}: the output does not look like the camera (bars differ by {difference:.0f})"
    )


def test_auto_picks_the_codec_transport_within_2_s_when_udp_is_blocked(
    codec_nb: LabNotebook, link: Shaping
) -> None:
    nb = codec_nb
    nb.page.evaluate(SPY_TRANSPORT)
    nb.run_cell("from decart_nb import Session\ns = Session(source='camera')  # transport='auto'\ns")
    wait_page(nb, "el.dataset.transport === 'codec'", timeout=30)
    offer_at, codec_at = nb.page.evaluate("() => [window.__offerAt, window.__codecAt]")
    assert offer_at is not None, "the page never tried WebRTC"
    took = (codec_at - offer_at) / 1000
    print(f"auto: codec {took:.2f} s after the WebRTC offer ({link})")
    assert 0 < took <= AUTO_PICK_S, f"'auto' took {took:.2f} s to pick the codec transport"
    assert nb.wait_py("s.widget.active_transport == 'codec'", timeout=10), nb.py("s.widget.active_transport")
    wait_page(nb, "el.dataset.status === 'live'", timeout=20)
    assert nb.py("len(s._peers.peer_set.peers)") == 0  # the WebRTC attempt was closed in the kernel
    wait_page(nb, "el.dataset.pipe === 'socket'", timeout=10)  # the relay carries the chunks
    assert nb.wait_py("s.stats.get('pipe') == 'socket'", timeout=10), nb.py("s.stats")
    assert nb.py("[e.code for e in s.errors]") == []


def test_at_1_mbit_the_page_shows_the_camera_and_latency_does_not_grow(
    codec_nb: LabNotebook, link: Shaping
) -> None:
    nb = codec_nb
    link.set_rate(1000)
    time.sleep(WARMUP_S)
    run = measure_output(nb, 18.0)
    assert_recognisable(nb, run, FPS_FLOOR[1000], "codec-1mbit")
    assert run.growth_ms() <= GROWTH_MS, f"latency grew: {run.summary()}"


def test_at_5_mbit_the_page_shows_the_camera_faster(codec_nb: LabNotebook, link: Shaping) -> None:
    nb = codec_nb
    link.set_rate(5000)
    time.sleep(WARMUP_S)
    run = measure_output(nb, 8.0)
    assert_recognisable(nb, run, FPS_FLOOR[5000], "codec-5mbit")


def test_without_the_media_socket_the_video_goes_on_over_the_comm(
    codec_nb: LabNotebook, link: Shaping
) -> None:
    nb = codec_nb
    controller = "[...window.__decartNB.controllers].find((c) => c.running)"
    codec = f"{controller}.link"
    # The relay went away (and stays away: the page takes no new offer of the socket).
    nb.page.evaluate(f"() => {{ const c = {controller}; c.socketOffered = () => {{}}; c.pipe.ws.close(); }}")
    wait_page(nb, "el.dataset.pipe === 'codec' && el.dataset.status === 'live'", timeout=10)
    assert nb.wait_py("s.stats.get('pipe') == 'comm'", timeout=10), nb.py("s.stats")
    counts = f"() => [{codec}.received, {codec}.sent]"
    before = nb.page.evaluate(counts)
    time.sleep(2.0)
    after = nb.page.evaluate(counts)
    assert after[0] > before[0] + 5 and after[1] > before[1] + 5, f"{before} -> {after} ({link})"
    assert nb.py("[e.code for e in s.errors]") == []
    nb.run_cell("s.disconnect()")
    wait_page(nb, "el.dataset.state === 'disconnected'", timeout=15)


def test_a_page_without_webcodecs_sends_jpeg_over_the_comm(
    chromium: Any, lab: JupyterLab, link: Shaping, artifacts: Path
) -> None:
    nb = open_notebook(chromium, lab, "no-webcodecs.ipynb", artifacts)  # a fresh page: no cached check
    try:
        nb.page.evaluate("() => { delete window.VideoEncoder; }")  # an older browser
        nb.run_cell(
            "from decart_nb import Session\ns = Session(source='camera')\ns.widget.transport = 'codec'\ns"
        )
        # The JPEG link: "jpeg" on the page ("comm" on a page built before the new names).
        wait_page(nb, f"{JPEG_ON_PAGE} && el.dataset.status === 'live'", timeout=30)
        assert nb.wait_py("s.widget.active_transport == 'jpeg'", timeout=10), nb.py(
            "s.widget.active_transport"
        )
        received = "() => [...window.__decartNB.controllers].find((c) => c.running).link.received"
        before = nb.page.evaluate(received)
        time.sleep(2.0)
        assert nb.page.evaluate(received) > before, f"no JPEG output arrived ({link})"
        nb.run_cell("s.disconnect()")
    finally:
        nb.close()


class Squatter:
    """Another user of the host on a port the kernel freed: a listener that says MAGIC (the relay
    checks it) and READY at once, and keeps every byte the page's side sends."""

    def __init__(self, port: int) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen()
        self.connections = 0
        self.received = b""
        self.ended = threading.Event()
        threading.Thread(target=self._serve, name="test-squatter", daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed by close(): the thread ends
            while True:
                conn, _ = self.server.accept()
                self.connections += 1
                with conn:
                    conn.sendall(framed(MAGIC) + framed(bytes([READY])) + framed(hs.nonce_frame(bytes(32))))
                    while data := conn.recv(65536):
                        self.received += data
                self.ended.set()

    def close(self) -> None:
        self.server.close()


def test_a_listener_on_a_freed_port_gets_nothing_from_the_page(
    chromium: Any, lab: JupyterLab, artifacts: Path
) -> None:
    """The real page: after the kernel's connection ended, a late copy of its offer opens nothing;
    sent to a listener that speaks MAGIC and READY, the page sends its nonce and nothing else."""
    nb = open_notebook(chromium, lab, "squatter.ipynb", artifacts)
    controller = "[...window.__decartNB.controllers][0]"
    try:
        nb.run_cell(
            "from decart_nb import Session\ns = Session(source='camera')\ns.widget.transport = 'codec'\ns"
        )
        wait_page(nb, "el.dataset.socket === 'live' && el.dataset.status === 'live'", timeout=30)
        port, token = nb.py("[s.widget._media.port, s.widget._media.token]")
        nb.run_cell("s.disconnect()")
        wait_page(nb, "el.dataset.state === 'disconnected' && el.dataset.socket === ''", timeout=15)
        squatter = Squatter(port)
        try:
            offer = f"([port, token]) => {controller}.kernelMessage({{ type: 'media_socket', port, token }})"
            nb.page.evaluate(offer, [port, token])  # a late copy of the old offer
            time.sleep(2.0)
            assert squatter.connections == 0, "the page reopened the offer of the kernel's ended connection"
            nb.page.evaluate(offer, [port, "a-token-it-never-had"])  # an offer it never saw
            assert squatter.ended.wait(10), (
                f"the page kept a socket that never proved itself ({squatter.connections} connections,"
                f" received {squatter.received!r})"
            )
            sent = squatter.received
            assert sent == framed(hs.nonce_frame(sent[5:])) and len(sent) == 4 + 1 + hs.NONCE_SIZE, sent
            assert token.encode() not in sent
            assert nb.page.evaluate(f"() => {controller}.pipeLive") is False
        finally:
            squatter.close()
    finally:
        nb.close()
