"""One benchmark run = one kernel-side process + one client connection, measured on the wire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .client import Arrival, Client, Kernel

__all__ = ["PromptRun", "StreamRun", "pct", "prompt_run", "stream_run"]

FIRST_FRAME_TIMEOUT_S = 20.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class StreamRun:
    """Frames received in the measuring window [t_a, t_b] (after a warm-up)."""

    connect_s: float
    arrivals: list[Arrival]
    sent: dict[int, float]
    t_a: float
    t_b: float
    usage: list[dict[str, float]]
    stats: dict[str, Any]  # session.stats at t_b
    stats_before: dict[str, Any]  # ... and at t_a
    unreadable: int

    def counted(self, key: str) -> float:
        """How much a session.stats counter grew over the window (NaN for the naive relay)."""
        if key not in self.stats or key not in self.stats_before:
            return float("nan")
        return float(self.stats[key] - self.stats_before[key])

    @property
    def window(self) -> list[Arrival]:
        return [a for a in self.arrivals if self.t_a <= a.t <= self.t_b]

    def latency(self, q: float, part: slice = slice(None)) -> float:
        return pct([a.latency_ms for a in self.window[part]], q)

    def third(self, which: int) -> list[float]:
        span = (self.t_b - self.t_a) / 3
        lo = self.t_a + which * span
        return [a.latency_ms for a in self.window if lo <= a.t < lo + span]

    @property
    def fps_out(self) -> float:
        return len(self.window) / (self.t_b - self.t_a)

    @property
    def fps_in(self) -> float:
        return sum(self.t_a <= t <= self.t_b for t in self.sent.values()) / (self.t_b - self.t_a)

    @property
    def dropped(self) -> int:
        """Frames sent in the window (but its last second, still in flight) that never came back."""
        sent = {n for n, t in self.sent.items() if self.t_a <= t <= self.t_b - 1.0}
        return len(sent - {a.number for a in self.arrivals})

    @property
    def cpu_cores(self) -> float:
        first, last = self.usage[0], self.usage[-1]
        return (last["cpu"] - first["cpu"]) / (last["wall"] - first["wall"])

    @property
    def rss_growth_mb(self) -> float:
        """Peak RSS of the last third of the run minus that of the first third (the encoders and
        libav's frame pools fill up in the first seconds, then stay flat unless something leaks)."""
        third = max(1, len(self.usage) // 3)
        first = max(u["rss"] for u in self.usage[:third])
        last = max(u["rss"] for u in self.usage[-third:])
        return (last - first) / 2**20

    @property
    def rss_peak_mb(self) -> float:
        return max(u["rss"] for u in self.usage) / 2**20


async def _connected(kind: str, model: str, client: Client) -> tuple[Kernel, float]:
    kernel = await Kernel.start(kind, model)
    try:
        await client.connect(kernel.answer)
        assert client.first_frame is not None
        first = await asyncio.wait_for(client.first_frame, FIRST_FRAME_TIMEOUT_S)
    except BaseException:
        await kernel.quit()
        raise
    return kernel, first - client.t_start


async def stream_run(
    kind: str,
    model: str,
    seconds: float,
    warmup: float = 5.0,
    progress: Callable[[float], None] | None = None,  # called with the seconds measured so far
) -> StreamRun:
    client = Client()
    kernel, connect_s = await _connected(kind, model, client)
    try:
        await asyncio.sleep(warmup)
        stats_before = await kernel.ask("stats")
        usage = [await kernel.ask("usage")]
        t_a = time.perf_counter()
        while time.perf_counter() < t_a + seconds:
            await asyncio.sleep(min(5.0, t_a + seconds - time.perf_counter()))
            usage.append(await kernel.ask("usage"))
            if progress is not None:
                progress(time.perf_counter() - t_a)
        t_b = time.perf_counter()
        stats = await kernel.ask("stats")
    finally:
        await client.close()
        await kernel.quit()
    return StreamRun(
        connect_s,
        client.arrivals,
        client.source.sent,
        t_a,
        t_b,
        usage,
        stats,
        stats_before,
        client.unreadable,
    )


@dataclass
class PromptRun:
    connect_s: float
    kernel_ms: list[float] = field(default_factory=list)  # set_prompt() -> first frame of that state
    wire_ms: list[float] = field(default_factory=list)  # ... -> first such frame at the client
    model_ms: float = float("nan")


async def prompt_run(kind: str, trials: int = 6) -> PromptRun:
    client = Client(read_paint=True)
    kernel, connect_s = await _connected(kind, "paint", client)
    run = PromptRun(connect_s)
    try:
        await asyncio.sleep(1.0)
        for i in range(trials):
            target = "bright" if i % 2 == 0 else "dark"
            reply = await kernel.ask("set_prompt", text=target)
            await asyncio.sleep(0.6)
            if reply["t_frame"] is not None:
                run.kernel_ms.append((reply["t_frame"] - reply["t0"]) * 1000.0)
            seen = [a.t for a in client.arrivals if a.t >= reply["t0"] and a.level == target]
            if seen:
                run.wire_ms.append((seen[0] - reply["t0"]) * 1000.0)
        stats = await kernel.ask("stats")
        run.model_ms = float(stats.get("model_ms_p50", float("nan")))
    finally:
        await client.close()
        await kernel.quit()
    return run
