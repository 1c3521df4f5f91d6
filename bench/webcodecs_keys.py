"""How big Chromium's WebCodecs VP8 key frames are on a detailed, noisy picture (issue 24): the
page's camera encoder (js/src/codec_link.ts) has no intra-rate cap, unlike the kernel's libvpx
(media/vp8.py, max-intra-rate 300: a key frame at most ~3 periods' bits).

`python -m bench.webcodecs_keys` (inside the loopback namespace: it serves a blank page on
127.0.0.1, a secure context for WebCodecs) encodes 20 frames of a noisy, textured 30 fps picture
per case with the page's encoder settings (realtime, constant bitrate), a key frame first (a
fresh encoder: what every rung change gives) and one asked for at frame 12, and prints their
sizes; with a lower first bitrate the encoder is configured at it for each key frame and back to
the target for the next frame (a bitrate-only configure() keeps the encoder: no key frame).
Sizes only, no timing: no bench lock needed.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

__all__ = ["CASES", "main"]

CASES = ((960, 540, 2400, 2400), (960, 540, 2400, 240), (640, 360, 2400, 2400), (640, 360, 2400, 240))

ENCODE_JS = """async ([w, h, kbps, keyKbps]) => {
  const chunks = [];
  const enc = new VideoEncoder({
    output: (c) => chunks.push([c.type, c.byteLength]),
    error: (e) => chunks.push(['error', String(e)]),
  });
  const configure = (k) => enc.configure({codec: 'vp8', width: w, height: h, bitrate: Math.round(k * 1000),
    framerate: 30, latencyMode: 'realtime', bitrateMode: 'constant'});
  const canvas = new OffscreenCanvas(w, h), ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const scene = new Uint8Array(w * h);
  for (let i = 0; i < scene.length; i++) scene[i] = ((i % w) ^ (i / w | 0)) * 7 + rnd() * 120;
  for (let n = 0; n < 20; n++) {
    for (let i = 0; i < w * h; i++) {  // the scene pans 3 px a frame, with new noise each frame
      const v = scene[(i + n * 3) % scene.length] + rnd() * 24;
      img.data[4 * i] = v; img.data[4 * i + 1] = v * 0.9;
      img.data[4 * i + 2] = v * 0.8; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const key = n === 0 || n === 12;
    if (n === 0 || (key && keyKbps !== kbps)) configure(key ? keyKbps : kbps);
    else if (n === 1 || n === 13) configure(kbps);
    const frame = new VideoFrame(canvas, {timestamp: n * 33333});
    enc.encode(frame, {keyFrame: key});
    frame.close();
    await enc.flush();
  }
  enc.close();
  return chunks;
}"""


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html></html>")

    def log_message(self, format: str, *args: object) -> None:
        return


def _line(w: int, h: int, kbps: int, key_kbps: int, chunks: list[list[Any]]) -> str:
    types = "".join("K" if t == "key" else "d" if t == "delta" else "!" for t, _ in chunks)
    sizes = [int(b) for _, b in chunks]
    period_bytes = kbps * 1000 / 8 / 30
    after = sizes[13:] or [0]
    return (
        f"{w}x{h} at {kbps} kbps, key frames configured at {key_kbps}: first key {sizes[0] / 1000:.0f} KB "
        f"({sizes[0] / period_bytes:.1f} periods), asked key {sizes[12] / 1000:.0f} KB "
        f"({sizes[12] / period_bytes:.1f} periods), deltas after it {sum(after) / len(after) / 1000:.1f} KB, "
        f"chunk types {types}"
    )


def main() -> None:
    from harness.lab import Playwright, launch_chromium

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
                for w, h, kbps, key_kbps in CASES:
                    chunks = page.evaluate(ENCODE_JS, [w, h, kbps, key_kbps])
                    print(_line(w, h, kbps, key_kbps, chunks), flush=True)
            finally:
                browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
