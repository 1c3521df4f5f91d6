"""Scenario 9's set-ups, each frame's way through the kernel hop by hop (where an arm's latency goes).

    bench/run is not needed; inside the loopback namespace (camera) and under the bench lock:
    python -m bench.compare_hops pattern --setups single,compare1,compare --seconds 6

Each set-up runs as in bench/compare_cost.py (a fresh process; camera: aiortc peers in this one),
with probes wrapped around decart_nb's steps in the child: the frame's stamp (t_in), the Fanout's
deliver (start, end), the arm's input slot taking it, its model thread taking it from the
mailbox, the local model's process() (start, end, the thread's CPU time and its run-queue wait
from /proc/thread-self/schedstat), and Broadcast.publish (what `stats` counts latency to). Per arm,
the median and p90 of each hop over the measured window, the loop thread's busy time inside three
spans of each frame, and the loop's busiest callbacks. The probes cost a little time themselves:
compare set-ups with each other here, not with compare_cost's figures.
"""

from __future__ import annotations

import argparse
import asyncio.events
import itertools
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from . import compare_cost

__all__ = ["main"]

Hops = dict[str, float]  # hop name -> time (perf_counter s)


class Probes:
    """The wrappers, and what they record: per (owner id, t_in) the hop times; per Fanout
    delivery its start and end; every loop callback's span."""

    def __init__(self) -> None:
        self.hops: defaultdict[tuple[int, float], Hops] = defaultdict(dict)
        self.fanout: dict[float, tuple[float, float]] = {}
        self.callbacks: list[tuple[float, float, object]] = []
        self.taken: dict[int, float] = {}  # thread id -> when its mailbox last gave it an item

    def install(self) -> None:
        from decart_nb.engines.local.engine import LocalEngine
        from decart_nb.fanout import Fanout
        from decart_nb.media import mailbox, relay
        from decart_nb.media.frames import FrameMeta

        now = time.perf_counter

        def t_in(frame: Any) -> float:
            meta = frame.opaque
            return meta.t_in if isinstance(meta, FrameMeta) else -1.0

        deliver = Fanout.deliver

        def probed_deliver(fanout: Fanout, frame: Any) -> None:
            t0 = now()
            deliver(fanout, frame)
            self.fanout[t_in(frame)] = (t0, now())

        rebase = relay.InputSlot._rebase

        def probed_rebase(slot: relay.InputSlot, frame: Any, upstream: Any) -> None:
            self.hops[(id(slot), t_in(frame))]["slot"] = now()
            rebase(slot, frame, upstream)

        get = mailbox.ThreadMailbox.get

        def probed_get(box: mailbox.ThreadMailbox[Any]) -> Any:
            item = get(box)
            self.taken[threading.get_ident()] = now()
            return item

        process = LocalEngine.process

        def probed_process(engine: LocalEngine, frame: Any, state: Any) -> Any:
            q0, c0, t0 = _run_queue_s(), time.thread_time(), now()
            out = process(engine, frame, state)
            t1, c1, q1 = now(), time.thread_time(), _run_queue_s()
            hop = self.hops[(id(engine), t_in(frame))]
            hop.update(got=self.taken.get(threading.get_ident(), t0), p0=t0, p1=t1)
            hop.update(cpu=c1 - c0, runq=q1 - q0)
            return out

        publish = relay.Broadcast.publish

        def probed_publish(broadcast: relay.Broadcast, frame: Any) -> None:
            self.hops[(id(broadcast), t_in(frame))]["pub"] = now()
            publish(broadcast, frame)

        run = asyncio.events.Handle._run

        def probed_run(handle: asyncio.events.Handle) -> None:
            t0 = now()
            run(handle)
            self.callbacks.append((t0, now(), handle._callback))  # type: ignore[attr-defined]

        for owner, name, probe in (
            (Fanout, "deliver", probed_deliver),
            (relay.InputSlot, "_rebase", probed_rebase),
            (mailbox.ThreadMailbox, "get", probed_get),
            (LocalEngine, "process", probed_process),
            (relay.Broadcast, "publish", probed_publish),
            (asyncio.events.Handle, "_run", probed_run),
        ):
            setattr(owner, name, probe)  # the child process only: it runs this one set-up and exits

    def clear(self) -> None:
        self.hops.clear()
        self.fanout.clear()
        self.callbacks.clear()


def _run_queue_s() -> float:
    """This thread's time spent runnable but not running, so far (Linux schedstat)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


PROBES = Probes()


def measure(sessions: dict[str, Any], seconds: float) -> dict[str, Any]:
    """compare_cost's Measure: the hop report of `seconds` after the warm-up, as text."""
    time.sleep(compare_cost.WARMUP)
    PROBES.clear()
    start = time.perf_counter()
    time.sleep(seconds)
    end = time.perf_counter()
    frames = _frames_by_arm(sessions)
    lines = [_arm_report(name, hops, start, end - 0.1) for name, hops in frames.items()]
    lines.append(_loop_report(start, end))
    return {"report": "\n".join(lines)}


def _frames_by_arm(sessions: dict[str, Any]) -> dict[str, dict[float, Hops]]:
    owners: dict[int, str] = {}
    for name, session in sessions.items():
        core = session._core
        pipeline = core.pipeline
        for owner in (pipeline.slot, pipeline.broadcast, core.engine):
            owners[id(owner)] = name
    frames: dict[str, dict[float, Hops]] = defaultdict(lambda: defaultdict(dict))
    for (owner, t_in), hops in list(PROBES.hops.items()):
        if owner in owners:
            frames[owners[owner]][t_in].update(hops)
    return frames


def _arm_report(name: str, frames: dict[float, Hops], start: float, end: float) -> str:
    spans: defaultdict[str, list[float]] = defaultdict(list)
    for t_in, hop in frames.items():
        if not start < t_in < end or not {"got", "p0", "p1", "pub"} <= hop.keys():
            continue
        chain = [("stamp", t_in)]
        if t_in in PROBES.fanout:
            chain += [("fanout start", PROBES.fanout[t_in][0]), ("fanout end", PROBES.fanout[t_in][1])]
        if "slot" in hop:
            chain.append(("arm slot", hop["slot"]))
        chain += [("thread takes", hop["got"]), ("model start", hop["p0"]), ("model end", hop["p1"])]
        chain.append(("published", hop["pub"]))
        for (a, ta), (b, tb) in itertools.pairwise(chain):
            spans[f"{a} -> {b}"].append((tb - ta) * 1000)
        spans["TOTAL stamp -> published"].append((hop["pub"] - t_in) * 1000)
        spans["model: thread CPU"].append(hop["cpu"] * 1000)
        spans["model: waiting on a run queue"].append(hop["runq"] * 1000)
        for lo, hi, span in (
            (t_in, hop["p0"], "loop busy, stamp -> model start"),
            (hop["p0"], hop["p1"], "loop busy, during the model"),
            (hop["p1"], hop["pub"], "loop busy, model end -> published"),
        ):
            spans[span].append(1000 * _busy(lo, hi))
    n = len(spans["TOTAL stamp -> published"])
    rows = [f"arm {name!r}: {n} frames (ms)"]
    for label, values in spans.items():
        p90 = sorted(values)[int(0.9 * len(values))]
        rows.append(f"  {label:40s} p50 {statistics.median(values):6.2f}  p90 {p90:6.2f}")
    return "\n".join(rows)


def _busy(a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e, _ in PROBES.callbacks if e > a and s < b)


def _loop_report(start: float, end: float) -> str:
    total: defaultdict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for s, e, callback in PROBES.callbacks:
        if start < s < end:
            label = _label(callback)
            total[label] += e - s
            count[label] += 1
    wall = end - start
    rows = [f"loop thread busy {100 * sum(total.values()) / wall:.1f}% of the window; busiest callbacks:"]
    for label, busy in sorted(total.items(), key=lambda item: -item[1])[:8]:
        rows.append(f"  {1000 * busy / wall:7.2f} ms/s  {count[label] / wall:6.1f}/s  {label}")
    return "\n".join(rows)


def _label(callback: object) -> str:
    owner = getattr(callback, "__self__", None)
    get_coro: Callable[[], Any] | None = getattr(owner, "get_coro", None)
    if get_coro is not None:  # a task's step: name its coroutine
        return f"task {getattr(get_coro(), '__qualname__', '?')}"
    return str(getattr(callback, "__qualname__", repr(callback)[:60]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.compare_hops", description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("SETUP", "SOURCE", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("source", nargs="?", choices=compare_cost.KINDS, default="pattern")
    parser.add_argument("--setups", default="single,compare1,compare")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args(argv)
    if args.child:
        setup, source, seconds = args.child
        replies = sys.stdout
        sys.stdout = sys.stderr  # only JSON replies on the real stdout
        PROBES.install()
        compare_cost.child(setup, source, float(seconds), sys.stdin, replies, measure)
        return 0
    for setup in args.setups.split(","):
        if setup not in compare_cost.SETUPS:
            parser.error(f"unknown set-up {setup!r}; set-ups: {', '.join(compare_cost.SETUPS)}")
        result = compare_cost.run_one(setup, args.source, args.seconds, module="bench.compare_hops")
        print(f"== {setup} on {args.source}\n{result['report']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
