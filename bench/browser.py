"""Scenario 7: real Chromium through JupyterLab, with the camera widget (harness/lab.py).

The fake camera plays a y4m clip whose frames carry their number in the luma. The page decodes
the stamp of every frame its camera preview presents and of every frame the kernel's output
presents (requestVideoFrameCallback, both on the page's clock): the difference is glass-to-glass
through the kernel hop (page encode, network, kernel decode/pipeline/encode, page decode). The
page's receive and decode rates come from its RTCPeerConnection's inbound-rtp stats; its present
rate is the output element's own presented-frame count, both over the measured span.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

from .runs import pct
from .stamp_js import STAMP_READER_JS
from .table import Row

__all__ = ["browser_rows"]

SCENARIO = "7 Chromium via JupyterLab"
PREVIEW, OUTPUT = ".dnb-view video.decart-preview", ".dnb-view video.decart-output"
SETUP = "from decart_nb import Session\ns = Session(source='camera')\ns"

_MEASURE_JS = (
    """async ([preview, output, seconds]) => {
  const pv = document.querySelector(preview), out = document.querySelector(output);
"""
    + STAMP_READER_JS
    + """  // The page's WebRTC receiver: what arrived and was decoded, over the same span.
  const controller = [...window.__decartNB.controllers].find((c) => c.running);
  const inbound = async () => {
    let found = null;
    (await controller.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') found = r;
    });
    return {t: performance.now(), received: found.framesReceived, decoded: found.framesDecoded};
  };
  const rtp0 = await inbound();
  const shown = new Map(), latency = [];
  let first = null, last = null, callbacks = 0, stamped = 0, unmatched = 0;
  const end = performance.now() + seconds * 1000;
  const onPreview = (now) => {
    const n = stamp(pv, pv.videoWidth, pv.videoHeight);
    if (n !== null) shown.set(n, now);
    if (performance.now() < end) pv.requestVideoFrameCallback(onPreview);
  };
  const onOutput = (now, meta) => {
    // presentedFrames counts every frame the element presented, also those whose callback was
    // skipped while the page was busy reading stamps back.
    if (first === null) first = {now, n: meta.presentedFrames};
    last = {now, n: meta.presentedFrames};
    callbacks += 1;
    const n = stamp(out, out.videoWidth, out.videoHeight);
    if (n !== null) {
      stamped += 1;
      // The clip loops every 4 s: an entry older than 2 s is the previous loop's (the preview
      // skipped this frame), not a latency.
      const ms = shown.has(n) ? now - shown.get(n) : Infinity;
      if (ms < 2000) latency.push(ms); else unmatched += 1;
    }
    if (performance.now() < end) out.requestVideoFrameCallback(onOutput);
  };
  pv.requestVideoFrameCallback(onPreview);
  out.requestVideoFrameCallback(onOutput);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000 + 100));
  const width = out.videoWidth, height = out.videoHeight;
  const fps = first && last.now > first.now ? (last.n - first.n) * 1000 / (last.now - first.now) : 0;
  const rtp1 = await inbound(), span = (rtp1.t - rtp0.t) / 1000;
  const received = (rtp1.received - rtp0.received) / span, decoded = (rtp1.decoded - rtp0.decoded) / span;
  return {fps, received, decoded, callbacks, stamped, unmatched, latency, width, height};
}"""
)


def browser_rows(short: bool) -> list[Row]:
    try:
        from harness.lab import (
            JupyterLab,
            Playwright,
            launch_chromium,
            open_notebook,
            write_stamped_clip,
        )
    except ImportError as exc:
        return [_not_run(f"harness/lab.py not usable ({exc})")]
    seconds = 10.0 if short else 30.0
    try:
        with tempfile.TemporaryDirectory(prefix="decart-bench-") as tmp:
            root = Path(tmp)
            clip = write_stamped_clip(root / "clip.y4m", seconds=4.0)
            with Playwright() as pw, JupyterLab.start(root) as lab:
                browser = launch_chromium(pw, clip)
                try:
                    nb = open_notebook(browser, lab, "bench.ipynb")
                    got, stats = _measure(nb, seconds)
                    nb.close()
                finally:
                    browser.close()
    except Exception as exc:  # noqa: BLE001 - reported in the table instead of faking a figure
        traceback.print_exc()
        return [_not_run(f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}")]
    return _rows(got, stats)


def _measure(nb: Any, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    nb.run_cell(SETUP)
    nb.page.wait_for_selector(OUTPUT, timeout=30_000)
    if not nb.wait_py("s.state == 'generating'", timeout=30):
        raise RuntimeError(f"the session never started generating: {nb.py('s.state')}")
    nb.page.wait_for_timeout(3000)  # Chrome's sender ramps up its bitrate and resolution first
    got: dict[str, Any] = nb.page.evaluate(_MEASURE_JS, [PREVIEW, OUTPUT, seconds])
    stats: dict[str, Any] = nb.py("s.stats")
    nb.execute("s.disconnect()")
    return got, stats


def _rows(got: dict[str, Any], stats: dict[str, Any]) -> list[Row]:
    latency = [float(x) for x in got["latency"]]
    p50 = pct(latency, 50)
    size = f"{got['width']}x{got['height']}"
    return [
        Row(
            SCENARIO,
            f"page receives fps ({size}, WebRTC stats)",
            ">= 28",
            float(got["received"]),
            limit=(">=", 28),
        ),
        Row(SCENARIO, "page decodes fps", "-", float(got["decoded"])),
        Row(SCENARIO, "page presents fps (output <video>)", "-", float(got["fps"])),
        Row(SCENARIO, "glass-to-glass p50 (ms)", "<= 60", p50, limit=("<=", 60)),
        Row(SCENARIO, "glass-to-glass p95 (ms)", "-", pct(latency, 95)),
        Row(SCENARIO, "output frames matched / unmatched", "-", f"{len(latency)} / {got['unmatched']}"),
        Row(SCENARIO, "output frames seen by the measuring callback", "-", float(got["callbacks"])),
        Row(SCENARIO, "session.stats fps in/out", "-", f"{stats.get('fps_in')} / {stats.get('fps_out')}"),
    ]


def _not_run(reason: str) -> Row:
    return Row(SCENARIO, "page fps / glass-to-glass", ">= 28 / <= 60 ms", f"not run: {reason}")
