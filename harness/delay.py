"""A delaying relay: a TCP proxy on 127.0.0.1 that holds each direction's bytes for half a round trip.

This kernel has no netem (harness/shaping.py), so a remote kernel's round trip is made by a relay
in front of JupyterLab: the page connects to the relay, the relay to JupyterLab, and every byte
read from either side is written to the other `rtt_ms / 2` after it arrived (a delay line: the
bytes keep their spacing, so the rate the shaping allows is kept too). Use it with shaped_link on
JupyterLab's port: the relay <-> JupyterLab hop then carries the rate limit, the page <-> relay
hop the delay, and the page sees both.

    with shaped_link(1000, port=lab.port), delayed(lab.port, rtt_ms=100) as relay:
        page_lab = relay.lab(lab)  # a JupyterLab whose url() and api() go through the relay
        nb = open_notebook(browser, page_lab, ...)

What each direction holds is bounded (HOLD_BYTES): past that the relay stops reading that side
until the delay line drains, as a router's buffer would, so TCP's own flow control holds the
sender back instead of the relay's memory growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["HOLD_BYTES", "DelayRelay", "Flow", "delayed"]

HOLD_BYTES = 4 * 1024 * 1024  # per direction of one connection
READ_BYTES = 64 * 1024
START_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclasses.dataclass
class Flow:
    """One connection through the relay: the page's first request line, bytes each way so far."""

    request: str = ""
    up: int = 0
    down: int = 0


class DelayRelay:
    """A running relay (see the module's docstring): `port` is where to connect instead of `target`."""

    def __init__(self, target: int, rtt_ms: float) -> None:
        self.target = target
        self.rtt_ms = rtt_ms
        self.port = 0
        self.connections = 0
        self.bytes_up = 0  # page -> JupyterLab, all connections so far (what the link carried)
        self.bytes_down = 0  # JupyterLab -> page
        # Each connection's first request line (what the page asked for) and its bytes up and down.
        self.flows: list[Flow] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="delay-relay", daemon=True)

    @property
    def one_way_s(self) -> float:
        return self.rtt_ms / 2000.0

    def lab(self, lab: T) -> T:
        """A copy of a harness JupyterLab (a dataclass with `port`) that goes through the relay."""
        return dataclasses.replace(lab, port=self.port)  # type: ignore[type-var]

    def __str__(self) -> str:
        return f"{self.rtt_ms:g} ms round trip (delaying relay :{self.port} -> :{self.target})"

    # -- lifecycle (caller's thread) -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the delaying relay did not start")
        if self._error is not None:
            raise RuntimeError(f"the delaying relay did not start: {self._error}") from self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)

    # -- the relay's thread --------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            self._loop.close()

    async def _accept(self, page_r: asyncio.StreamReader, page_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        flow = Flow()
        self.flows.append(flow)
        try:
            lab_r, lab_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            page_w.close()
            raise
        for reader, writer, up in ((page_r, lab_w, True), (lab_r, page_w, False)):
            task = asyncio.ensure_future(self._pipe(reader, writer, up, flow))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool, flow: Flow
    ) -> None:
        """One direction: read at once, write each piece `one_way_s` after it arrived."""
        line: deque[tuple[float, bytes]] = deque()
        held = 0
        more = asyncio.Event()  # something entered the line, or the reader ended
        room = asyncio.Event()  # held is under HOLD_BYTES
        room.set()
        ended = False

        async def read() -> None:
            nonlocal held, ended
            try:
                while data := await reader.read(READ_BYTES):
                    line.append((time.monotonic() + self.one_way_s, data))
                    held += len(data)
                    if up:
                        self.bytes_up += len(data)
                        flow.up += len(data)
                        if not flow.request:
                            flow.request = data.split(b"\r\n", 1)[0].split(b"?", 1)[0][:120].decode("latin-1")
                    else:
                        self.bytes_down += len(data)
                        flow.down += len(data)
                    more.set()
                    if held >= HOLD_BYTES:
                        room.clear()
                        await room.wait()
            except ConnectionError:
                pass  # the far side reset: the writer below closes ours
            finally:
                ended = True
                more.set()

        reading = asyncio.ensure_future(read())
        try:
            while True:
                if not line:
                    if ended:
                        break
                    more.clear()
                    await more.wait()
                    continue
                due, data = line.popleft()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()
                held -= len(data)
                if held < HOLD_BYTES:
                    room.set()
        except ConnectionError:
            pass  # the other side is gone: close both
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            writer.close()


@contextlib.contextmanager
def delayed(target: int, rtt_ms: float) -> Iterator[DelayRelay]:
    """A relay to 127.0.0.1:`target` adding `rtt_ms` of round trip (0: a plain relay) for the body."""
    relay = DelayRelay(target, rtt_ms)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()
