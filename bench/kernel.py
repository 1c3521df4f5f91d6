"""The kernel side of a benchmark run, in its own process (as a Jupyter kernel is).

    python -m bench.kernel session|session-plain|naive MODEL

Reads one JSON command per line on stdin and answers one JSON line on stdout:
offer {sdp} -> {sdp}; set_prompt {text} -> {t0, t_ack, t_frame}; usage -> {cpu, wall, rss};
stats -> session.stats; quit. Times are time.perf_counter() (CLOCK_MONOTONIC: one clock for
every process on the machine, so the client can compare them with its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any, TextIO

from .engines import MODELS
from .naive import NaiveRelay

__all__ = ["main"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def usage() -> dict[str, float]:
    return {"cpu": time.process_time(), "wall": time.perf_counter(), "rss": rss_bytes()}


class SessionSide:
    def __init__(self, model_name: str) -> None:
        import decart_nb

        model = MODELS[model_name]
        self.session = decart_nb.Session(
            source="camera",
            engine="local" if model is None else model,
            prompt="dark" if model_name == "paint" else None,
            frame_stamps=True,
        )
        self.session.connect()

    def offer(self, sdp: str) -> str:
        return self.session.answer(sdp)

    def set_prompt(self, text: str) -> dict[str, float | None]:
        from decart_nb import _loop
        from decart_nb.session_port import port_of

        t0 = time.perf_counter()
        self.session.set_prompt(text)
        t_ack = time.perf_counter()
        pipeline = port_of(self.session).pipeline
        assert pipeline is not None
        version = self.session.generation.version

        async def first_frame() -> float:
            await pipeline.broadcast.next_frame(version)
            return time.perf_counter()

        return {"t0": t0, "t_ack": t_ack, "t_frame": _loop.run(first_frame(), timeout=10)}

    def stats(self) -> dict[str, Any]:
        return self.session.stats

    def close(self) -> None:
        self.session.disconnect()


class NaiveSide:
    def __init__(self, model_name: str) -> None:
        self.relay = NaiveRelay(MODELS[model_name], prompt="dark" if model_name == "paint" else None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="naive-loop", daemon=True)
        self.thread.start()

    def offer(self, sdp: str) -> str:
        return asyncio.run_coroutine_threadsafe(self.relay.answer(sdp), self.loop).result(15)

    def set_prompt(self, text: str) -> dict[str, float | None]:
        t0 = time.perf_counter()
        version = self.relay.set_prompt(text)
        t_ack = time.perf_counter()
        end = t0 + 10
        while version not in self.relay.first_frame_of and time.perf_counter() < end:
            time.sleep(0.002)
        return {"t0": t0, "t_ack": t_ack, "t_frame": self.relay.first_frame_of.get(version)}

    def stats(self) -> dict[str, Any]:
        return {"frames_out": self.relay.frames_out}

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.relay.close(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def serve(side: SessionSide | NaiveSide, commands: TextIO, replies: TextIO) -> None:
    def reply(value: Any) -> None:
        replies.write(json.dumps(value) + "\n")
        replies.flush()

    reply({"ready": True, **usage()})
    for line in commands:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "offer":
            reply({"sdp": side.offer(cmd["sdp"])})
        elif op == "set_prompt":
            reply(side.set_prompt(cmd["text"]))
        elif op == "usage":
            reply(usage())
        elif op == "stats":
            reply(side.stats())
        elif op == "quit":
            side.close()
            reply({"bye": True})
            return
        else:
            reply({"error": f"unknown op {op}"})


def _not_applied(receiver: object) -> bool:
    return False


def main(argv: list[str]) -> None:
    kind, model_name = argv
    if kind == "session-plain":  # attribution runs: the Session with aiortc's own jitter buffer
        import decart_nb.rtc.peer

        # aiortc's own jitter buffer: the peer module's name for the installer returns "not applied"
        setattr(decart_nb.rtc.peer, "complete_frames_on_marker", _not_applied)  # noqa: B010 - a patch
        kind = "session"
    replies = sys.stdout
    sys.stdout = sys.stderr  # only JSON replies on the real stdout
    side = SessionSide(model_name) if kind == "session" else NaiveSide(model_name)
    serve(side, sys.stdin, replies)


if __name__ == "__main__":
    main(sys.argv[1:])
