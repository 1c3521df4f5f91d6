"""Where a picture's frames go in scenario 8 (the codec transport, issue 24): one run of bench.codec's
setup with probes on both ends, printing per direction what each step costs.

`python -m bench.codec_probe --picture detailed --rate 5000 --seconds 10` (inside the loopback
namespace, under the bench lock: the figures are timings). Over the measured span it prints:
- the page's camera: encode ms per frame (WebCodecs, the `await` on each frame), chunk sizes and
  the bitrate they make against the rate controller's kbps, the rung and its CPU cap (rule 4),
  frames sent per second;
- the kernel: camera decode and scale ms, the model's ms, the output encode ms (libvpx through
  PyAV), output chunk sizes against the asked kbps, the rung;
- the page's output: chunk arrival -> decoded ms, the draw ms, frames decoded per second;
- CPU: the share of one core used by the kernel, JupyterLab, this Chromium, and the whole machine
  (2 cores = 200 %).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .codec import WARMUP_S, measure_output, start_session, wait_live

__all__ = ["main"]

CLOCK = os.sysconf("SC_CLK_TCK")

PAGE_PROBE_JS = """() => {
  const link = [...window.__decartNB.controllers].find((c) => c.running)?.link;
  if (!link) return false;
  const p = {enc: [], chunks: [], room: [], arrive: new Map(), dec: [], draw: [], keys: []};
  p.t0 = performance.now();
  window.__kv24 = p;
  const encode = link.encode.bind(link);
  link.encode = async (frame) => {
    const t = performance.now();
    const chunk = await encode(frame);
    const r = link.rate;
    p.enc.push(performance.now() - t);
    if (chunk) p.chunks.push([chunk.byteLength, r.kbps, r.fps, `${r.rung.width}x${r.rung.height}`, r.cpuCap]);
    if (chunk && chunk.type === "key") p.keys.push([chunk.byteLength, `${r.rung.width}x${r.rung.height}`]);
    return chunk;
  };
  const sendChunk = link.sendChunk.bind(link);
  link.sendChunk = async (chunk) => {
    const t = performance.now();
    await sendChunk(chunk);
    p.room.push(performance.now() - t);
  };
  const chunk = link.chunk.bind(link);
  link.chunk = (msg, buffers) => { p.arrive.set(msg.seq, performance.now()); return chunk(msg, buffers); };
  const show = link.show.bind(link);
  link.show = (frame) => {
    const at = p.arrive.get(frame.timestamp);
    if (at !== undefined) p.dec.push(performance.now() - at);
    return show(frame);
  };
  const host = link.host, showFrame = host.showFrame.bind(host);
  host.showFrame = (frame) => {
    const t = performance.now();
    const r = showFrame(frame);
    p.draw.push(performance.now() - t);
    return r;
  };
  return true;
}"""

PAGE_READ_JS = """() => {
  const p = window.__kv24, link = [...window.__decartNB.controllers].find((c) => c.running)?.link;
  const r = link.rate;
  return {enc: p.enc, chunks: p.chunks, room: p.room, keys: p.keys, dec: p.dec, draw: p.draw,
          span: (performance.now() - p.t0) / 1000,
          rate: {kbps: r.kbps, fps: r.fps, rung: `${r.rung.width}x${r.rung.height}`, cpuCap: r.cpuCap,
                 window: r.window, latency: r.latency, encodes: r.encodes}};
}"""

KERNEL_PROBE_PY = """
import time as _kv_t
_kv = {'enc': [], 'dec': [], 'scale': [], 'model': [], 'out': []}
def _kv_timed(obj, name, key, after=None):
    f = getattr(obj, name)
    def timed(*a, **k):
        t = _kv_t.perf_counter()
        r = f(*a, **k)
        _kv[key].append(_kv_t.perf_counter() - t)
        if after is not None:
            after(a, r)
        return r
    setattr(obj, name, timed)
_kv_l = s.widget._comm
_kv_timed(
    _kv_l._encoder, 'encode', 'enc', lambda a, r: _kv['out'].append((len(r[0]), a[1], a[2], a[3], a[4], r[1]))
)
_kv_timed(_kv_l._decoder, 'decode', 'dec')
_kv_timed(_kv_l._decoder, 'scaled', 'scale')
from decart_nb.engines.local import LocalEngine as _KvEngine
_kv_timed(_KvEngine, 'process', 'model')
"""


def _ticks(pid: int) -> int:
    """user + system CPU ticks of a process, its threads included (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children(root: int) -> list[int]:
    """`root` and every process under it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _browser_pid(clip: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                if any(str(clip).encode() in c for c in cmd) and not any(
                    c.startswith(b"--type=") for c in cmd
                ):
                    return int(entry.name)
    raise RuntimeError("this run's Chromium was not found")


def _machine_ticks() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(f) for f in fields[:3]) + sum(int(f) for f in fields[5:8])  # busy: all but idle, iowait


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def _ms(values: list[float], scale: float = 1.0) -> str:
    return f"p50 {_pct(values, 50) * scale:.1f} p90 {_pct(values, 90) * scale:.1f} ms (n={len(values)})"


def _report(page: dict[str, Any], kernel: dict[str, Any], cpu: dict[str, float], span: float) -> None:
    chunks = page["chunks"]
    sent_kbps = sum(c[0] for c in chunks) * 8 / 1000 / page["span"]
    asked = [c[1] for c in chunks]
    rungs = sorted({c[3] for c in chunks})
    print(f"page camera: {len(chunks) / page['span']:.1f} chunks/s, encode {_ms(page['enc'])}, rungs {rungs}")
    print(f"  send + wait for the window {_ms(page['room'])}, key frames (bytes, rung) {page['keys']}")
    print(
        f"  delivered {sent_kbps:.0f} kbps, asked p50 {_pct(asked, 50):.0f} kbps; chunk p50 "
        f"{_pct([c[0] for c in chunks], 50) / 1000:.1f} KB; end state {page['rate']}"
    )
    out = kernel["out"]
    out_kbps = sum(o[0] for o in out) * 8 / 1000 / span
    print(
        f"kernel: camera decode {_ms(kernel['dec'], 1000)}, scale {_ms(kernel['scale'], 1000)}, "
        f"model {_ms(kernel['model'], 1000)}"
    )
    print(
        f"  output encode {_ms(kernel['enc'], 1000)}, {len(out) / span:.1f} chunks/s, delivered "
        f"{out_kbps:.0f} kbps, asked p50 {_pct([o[3] for o in out], 50):.0f} kbps, rungs "
        f"{sorted({f'{o[1]}x{o[2]}' for o in out})}, fps asked p50 {_pct([o[4] for o in out], 50):.1f}"
    )
    print(f"  key frames (bytes, rung) {[(o[0], f'{o[1]}x{o[2]}') for o in out if o[5]]}")
    print(f"  key frames the kernel asked the page for, since the start: {kernel['keys_asked']}")
    print(f"  the output's rule 4 CPU cap (rung index) at the end: {kernel['cpu_cap']}")
    print(
        f"page output: arrival->decoded {_ms(page['dec'])}, draw {_ms(page['draw'])}, "
        f"{len(page['dec']) / page['span']:.1f} decoded/s"
    )
    print("cpu (% of one core): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))


def probe(picture: str, rate: int, seconds: float) -> None:
    from harness.lab import JupyterLab, Playwright, launch_chromium, open_notebook
    from harness.pictures import write_clip
    from harness.shaping import shaped_link

    with tempfile.TemporaryDirectory(prefix="kv24-probe-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        clip = write_clip(root / "clip.y4m", picture, seconds=4.0)
        lab = stack.enter_context(JupyterLab.start(root))
        browser = launch_chromium(stack.enter_context(Playwright()), clip)
        stack.callback(browser.close)
        nb = open_notebook(browser, lab, "probe.ipynb")
        stack.callback(nb.close)
        stack.enter_context(shaped_link(rate, port=lab.port))
        start_session(nb, "codec")
        wait_live(nb, "codec")
        time.sleep(WARMUP_S)
        kernel_pid = int(nb.py("__import__('os').getpid()"))
        nb.execute(KERNEL_PROBE_PY)
        if not nb.page.evaluate(PAGE_PROBE_JS):
            raise RuntimeError("no running codec link on the page")
        chromium = _children(_browser_pid(clip))
        groups = {"kernel": [kernel_pid], "jupyterlab": [lab.process.pid], "chromium": chromium}
        before = {k: sum(_ticks(p) for p in v) for k, v in groups.items()}
        machine, t0 = _machine_ticks(), time.monotonic()
        run = measure_output(nb, seconds)  # the bench's own measure, so fps is the bench's
        span = time.monotonic() - t0
        cpu = {k: (sum(_ticks(p) for p in groups[k]) - before[k]) / CLOCK / span * 100 for k in groups}
        cpu["machine"] = (_machine_ticks() - machine) / CLOCK / span * 100
        page = nb.page.evaluate(PAGE_READ_JS)
        kernel = nb.py("_kv")
        kernel["keys_asked"] = nb.py("s.widget._comm.keyframes_asked")
        kernel["cpu_cap"] = nb.py("s.widget._comm.rate._cpu_cap")
        print(f"probe: {picture} at {rate} kbit/s: presented {run.summary()}")
        print(f"  {run.detail()}")
        _report(page, kernel, cpu, span)
        print(json.dumps({"kernel_rate": run.kernel_rate}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.codec_probe")
    parser.add_argument("--picture", default="detailed")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        probe(args.picture, args.rate, args.seconds)


if __name__ == "__main__":
    main()
