"""The soak: one Session passthrough stream at 1280x720@30 for many minutes, cut into six windows.

Rules (each window is a sixth of the run: 5 minutes in the 30-minute soak):
- latency flat: round trip p95 of the last window <= p95 of the first window + 10 ms;
- memory flat: the kernel's peak RSS in the last third of the run (windows 5-6) exceeds that of
  the first third (windows 1-2) by less than 20 MB: scenario 6's rule. A leak grows steadily; the
  one-off step while encoders re-open at a higher bitrate and worker threads get their malloc
  arenas lands in the first third (measured: +33 MB in window 2, then 0.0 MB over 25 minutes), and
  the growth after the first window is printed beside it;
- fps out >= 29 in every window.
The naive relay is not run: the soak is about decart_nb staying flat, not about the comparison.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .runs import StreamRun, pct, stream_run
from .table import Row, fmt, markdown

__all__ = ["LATENCY_SLACK_MS", "WINDOWS", "Window", "leak_mb", "soak", "soak_rows", "window_table", "windows"]

WINDOWS = 6
LATENCY_SLACK_MS = 10.0
GROWTH_LIMIT_MB = 20.0
FPS_MIN = 29.0


@dataclass
class Window:
    start_s: float  # from the start of the measured span
    end_s: float
    p50: float
    p95: float
    fps_out: float
    dropped: int  # frames sent in the window that never came back
    rss_peak_mb: float  # kernel-side process, sampled every 5 s
    cpu_cores: float  # kernel-side process's CPU time / wall time over the window


def _index(t: float, t_a: float, span: float) -> int:
    return min(WINDOWS - 1, max(0, int((t - t_a) // span)))


def _nearest(usage: list[dict[str, float]], t: float) -> dict[str, float]:
    return min(usage, key=lambda u: abs(u["wall"] - t))


def windows(run: StreamRun, count: int = WINDOWS) -> list[Window]:
    """Six windows of the run: latency, fps and drops from the client, RSS and CPU from the kernel."""
    span = (run.t_b - run.t_a) / count
    back = {a.number for a in run.arrivals}
    result = []
    for i in range(count):
        lo, hi = run.t_a + i * span, run.t_a + (i + 1) * span
        latency = [a.latency_ms for a in run.arrivals if lo <= a.t < hi or (i == count - 1 and a.t == hi)]
        # frames sent in the run's last second may still be in flight: not counted as dropped
        sent = {n for n, t in run.sent.items() if lo <= t < hi and t <= run.t_b - 1.0}
        rss = [u["rss"] for u in run.usage if _index(u["wall"], run.t_a, span) == i]
        first, last = _nearest(run.usage, lo), _nearest(run.usage, hi)
        wall = last["wall"] - first["wall"]
        result.append(
            Window(
                start_s=lo - run.t_a,
                end_s=hi - run.t_a,
                p50=pct(latency, 50),
                p95=pct(latency, 95),
                fps_out=len(latency) / span,
                dropped=len(sent - back),
                rss_peak_mb=max(rss) / 2**20 if rss else float("nan"),
                cpu_cores=(last["cpu"] - first["cpu"]) / wall if wall > 0 else float("nan"),
            )
        )
    return result


def memory_growth_mb(ws: list[Window]) -> float:
    """Peak RSS after the first window minus the first window's peak (shown, not judged)."""
    later = [w.rss_peak_mb for w in ws[1:] if w.rss_peak_mb == w.rss_peak_mb]
    return max(later) - ws[0].rss_peak_mb if later else float("nan")


def leak_mb(ws: list[Window]) -> float:
    """Peak RSS of the last third of the windows minus that of the first third (judged)."""
    third = max(1, len(ws) // 3)
    first = [w.rss_peak_mb for w in ws[:third] if w.rss_peak_mb == w.rss_peak_mb]
    last = [w.rss_peak_mb for w in ws[-third:] if w.rss_peak_mb == w.rss_peak_mb]
    return max(last) - max(first) if first and last else float("nan")


def soak_rows(run: StreamRun, ws: list[Window], minutes: float) -> list[Row]:
    scenario = f"soak 720p30, {minutes:g} min"
    first, last = ws[0].p95, ws[-1].p95
    slowest = min(w.fps_out for w in ws)
    return [
        Row(scenario, "round trip p95, first window (ms)", "-", first),
        Row(
            scenario,
            "round trip p95, last window (ms)",
            f"<= first + {LATENCY_SLACK_MS:.0f}",
            last,
            limit=("<=", first + LATENCY_SLACK_MS),
        ),
        Row(
            scenario,
            "memory growth, last third vs first third (MB)",
            f"< {GROWTH_LIMIT_MB:.0f}",
            leak_mb(ws),
            limit=("<", GROWTH_LIMIT_MB),
        ),
        Row(scenario, "memory growth after the first window (MB)", "-", memory_growth_mb(ws)),
        Row(scenario, "fps out, slowest window", f">= {FPS_MIN:.0f}", slowest, limit=(">=", FPS_MIN)),
        Row(scenario, "kernel CPU, whole soak (cores)", "<= 1.2", run.cpu_cores, limit=("<=", 1.2)),
        Row(scenario, "peak RSS (MB)", "-", run.rss_peak_mb),
        Row(scenario, "frames dropped (never came back)", "-", float(run.dropped)),
        Row(scenario, "session.stats frames_dropped, same span", "-", run.counted("frames_dropped")),
    ]


def window_table(ws: list[Window]) -> str:
    head = [
        "window",
        "minutes",
        "round trip p50 (ms)",
        "round trip p95 (ms)",
        "fps out",
        "dropped",
        "kernel RSS peak (MB)",
        "kernel CPU (cores)",
    ]
    body = [
        [
            str(i + 1),
            f"{w.start_s / 60:.1f}-{w.end_s / 60:.1f}",
            fmt(w.p50),
            fmt(w.p95),
            fmt(w.fps_out),
            str(w.dropped),
            fmt(w.rss_peak_mb),
            f"{w.cpu_cores:.2f}",
        ]
        for i, w in enumerate(ws)
    ]
    return markdown(head, body)


async def soak(minutes: float, kind: str = "session") -> tuple[StreamRun, list[Window]]:
    """Run the soak (progress on stderr once a minute); the run and its windows."""
    told = [0]

    def progress(elapsed: float) -> None:
        if elapsed // 60 > told[0]:
            told[0] = int(elapsed // 60)
            print(f"bench: soak {told[0]} of {minutes:g} min", file=sys.stderr, flush=True)

    run = await stream_run(kind, "passthrough", minutes * 60.0, progress=progress)
    return run, windows(run)
