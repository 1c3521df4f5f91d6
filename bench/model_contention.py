"""Why two compare arms' models run slower than one: the GIL they share, or the machine?

    python -m bench.model_contention [--seconds 6] [--repeat 3]

The local model on one 720p frame, paced at 30 fps, per prompt ("anime", "film noir"): alone
(one thread), as two threads of one process each on a CPU of its own (as compare's arms run), and
as two processes each on a CPU of its own (the same work and the same caches and memory, but no
GIL between them). Per prompt: median ms of process() by the wall clock and by the thread's CPU
time. Two processes as fast as one alone, two threads slower: the GIL's hand-offs cost it
(`strace -f -c -e trace=futex` counts them), not memory traffic. Linux only (CPU affinity).
Run it under the bench lock: the figures are timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from .compare_cost import contention_frame

__all__ = ["main"]

PROMPTS = ("anime", "film noir")
FPS = 30.0
Result = dict[str, tuple[float, float]]  # prompt -> (wall ms p50, CPU ms p50)


def _paced(prompt: str, cpu: int, start: float, ticks: int, out: Result) -> None:
    """process() at every tick from `start` (perf_counter), on CPU `cpu`."""
    from decart_nb.engines.local.engine import LocalEngine
    from decart_nb.state import GenerationState

    os.sched_setaffinity(0, {cpu})  # 0: the calling thread
    frame, engine, state = contention_frame(), LocalEngine(), GenerationState(prompt=prompt)
    engine.process(frame, state)  # tables and scratch built first
    wall, cpu_ms = [], []
    for k in range(ticks):
        time.sleep(max(0.0, start + k / FPS - time.perf_counter()))
        t0, c0 = time.perf_counter(), time.thread_time()
        engine.process(frame, state)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu_ms.append((time.thread_time() - c0) * 1000.0)
    out[prompt] = (statistics.median(wall), statistics.median(cpu_ms))


def threads(prompts: tuple[str, ...], seconds: float) -> Result:
    out: Result = {}
    start, ticks = time.perf_counter() + 0.3, round(seconds * FPS)
    workers = [threading.Thread(target=_paced, args=(p, i, start, ticks, out)) for i, p in enumerate(prompts)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return out


def processes(seconds: float) -> Result:
    """One child per prompt, each on a CPU of its own, released at the same wall-clock moment."""
    at = time.time() + 3.0
    args = [sys.executable, "-m", "bench.model_contention", "--child"]
    children = [
        subprocess.Popen([*args, prompt, str(i), str(at), str(seconds)], stdout=subprocess.PIPE, text=True)
        for i, prompt in enumerate(PROMPTS)
    ]
    out: Result = {}
    for child in children:
        stdout, _ = child.communicate(timeout=60 + seconds)
        out.update({k: (v[0], v[1]) for k, v in json.loads(stdout).items()})
    return out


def _child(prompt: str, cpu: str, at: str, seconds: str) -> None:
    out: Result = {}
    start = time.perf_counter() + (float(at) - time.time())
    _paced(prompt, int(cpu), start, round(float(seconds) * FPS), out)
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.model_contention", description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    if len(os.sched_getaffinity(0)) < 2:
        print("needs 2 CPUs")
        return 1
    for round_ in range(1, args.repeat + 1):
        alone = {**threads(PROMPTS[:1], args.seconds), **threads(PROMPTS[1:], args.seconds)}
        rows = {
            "alone": alone,
            "2 threads": threads(PROMPTS, args.seconds),
            "2 processes": processes(args.seconds),
        }
        for name, result in rows.items():
            figures = ", ".join(f"{p} {w:.2f} / {c:.2f}" for p, (w, c) in sorted(result.items()))
            print(f"round {round_} {name:12s} wall / CPU ms p50: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
