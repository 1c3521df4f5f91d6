"""Run the benchmark and print the table: `bench/run [--short]` (inside a loopback-only netns)."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import time

from .browser import browser_rows
from .busy import BUSY_LOOP, BUSY_NAME, busy_processes, cores, exited, raise_on_sigterm
from .codec import CODEC_NOTE, codec_rows
from .compare_cost import compare_rows
from .repeat import combine
from .runs import PromptRun, StreamRun, pct, prompt_run, stream_run
from .soak import LATENCY_SLACK_MS, soak, soak_rows, window_table
from .table import Row, machine, render

FRAME_MS = 1000.0 / 30
EXTRA: list[str] = []  # other tools' own tables, printed after ours


def loopback_only() -> bool:
    # netlink, not /sys: sysfs still lists the host's interfaces after unshare -n
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def passthrough_rows(ours: StreamRun, naive: StreamRun, seconds: float) -> list[Row]:
    s1, s6 = "1 passthrough 720p30", f"6 kernel cost, {seconds:.0f} s passthrough"
    return [
        Row(s1, "round trip p50 (ms)", "<= 25", ours.latency(50), naive.latency(50), limit=("<=", 25)),
        Row(s1, "round trip p95 (ms)", "<= 40", ours.latency(95), naive.latency(95), limit=("<=", 40)),
        Row(s1, "fps out", ">= 29", ours.fps_out, naive.fps_out, limit=(">=", 29)),
        Row(s1, "frames dropped (never came back)", "-", float(ours.dropped), float(naive.dropped)),
        Row(s1, "session.stats frames_dropped, same window", "-", ours.counted("frames_dropped")),
        Row(s6, "kernel CPU (cores)", "<= 1.2", ours.cpu_cores, naive.cpu_cores, limit=("<=", 1.2)),
        Row(s6, "memory growth (MB)", "< 20", ours.rss_growth_mb, naive.rss_growth_mb, limit=("<", 20)),
        Row(s6, "peak RSS (MB)", "-", ours.rss_peak_mb, naive.rss_peak_mb),
    ]


def model_rows(ours: StreamRun, naive: StreamRun, seconds: float) -> list[Row]:
    s2 = f"2 50 ms model, {seconds:.0f} s"
    first, last = pct(ours.third(0), 95), pct(ours.third(2), 95)
    stats = ours.stats
    return [
        Row(s2, "round trip p95 (ms)", "<= 150", ours.latency(95), naive.latency(95), limit=("<=", 150)),
        Row(s2, "p95 first third (ms)", "-", first, pct(naive.third(0), 95)),
        Row(
            s2,
            "p95 last third (ms)",
            "<= first + 30",
            last,
            pct(naive.third(2), 95),
            limit=("<=", first + 30),
        ),
        Row(s2, "fps out", ">= 18", ours.fps_out, naive.fps_out, limit=(">=", 18)),
        Row(s2, "frames dropped (never came back)", "counted", float(ours.dropped), float(naive.dropped)),
        Row(s2, "session.stats frames_dropped, same window", "~ line above", ours.counted("frames_dropped")),
        Row(
            s2,
            "session.stats latency p50/p95",
            "kernel hop",
            _pair(stats, "latency_ms_p50", "latency_ms_p95"),
        ),
        Row(s2, "session.stats fps in/out", "-", _pair(stats, "fps_in", "fps_out")),
        Row(s2, "session.stats model_ms p50", "~50 (the function)", float(stats.get("model_ms_p50", "nan"))),
    ]


def _pair(stats: dict[str, object], a: str, b: str) -> str:
    return f"{stats.get(a, 'n/a')} / {stats.get(b, 'n/a')}"


def prompt_rows(ours: PromptRun, naive: PromptRun) -> list[Row]:
    budget = 2 * FRAME_MS + ours.model_ms
    worst = max(ours.kernel_ms, default=float("nan"))
    s4, s5 = "4 connect", "5 set_prompt -> new state"
    return [
        Row(
            s4,
            "offer -> first transformed frame (s)",
            "<= 1",
            ours.connect_s,
            naive.connect_s,
            limit=("<=", 1),
        ),
        Row(
            s5,
            "in kernel, median (ms)",
            f"<= {budget:.0f}",
            pct(ours.kernel_ms, 50),
            pct(naive.kernel_ms, 50),
        ),
        Row(
            s5,
            "in kernel, worst (ms)",
            f"<= {budget:.0f}",
            worst,
            max(naive.kernel_ms, default=float("nan")),
            limit=("<=", budget),
        ),
        Row(s5, "at the client, median (ms)", "-", pct(ours.wire_ms, 50), pct(naive.wire_ms, 50)),
    ]


def style_rows() -> list[Row]:
    """bench/styles.py (another engineer's) pins itself to one core: run it in its own process."""
    scenario = "3 local styles, 1 core"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.styles", "--frames", "60"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Row(scenario, "slowest style (ms/frame)", "<= 10", f"not run: {exc}")]
    match = re.search(r"(slowest [^:\n]*): ([\d.]+) ms", done.stdout)  # its summary line
    if match is None:
        reason = (done.stderr.strip().splitlines() or [f"no summary line (exit {done.returncode})"])[-1]
        return [Row(scenario, "slowest style (ms/frame)", "<= 10", f"not run: {reason[:60]}")]
    figure, slowest = f"{match.group(1)} (ms/frame)", float(match.group(2))
    EXTRA.append(done.stdout)
    return [Row(scenario, figure, "<= 10", slowest, limit=("<=", 10))]


async def measure(short: bool, only: set[int], ours_kind: str = "session") -> list[Row]:
    stream_s, model_s = (60.0, 15.0) if short else (600.0, 60.0)
    rows: list[Row] = []
    if only & {1, 6}:
        ours = await stream_run(ours_kind, "passthrough", stream_s)
        naive = await stream_run("naive", "passthrough", stream_s)
        rows += passthrough_rows(ours, naive, stream_s)
    if 2 in only:
        ours = await stream_run(ours_kind, "sleep50", model_s)
        naive = await stream_run("naive", "sleep50", model_s)
        rows += model_rows(ours, naive, model_s)
    if only & {4, 5}:
        rows += prompt_rows(await prompt_run(ours_kind), await prompt_run("naive"))
    return rows


def run_all(
    short: bool,
    only: set[int],
    ours_kind: str = "session",
    named: frozenset[str] = frozenset(),
    nodelay: bool = False,
) -> list[Row]:
    rows = asyncio.run(measure(short, only, ours_kind))
    if 3 in only:
        rows += style_rows()
    if 7 in only:
        rows += browser_rows(short)  # Playwright's sync API: outside any asyncio loop
    if "codec" in named:
        rows += codec_rows(short, nodelay=nodelay)  # scenario 8: a shaped link, UDP blocked (bench/codec.py)
    if "compare" in named:
        rows += compare_rows(short)  # scenario 9: two arms on one source vs two sessions (compare_cost.py)
    return sorted(rows, key=lambda r: r.scenario[0])  # stable: figures keep their order


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description="decart_nb latency benchmark")
    parser.add_argument("--short", action="store_true", help="quick mode (about 3.5 minutes a run)")
    parser.add_argument(
        "--only",
        default=None,
        help="scenarios to run, e.g. 1,2, codec or compare (default: 1-7; codec and compare only when named)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run N times; cells are median (min-max)"
    )
    parser.add_argument(
        "--soak", type=float, default=None, metavar="MINUTES", help="only the passthrough soak, this long"
    )
    parser.add_argument("--busy", action="store_true", help="one busy-loop process per core, whole run")
    parser.add_argument(
        "--no-marker",
        action="store_true",
        help="run the Session with aiortc's own jitter buffer (to attribute the marker-bit gain)",
    )
    parser.add_argument(
        "--server-nodelay",
        action="store_true",
        help="scenario 8 with JupyterLab's websockets in TCP_NODELAY (an experiment, bench/nodelay/)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.soak is not None and (args.only is not None or args.repeat != 1 or args.soak <= 0):
        parser.error("--soak MINUTES (> 0) runs alone: no --only, no --repeat")
    return args


NAMED = frozenset({"codec", "compare"})  # scenarios run only when named in --only


def selected(spec: str | None) -> tuple[set[int], frozenset[str]]:
    """--only's numbered scenarios and named ones ("codec"); unknown names are an error."""
    words = [x.strip() for x in (spec or "1,2,3,4,5,6,7").split(",") if x.strip()]
    unknown = [w for w in words if not w.isdigit() and w not in NAMED]
    if unknown:
        raise SystemExit(
            f"bench: unknown scenario {', '.join(unknown)} (numbers 1-7, or {', '.join(sorted(NAMED))})"
        )
    return {int(w) for w in words if w.isdigit()}, frozenset(w for w in words if w in NAMED)


def scenarios(args: argparse.Namespace, kind: str) -> tuple[str, str]:
    """Run the scenarios --repeat times: (the table, what the table's cells are)."""
    only, named = selected(args.only)
    runs: list[list[Row]] = []
    for i in range(args.repeat):
        start = time.perf_counter()
        runs.append(run_all(args.short, only, kind, named, args.server_nodelay))
        if args.repeat > 1:  # every run's own table stays in the log
            took = time.perf_counter() - start
            print(
                f"bench: run {i + 1} of {args.repeat} ({took:.0f} s)\n{render(runs[-1])}\n", file=sys.stderr
            )
    if args.repeat == 1:
        return render(runs[0]), "1 run"
    return render(combine(runs)), (
        f"each cell: median (min-max) of {args.repeat} runs; meets target is judged on the median"
    )


def soak_report(args: argparse.Namespace, kind: str) -> tuple[str, str]:
    run, ws = asyncio.run(soak(args.soak, kind))
    table = f"{window_table(ws)}\n\n{render(soak_rows(run, ws, args.soak))}"
    return table, (
        "one Session passthrough stream, 1280x720@30, aiortc client; the naive relay is NOT run in the soak\n"
        f"windows = sixths of the run; latency flat: p95 of the last window <= first + "
        f"{LATENCY_SLACK_MS:.0f} ms;\nmemory flat: peak RSS after the first (warm-up) window < its peak "
        "+ 20 MB; fps out >= 29 in every window"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not loopback_only():
        print("bench: run me through bench/run (a loopback-only network namespace)", file=sys.stderr)
        return 2
    raise_on_sigterm()  # so the busy processes are killed on SIGTERM too
    kind = "session-plain" if args.no_marker else "session"
    header = machine()  # load average before the busy processes start
    start = time.perf_counter()
    busy = cores() if args.busy else 0
    with busy_processes(busy) as procs:
        table, cells = soak_report(args, kind) if args.soak is not None else scenarios(args, kind)
        stopped = exited(procs)
    mode = (
        f"soak, {args.soak:g} min" if args.soak is not None else ("short" if args.short else "full") + " mode"
    )
    if args.no_marker:
        mode += "; the Session WITHOUT marker completion"
    title = "decart_nb bench, BUSY MACHINE table" if busy else "decart_nb bench"
    print(f"{title} ({mode}, {time.perf_counter() - start:.0f} s)\n{header}")
    if busy:
        note = (
            f"; {len(stopped)} STOPPED EARLY (exit {stopped}): not a busy-machine figure" if stopped else ""
        )
        print(
            f"busy machine: {busy} busy processes ({BUSY_NAME}: python -c '{BUSY_LOOP}', one per core, "
            f"for the whole run){note}"
        )
    print(f"{cells}\n\n{table}")
    if args.soak is None:
        print("\nratio = decart_nb / naive relay.")
        print("Round trip = client stamps a frame -> frame back at the client.")
        if "codec" in selected(args.only)[1]:
            print(CODEC_NOTE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
