"""Sweeps at scale on the local engine: items per minute sequential, with concurrency 2 and on a
two-process Dask LocalCluster; then a resumable run killed halfway (as a kernel restart would) and
resumed, checked for nothing lost and nothing repeated.

    .venv/bin/python -m bench.sweeps                       # 200 combinations; 1,000-item resume run
    .venv/bin/python -m bench.sweeps --items 20 --resume-items 40 --seconds 0   # a short check

Headless sessions on the test pattern and the cluster's sockets on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from decart_nb.experiments import sweep

STYLES = ["anime", "film noir", "pencil sketch", "watercolor painting", "oil painting", "pixel art"]
COLOURS = {"warm": (235, 120, 40), "cool": (40, 110, 230), "green": (40, 200, 90)}


@dataclass
class Mode:
    name: str
    items: int
    seconds: float  # wall time of the sweep call (a cluster's start-up not included)
    failed: int
    note: str = ""

    @property
    def per_minute(self) -> float:
        return 60.0 * self.items / self.seconds if self.seconds > 0 else float("nan")


def axes(n: int, folder: Path) -> tuple[list[str], list[str | None]]:
    """n // 4 distinct prompts x (no image + three generated colour references)."""
    images: list[str | None] = [None]
    for name, colour in COLOURS.items():
        path = folder / f"ref_{name}.png"
        if not path.exists():
            Image.new("RGB", (256, 256), colour).save(path)
        images.append(str(path))
    prompts = [f"{STYLES[i % len(STYLES)]} {i}" for i in range(max(1, n // len(images)))]
    return prompts, images


def run_mode(name: str, n: int, seconds: float, folder: Path, **kwargs: Any) -> Mode:
    prompts, images = axes(n, folder)
    start = time.perf_counter()
    result = sweep(
        prompts, images, source="pattern", seconds=seconds, out_dir=folder / name.replace(" ", "_"), **kwargs
    )
    wall = time.perf_counter() - start
    return Mode(name, len(result.rows), wall, len(result.failed))


def throughput(n: int, seconds: float, folder: Path) -> list[Mode]:
    modes = [
        run_mode("sequential", n, seconds, folder),
        run_mode("concurrency 2", n, seconds, folder, concurrency=2),
    ]
    try:
        import distributed
    except ImportError:
        modes.append(
            Mode("dask LocalCluster 2 processes", 0, 0.0, 0, "skipped: pip install 'decart_nb[dask]'")
        )
        return modes
    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]  # unannotated in distributed
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        client.wait_for_workers(2, timeout=120)
        client.run(importlib.import_module, "decart_nb.sweeps.lanes")  # warm, as this process is
        started = time.perf_counter() - t0
        mode = run_mode("dask LocalCluster 2 processes", n, seconds, folder, executor=client)
    mode.note = f"cluster start-up and import {started:.1f} s not included"
    modes.append(mode)
    return modes


def resume_check(n: int, seconds: float, folder: Path, sig: signal.Signals) -> dict[str, Any]:
    """Kill a concurrency-2 run in a child process once half its rows are in, then resume here."""
    out = folder / "resume"
    jsonl = out / "results.jsonl"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.sweeps",
            "--child",
            str(folder),
            "--resume-items",
            str(n),
            "--seconds",
            str(seconds),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        while _count(jsonl) < n // 2:
            if child.poll() is not None:
                raise RuntimeError(f"the run to interrupt ended early (exit {child.returncode})")
            time.sleep(0.2)  # a benchmark's polling, not a test's synchronisation
        child.send_signal(sig)
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    at_interrupt = _keys(jsonl)
    start = time.perf_counter()
    prompts, images = axes(n, folder)
    result = sweep(prompts, images, source="pattern", seconds=seconds, out_dir=out, concurrency=2)
    keys = _keys(jsonl)
    expected = {r["key"] for r in result.rows}
    return {
        "items": len(expected),
        "signal": sig.name,
        "rows_at_interrupt": len(at_interrupt),
        "resumed_skipped": result.skipped,
        "ran_after_resume": len(keys) - len(at_interrupt),
        "rows_now": len(keys),
        "lost": len(expected - set(keys)),
        "repeated": len(keys) - len(set(keys)),
        "earlier_rows_kept": set(at_interrupt) <= set(keys),
        "resume_seconds": round(time.perf_counter() - start, 1),
        "failed": len(result.failed),
    }


def child(folder: Path, n: int, seconds: float) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    prompts, images = axes(n, folder)
    try:
        sweep(prompts, images, source="pattern", seconds=seconds, out_dir=folder / "resume", concurrency=2)
    except KeyboardInterrupt:
        print("bench.sweeps: the run was interrupted (SIGINT), as planned", flush=True)


def _keys(jsonl: Path) -> list[str]:
    if not jsonl.exists():
        return []
    keys = []
    for line in jsonl.read_text().splitlines():
        try:
            keys.append(json.loads(line)["key"])
        except ValueError:  # the torn last line a kill can leave: resume drops it too
            continue
    return keys


def _count(jsonl: Path) -> int:
    try:
        with jsonl.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def render(modes: list[Mode], resume: dict[str, Any] | None, seconds: float) -> str:
    lines = [
        f"sweeps on the local engine, test pattern, {seconds} s per item after its first frame, "
        f"{os.cpu_count()} cores",
        "",
        "| mode | items | wall s | items/min | failed | note |",
        "|---|---|---|---|---|---|",
    ]
    for m in modes:
        lines.append(
            f"| {m.name} | {m.items} | {m.seconds:.1f} | {m.per_minute:.0f} | {m.failed} | {m.note} |"
        )
    if resume is not None:
        lines += ["", "resumable run, interrupted halfway and resumed:", ""]
        lines += [f"- {k}: {v}" for k, v in resume.items()]
        ok = resume["lost"] == 0 and resume["repeated"] == 0 and resume["earlier_rows_kept"]
        lines.append(f"- verdict: {'nothing lost or repeated' if ok else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="combinations per throughput mode")
    parser.add_argument(
        "--resume-items", type=int, default=1000, help="items of the interrupted run (0: skip)"
    )
    parser.add_argument("--seconds", type=float, default=0.3, help="per item, after its first frame")
    parser.add_argument(
        "--signal", choices=["KILL", "INT"], default="KILL", help="how the run is interrupted"
    )
    parser.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.resume_items, args.seconds)
        return 0
    with tempfile.TemporaryDirectory(prefix="decart_nb-bench-sweeps-") as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        modes = throughput(args.items, args.seconds, folder) if args.items > 0 else []
        sig = signal.Signals[f"SIG{args.signal}"]
        resume = resume_check(args.resume_items, args.seconds, folder, sig) if args.resume_items > 0 else None
        print(render(modes, resume, args.seconds))
        ok = resume is None or (
            resume["lost"] == 0 and resume["repeated"] == 0 and resume["earlier_rows_kept"]
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
