"""A Session's clock while it generates and its `stats`: the generation ticks of a session whose
engine does not bill its own (one a second from the first output frame), and the stats pushed to
listeners once a second while connected. Loop thread, unless said otherwise."""

from __future__ import annotations

import asyncio
import time

from . import _loop
from .events import GenerationTick
from .session_core import SessionCore, Stats
from .timeouts import STATS_EVERY_S, STATS_TIMEOUT_S

__all__ = ["Ticks"]


class Ticks:
    """Generation ticks and the stats of one Session."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core
        self._generating_since: float | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None

    # -- generating --------------------------------------------------------------------------
    def output_frame(self) -> None:
        """An output frame was made: a connected session (whose engine does not report its own
        state) is generating from now on."""
        core = self._core
        if core.conn == "connected" and not core.engine.owns_connection_state:
            core.set_conn("generating")
            self._generating_since = time.perf_counter()
            self._tick_task = asyncio.get_running_loop().create_task(self._ticks())

    async def _ticks(self) -> None:
        start = self._generating_since or time.perf_counter()
        n = 0
        while self._core.conn == "generating":
            n += 1
            await asyncio.sleep(max(0.0, start + n - time.perf_counter()))
            if self._core.conn == "generating":
                self._core.events.emit("generation_tick", GenerationTick(seconds=float(n)))

    def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None
        self._generating_since = None

    # -- stats -------------------------------------------------------------------------------
    def base(self) -> Stats:
        core = self._core
        return {"state": core.conn, "model": core.spec.name, "state_version": core.state.version}

    def read(self) -> Stats:
        """Any thread but the loop's: what `Session.stats` returns."""
        if self._core.pipeline is None or not self._core.holds_loop:
            return self.base()

        async def read() -> Stats:
            return self.now()

        return _loop.run(read(), timeout=STATS_TIMEOUT_S)

    def now(self) -> Stats:
        """The stats as they are now."""
        pipeline = self._core.pipeline
        if pipeline is None:
            return self.base()
        since = self._generating_since
        seconds = 0.0 if since is None else time.perf_counter() - since
        figures = self._core.link_figures
        link = figures() if figures is not None else {}
        return self.base() | pipeline.stats.snapshot() | {"generating_seconds": round(seconds, 1)} | link

    def start_publishing(self) -> None:
        """Push, not poll: the stats go to listeners once a second while connected."""
        if self._stats_task is None:
            self._stats_task = asyncio.get_running_loop().create_task(self._publish())

    def stop_publishing(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = None

    async def _publish(self) -> None:
        while True:
            if self._core.pipeline is not None:
                self._core.events.emit("stats", self.now())
            await asyncio.sleep(STATS_EVERY_S)
