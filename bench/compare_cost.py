"""Scenario 9 (issue 23): what a comparison costs. Two local arms on one source against two
separate sessions on the same kind of source, and each arm's latency against a single session.

    bench/run --short --only compare    # 3 rounds of every set-up, 8 s measured each (about 5 minutes)
    bench/run --only compare            # the same, 20 s measured each (about 9 minutes)

Each set-up runs in a fresh process of its own (as a kernel would), so the process CPU time is
the set-up's alone: `single` (one Session, local engine, prompt "anime"), `separate` (two
Sessions, "anime" and "film noir", each with its own source), `compare` (compare() with those two
arms on one source). Sources: "pattern" (the generated test card, made once per source) and
"camera": a stamped 1280x720@30 pattern sent over WebRTC by an aiortc peer in the bench's own
process (the page's stand-in, not measured), one per session that takes a camera (separate: one
each, as two displayed Sessions would each open the camera; compare: one, to the shared input),
and a receive-only peer per compare arm; every arm's output is VP8-encoded back. Per run, after a
warm-up: process CPU seconds over the window / output frames of all arms (ms per output frame),
and each arm's kernel latency p50 / p95 (`stats`: from the frame's stamp at the (shared) input to
its output). Cells: median (min-max) of the runs. Targets: compare's CPU per output frame below
separate's, and each arm's latency p50 within 20% of the single session's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .table import Row, machine, render

__all__ = ["compare_rows", "main"]

SETUPS = ("single", "separate", "compare")
KINDS = ("pattern", "camera")
PROMPTS = ("anime", "film noir")
WARMUP = 3.0
LATENCY_SLACK = 1.2  # each arm's latency p50 within 20% of a single session's


# -- one run: a process of its own, and the page's stand-ins ---------------------------------------
def build(setup: str, source: str) -> tuple[dict[str, Any], list[Any], dict[str, str]]:
    """The set-up's sessions by arm name, what to disconnect, and the sessions a client must
    reach (camera only): name -> "send" (sends the camera, reads the output back) or "recv"."""
    from decart_nb import Session
    from decart_nb.comparison import compare

    camera = source == "camera"
    if setup == "compare":
        cmp = compare([{"name": p, "prompt": p} for p in PROMPTS], source).connect()
        peers = ({"input": "send"} | {p: "recv" for p in PROMPTS}) if camera else {}
        return dict(cmp.arms) | {"input": cmp.input}, [cmp], peers
    prompts = PROMPTS[:1] if setup == "single" else PROMPTS
    sessions = {p: Session(source=source, prompt=p).connect() for p in prompts}
    return sessions, list(sessions.values()), {p: "send" for p in prompts} if camera else {}


def child(setup: str, source: str, seconds: float, commands: TextIO, replies: TextIO) -> None:
    """Build the set-up; answer the parent's offers (camera); measure `seconds` after a warm-up:
    process CPU, frames out of all arms, each arm's latency. JSON lines both ways."""

    def reply(value: object) -> None:
        replies.write(json.dumps(value) + "\n")
        replies.flush()

    reachable, closers, peers = build(setup, source)
    arms = {name: s for name, s in reachable.items() if name != "input"}
    try:
        reply({"peers": peers})
        for line in commands:
            cmd = json.loads(line)
            if cmd["op"] == "offer":
                reply({"sdp": reachable[cmd["name"]].answer(cmd["sdp"])})
            elif cmd["op"] == "measure":
                reply(measure_run(arms, seconds))
                return
    finally:
        for closer in closers:
            closer.disconnect()


def measure_run(sessions: dict[str, Any], seconds: float) -> dict[str, Any]:
    time.sleep(WARMUP)
    before = {name: s.stats.get("frames_out", 0) for name, s in sessions.items()}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    stats = {name: s.stats for name, s in sessions.items()}
    frames = sum(stats[n].get("frames_out", 0) - before[n] for n in sessions)
    keys = ("latency_ms_p50", "latency_ms_p95", "fps_out", "frames_dropped")
    return {
        "cpu_s": cpu1 - cpu0,
        "wall_s": wall1 - wall0,
        "frames_out": frames,
        "arms": {n: {k: stats[n].get(k, float("nan")) for k in keys} for n in sessions},
    }


async def run_async(setup: str, source: str, seconds: float) -> dict[str, Any]:
    """The child process, and (camera) one aiortc peer per session it names."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.compare_cost",
        "--child",
        setup,
        source,
        str(seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 22,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def read(timeout: float) -> dict[str, Any]:
        line = await asyncio.wait_for(stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{setup} on {source}: the child exited ({await proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(timeout: float, **cmd: object) -> dict[str, Any]:
        stdin.write((json.dumps(cmd) + "\n").encode())
        await stdin.drain()
        return await read(timeout)

    pcs: list[RTCPeerConnection] = []
    try:
        peers: dict[str, str] = (await read(120))["peers"]
        for name, role in peers.items():

            async def offer(sdp: str, name: str = name) -> dict[str, Any]:
                return await ask(30, op="offer", name=name, sdp=sdp)

            pcs.append(await _client(role, offer))
        return await ask(120 + seconds, op="measure")
    finally:
        for pc in pcs:
            await pc.close()
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _client(role: str, offer: Callable[[str], Awaitable[dict[str, Any]]]) -> RTCPeerConnection:
    """A peer as the page would be: the camera sent ("send"; the output read back), or only the
    output received ("recv"); what comes back is decoded and dropped (outside the measured process)."""
    from decart_nb.media.sources import PatternTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if role == "send":
        pc.addTrack(PatternTrack(1280, 720, 30))
    else:
        pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        asyncio.get_running_loop().create_task(_drain(track))

    await pc.setLocalDescription(await pc.createOffer())
    answer = await offer(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


def run_one(setup: str, source: str, seconds: float) -> dict[str, Any]:
    return asyncio.run(run_async(setup, source, seconds))


# -- the scenario --------------------------------------------------------------------------------
def measure(repeat: int, seconds: float) -> dict[str, list[dict[str, Any]]]:
    """Every set-up on every kind, `repeat` rounds (interleaved, so a slow minute hits all)."""
    runs: dict[str, list[dict[str, Any]]] = {f"{k}/{s}": [] for k in KINDS for s in SETUPS}
    for i in range(repeat):
        for kind in KINDS:
            for setup in SETUPS:
                result = run_one(setup, kind, seconds)
                runs[f"{kind}/{setup}"].append(result)
                print(f"bench compare: round {i + 1} {kind} {setup}: {_brief(result)}", file=sys.stderr)
    return runs


def _brief(result: dict[str, Any]) -> str:
    arms = ", ".join(
        f"{n} {a['latency_ms_p50']}/{a['latency_ms_p95']} ms {a['fps_out']} fps"
        for n, a in result["arms"].items()
    )
    return f"{_cpu_ms(result):.2f} ms CPU/frame; {arms}"


def _cpu_ms(result: dict[str, Any]) -> float:
    return 1000.0 * float(result["cpu_s"]) / max(1, int(result["frames_out"]))


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def rows_from(runs: dict[str, list[dict[str, Any]]]) -> list[Row]:
    rows: list[Row] = []
    for kind in KINDS:
        scenario = f"9 compare, 2 local arms, {kind}"
        cpu = {s: [_cpu_ms(r) for r in runs[f"{kind}/{s}"]] for s in SETUPS}
        compare_cpu, separate_cpu = statistics.median(cpu["compare"]), statistics.median(cpu["separate"])
        rows.append(
            Row(
                scenario,
                "CPU ms / output frame, compare",
                "< separate",
                _cell(cpu["compare"]),
                ok=compare_cpu < separate_cpu,
            )
        )
        rows.append(Row(scenario, "CPU ms / output frame, 2 separate sessions", "-", _cell(cpu["separate"])))
        rows.append(Row(scenario, "CPU ms / output frame, 1 session", "-", _cell(cpu["single"])))
        for q in ("p50", "p95"):
            key = f"latency_ms_{q}"
            single = [r["arms"][PROMPTS[0]][key] for r in runs[f"{kind}/single"]]
            limit = LATENCY_SLACK * statistics.median(single)
            rows.append(Row(scenario, f"kernel latency {q} (ms), 1 session", "-", _cell(single)))
            for arm in PROMPTS:
                values = [r["arms"][arm][key] for r in runs[f"{kind}/compare"]]
                judged = q == "p50"
                rows.append(
                    Row(
                        scenario,
                        f"kernel latency {q} (ms), compare arm {arm!r}",
                        f"<= {limit:.1f} (1.2 x single)" if judged else "-",
                        _cell(values),
                        ok=statistics.median(values) <= limit if judged else None,
                    )
                )
            separate = [r["arms"][a][key] for r in runs[f"{kind}/separate"] for a in PROMPTS]
            rows.append(
                Row(scenario, f"kernel latency {q} (ms), separate sessions (both)", "-", _cell(separate))
            )
    return rows


def compare_rows(short: bool = True, repeat: int = 3) -> list[Row]:
    """For bench/__main__.py (`--only compare`): the rows of `repeat` rounds."""
    return rows_from(measure(repeat, 8.0 if short else 20.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.compare_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("SETUP", "SOURCE", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measured seconds per run (after a 3 s warm-up)"
    )
    args = parser.parse_args(argv)
    if args.child:
        setup, source, seconds = args.child
        replies = sys.stdout
        sys.stdout = sys.stderr  # only JSON replies on the real stdout
        child(setup, source, float(seconds), sys.stdin, replies)
        return 0
    print(f"{machine()}\n")
    print(render(rows_from(measure(args.repeat, args.seconds))))
    print(f"\neach cell: median (min-max) of {args.repeat} runs, {args.seconds:g} s measured each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
