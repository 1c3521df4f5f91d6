"""Scenario 9 (issue 23): what a comparison costs. Two local arms on one source against two
separate sessions on the same kind of source, and each arm's latency against a single session.

    bench/run --short --only compare    # 3 rounds of every set-up, 7 s measured each (about 6 minutes)
    bench/run --only compare            # the same, 20 s measured each (about 13 minutes)

Each set-up runs in a fresh process of its own (as a kernel would), so the process CPU time is
the set-up's alone: `single` (one Session, local engine, prompt "anime"), `separate` (two
Sessions, "anime" and "film noir", each with its own source), `compare1` (compare() with the one
arm "anime": the fan-out's own cost, nothing computed twice), `compare` (compare() with both
arms on one source; each arm's model threads run on a CPU of their own, decart_nb/media/placement.py).
Sources: "pattern" (the generated test card, made once per source) and
"camera": a stamped 1280x720@30 pattern sent over WebRTC by an aiortc peer in the bench's own
process (the page's stand-in, not measured), one per session that takes a camera (separate: one
each, as two displayed Sessions would each open the camera; compare: one, to the shared input),
and a receive-only peer per compare arm; every arm's output is VP8-encoded back. Per run, after a
warm-up: process CPU seconds over the window / output frames of all arms (ms per output frame),
and each arm's kernel latency p50 / p95 (`stats`: from the frame's stamp at the (shared) input to
its output) and model time p50 (`model_ms_p50`); on the camera also each arm's round trip p50,
read by the page's stand-in from the stamp on each output it decodes (the camera frame's leaving
-> its output decoded: the encodes, the sending and the decodes that kernel latency leaves out).
Cells: median (min-max) of the runs. Targets: compare's CPU per output frame below separate's,
and the latency p50 of each arm within 20% of the single session's: judged for the 1-arm
comparison (what the fan-out itself costs) and for each of the two arms; beside the medians,
each arm's p50 over the single session's of the same round (paired: the machine's speed drifts
between rounds). Pipeline only (pattern): the same with a model that waits WAIT_MS without using
a CPU (`wait1`: one Session, `wait2`: a 2-arm comparison), judged the same way: what decart_nb's
own steps add, apart from two models computing at once. The two arms get every frame at the same
moment, so on a small machine their models compute at once; separate sessions' frames fall at
random phases. The last rows show that contention without decart_nb's pipeline: in a process of
its own, the local engine on a 720p frame, one thread at 30 fps, then two threads released
together by a barrier at each 30 fps tick, left to the scheduler and then each on a CPU of its
own (as compare places its arms); per thread and round, the median ms from the release to the
end of process() (what an arm waits) and of process() alone (what model_ms counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_nb.media.frames import luma_view, recv_video

from .client import StampedSource, complete_on_marker
from .table import Row, machine, render

__all__ = ["compare_rows", "contention_frame", "main"]

SETUPS = ("single", "separate", "compare1", "compare")
WAIT_SETUPS = ("wait1", "wait2")  # pipeline only, pattern only
KINDS = ("pattern", "camera")
WAIT_MS = 2.5  # the waiting model's time: about the local model's at 720p
PROMPTS = ("anime", "film noir")
WARMUP = 3.0
LATENCY_SLACK = 1.2  # each arm's latency p50 within 20% of a single session's
FPS = 30.0  # the contention experiment's tick


# -- one run: a process of its own, and the page's stand-ins ---------------------------------------
def build(setup: str, source: str) -> tuple[dict[str, Any], list[Any], dict[str, str]]:
    """The set-up's sessions by arm name, what to disconnect, and the sessions a client must
    reach (camera only): name -> "send" (sends the camera, reads the output back) or "recv"."""
    from decart_nb import Session
    from decart_nb.arms import Arm
    from decart_nb.comparison import compare

    camera = source == "camera"
    if setup in WAIT_SETUPS:
        return _build_waiting(setup, source)
    prompts = PROMPTS if setup in ("separate", "compare") else PROMPTS[:1]
    if setup.startswith("compare"):
        arms = [Arm(name=p, prompt=p, engine=_stamping_local()) for p in prompts]
        cmp = compare(arms, source).connect()
        peers = ({"input": "send"} | {p: "recv" for p in prompts}) if camera else {}  # the sender first
        return dict(cmp.arms) | {"input": cmp.input}, [cmp], peers
    sessions = {p: Session(source=source, prompt=p, frame_stamps=True).connect() for p in prompts}
    return sessions, list(sessions.values()), {p: "send" for p in prompts} if camera else {}


def _stamping_local() -> Any:
    """The local engine copying each input's stamp onto its output, as a Session's does with
    frame_stamps=True: the page's stand-in reads every set-up's round trip the same way."""
    from decart_nb.engines.local import LocalEngine

    engine = LocalEngine()
    engine.preserve_stamp = True
    return engine


def _build_waiting(setup: str, source: str) -> tuple[dict[str, Any], list[Any], dict[str, str]]:
    """`wait1`: one Session, `wait2`: a 2-arm comparison, of a model that waits WAIT_MS."""
    from decart_nb import Session
    from decart_nb.arms import Arm
    from decart_nb.comparison import compare

    if setup == "wait1":
        session = Session(engine=_waiting_model(), source=source).connect()
        return {PROMPTS[0]: session}, [session], {}
    cmp = compare([Arm(name=p, engine=_waiting_model()) for p in PROMPTS], source).connect()
    return dict(cmp.arms) | {"input": cmp.input}, [cmp], {}


def _waiting_model() -> Any:
    """A model that takes WAIT_MS and no CPU (it sleeps, the GIL released) and returns its input."""
    from decart_nb.engines.base import FrameEngine

    class Waiting(FrameEngine):
        name = "waiting"
        skip_passthrough = False  # no prompt: still called for every frame

        def process(self, frame: Any, state: Any) -> Any:
            time.sleep(WAIT_MS / 1000.0)
            return frame

    return Waiting()


Measure = Callable[[dict[str, Any], float], dict[str, Any]]


def child(
    setup: str, source: str, seconds: float, commands: TextIO, replies: TextIO, measure: Measure | None = None
) -> None:
    """Build the set-up; answer the parent's offers (camera); measure `seconds` after a warm-up
    (`measure`, by default measure_run: process CPU, frames out of all arms, each arm's latency).
    JSON lines both ways."""

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
                reply((measure or measure_run)(arms, seconds))
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
    keys = ("latency_ms_p50", "latency_ms_p95", "model_ms_p50", "fps_out", "frames_dropped")
    return {
        "cpu_s": cpu1 - cpu0,
        "wall_s": wall1 - wall0,
        "frames_out": frames,
        "arms": {n: {k: stats[n].get(k, float("nan")) for k in keys} for n in sessions},
    }


async def run_async(
    setup: str, source: str, seconds: float, module: str = "bench.compare_cost"
) -> dict[str, Any]:
    """The child process (`python -m module --child ...`), and (camera) one aiortc peer per
    session it names."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
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
    trips: dict[str, list[tuple[float, float]]] = {}  # peer -> (arrival, round trip ms) of each frame
    try:
        peers: dict[str, str] = (await read(120))["peers"]
        camera: StampedSource | None = None  # the last sending peer's: what a compare arm shows
        for name, role in peers.items():

            async def offer(sdp: str, name: str = name) -> dict[str, Any]:
                return await ask(30, op="offer", name=name, sdp=sdp)

            if role == "send":
                camera = StampedSource()
            assert camera is not None  # the set-ups name the sending peer first
            pcs.append(
                await _client(camera if role == "send" else None, offer, camera, trips.setdefault(name, []))
            )
        start = time.perf_counter() + WARMUP  # the child's window: after its warm-up
        result = await ask(120 + seconds, op="measure")
        if trips:
            result["round_trip_ms_p50"] = _window_p50(trips, start, start + seconds)
        return result
    finally:
        for pc in pcs:
            await pc.close()
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _client(
    sends: StampedSource | None,
    offer: Callable[[str], Awaitable[dict[str, Any]]],
    camera: StampedSource,
    trips: list[tuple[float, float]],
) -> RTCPeerConnection:
    """A peer as the page would be: the stamped camera sent (`sends`; the output read back), or
    only the output received. Each frame that comes back is decoded and its stamp read: its
    round trip from the camera frame's leaving (outside the measured process)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if sends is not None:
        pc.addTrack(sends)
    else:
        pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        complete_on_marker(pc, track)
        asyncio.get_running_loop().create_task(_drain(track, camera, trips))

    await pc.setLocalDescription(await pc.createOffer())
    answer = await offer(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc


async def _drain(track: MediaStreamTrack, camera: StampedSource, trips: list[tuple[float, float]]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await recv_video(track)
            now = time.perf_counter()
            found = camera.sent_at(luma_view(frame))
            if found is not None:
                trips.append((now, (now - found[1]) * 1000.0))


def _window_p50(trips: dict[str, list[tuple[float, float]]], start: float, end: float) -> dict[str, float]:
    """Each peer's median round trip over the frames that came back in [start, end]."""
    medians = {}
    for name, arrivals in trips.items():
        inside = [ms for t, ms in arrivals if start <= t <= end]
        if inside:
            medians[name] = statistics.median(inside)
    return medians


def run_one(setup: str, source: str, seconds: float, module: str = "bench.compare_cost") -> dict[str, Any]:
    return asyncio.run(run_async(setup, source, seconds, module))


# -- the machine's contention, without decart_nb's pipeline ---------------------------------------
def contention(seconds: float) -> dict[str, list[float]]:
    """The local engine on one 720p frame, paced at 30 fps: one thread ("alone"), then one thread
    per prompt released together at each tick by a barrier, as compare's arms get each frame at
    the same moment ("together"). Per thread, the median ms from the release to the end of
    process() (what an arm waits: its model, the core and the GIL it shares) and ("_process")
    of process() alone, as the sessions' model_ms counts it."""
    frame = contention_frame()
    alone, alone_process = _paced(PROMPTS[:1], frame, seconds)
    together, together_process = _paced(PROMPTS, frame, seconds)
    placed, placed_process = _paced(PROMPTS, frame, seconds, placed=True)
    return {
        "alone": alone,
        "alone_process": alone_process,
        "together": together,
        "together_process": together_process,
        "placed": placed,
        "placed_process": placed_process,
    }


def contention_frame() -> Any:
    """The one 720p yuv420p frame the contention experiments run the model on."""
    import av
    import numpy as np

    ramp = np.linspace(0, 255, 1280, dtype=np.uint8)
    rgb = np.stack(
        [np.tile(ramp, (720, 1)), np.tile(ramp[::-1], (720, 1)), np.full((720, 1280), 96, np.uint8)], -1
    )
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _paced(
    prompts: tuple[str, ...], frame: Any, seconds: float, placed: bool = False
) -> tuple[list[float], list[float]]:
    """Per thread: median ms from the release to the end of process(), and of process() alone;
    `placed`: each thread on a CPU of its own, as compare's arms."""
    from decart_nb.engines.local.engine import LocalEngine
    from decart_nb.media.placement import Placement, spread
    from decart_nb.state import GenerationState

    cpus = spread(len(prompts)) if placed else [None] * len(prompts)

    engines = [(LocalEngine(), GenerationState(prompt=p)) for p in prompts]
    for engine, state in engines:
        engine.process(frame, state)  # its look's tables and scratch, built before the clock runs
    released = [0.0]  # set by the barrier's action, once per tick, before any thread leaves
    barrier = threading.Barrier(len(engines), lambda: released.__setitem__(0, time.perf_counter()), 30.0)
    start, ticks = time.perf_counter() + 0.1, round(seconds * FPS)

    def worker(i: int) -> tuple[float, float]:
        engine, state = engines[i]
        Placement().follow(cpus[i])
        waited: list[float] = []
        inside: list[float] = []
        for k in range(ticks):
            time.sleep(max(0.0, start + k / FPS - time.perf_counter()))
            barrier.wait()
            t0 = time.perf_counter()
            engine.process(frame, state)
            t1 = time.perf_counter()
            waited.append((t1 - released[0]) * 1000.0)
            inside.append((t1 - t0) * 1000.0)
        return statistics.median(waited), statistics.median(inside)

    with ThreadPoolExecutor(len(engines)) as pool:
        medians = list(pool.map(worker, range(len(engines))))
    return [w for w, _ in medians], [p for _, p in medians]


def run_contention(seconds: float) -> dict[str, list[float]]:
    """contention() in a fresh process (as the set-ups run), its JSON on stdout."""
    args = [sys.executable, "-m", "bench.compare_cost", "--contention", str(seconds)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120 + 4 * seconds, check=True)
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


# -- the scenario --------------------------------------------------------------------------------
def measure(repeat: int, seconds: float) -> dict[str, list[dict[str, Any]]]:
    """Every set-up on every kind and the contention experiment, `repeat` rounds (interleaved,
    so a slow minute hits all)."""
    runs: dict[str, list[dict[str, Any]]] = {f"{k}/{s}": [] for k in KINDS for s in _setups(k)}
    runs["contention"] = []
    for i in range(repeat):
        for kind in KINDS:
            for setup in _setups(kind):
                result = run_one(setup, kind, seconds)
                runs[f"{kind}/{setup}"].append(result)
                print(f"bench compare: round {i + 1} {kind} {setup}: {_brief(result)}", file=sys.stderr)
        runs["contention"].append(dict(run_contention(min(seconds, 4.0))))
        print(f"bench compare: round {i + 1} contention (ms): {runs['contention'][-1]}", file=sys.stderr)
    return runs


def _setups(kind: str) -> tuple[str, ...]:
    return SETUPS + WAIT_SETUPS if kind == "pattern" else SETUPS


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
        rows += _cpu_rows(scenario, runs, kind)
        rows += _latency_rows(scenario, runs, kind, "p50")
        rows += _paired_rows(scenario, runs, kind, "single", "compare")
        rows += _latency_rows(scenario, runs, kind, "p95")
        rows += _model_rows(scenario, runs, kind)
        if all("round_trip_ms_p50" in r for r in runs[f"{kind}/single"]):  # a camera, since it was measured
            rows += _round_trip_rows(scenario, runs, kind)
    if "pattern/wait1" in runs:  # runs recorded before the pipeline-only set-ups have none
        rows += _waiting_rows(runs)
    return rows + _contention_rows(runs["contention"])


def _cpu_rows(scenario: str, runs: dict[str, list[dict[str, Any]]], kind: str) -> list[Row]:
    cpu = {s: [_cpu_ms(r) for r in runs[f"{kind}/{s}"]] for s in SETUPS}
    met = statistics.median(cpu["compare"]) < statistics.median(cpu["separate"])
    return [
        Row(scenario, "CPU ms / output frame, compare", "< separate", _cell(cpu["compare"]), ok=met),
        Row(scenario, "CPU ms / output frame, 2 separate sessions", "-", _cell(cpu["separate"])),
        Row(scenario, "CPU ms / output frame, 1 session", "-", _cell(cpu["single"])),
    ]


def _arm_values(
    runs: dict[str, list[dict[str, Any]]], kind: str, setup: str, arm: str, key: str
) -> list[float]:
    return [float(r["arms"][arm][key]) for r in runs[f"{kind}/{setup}"]]


def _latency_rows(scenario: str, runs: dict[str, list[dict[str, Any]]], kind: str, q: str) -> list[Row]:
    """Judged at p50: the 1-arm comparison (the fan-out's own cost) and each of the two arms."""
    key = f"latency_ms_{q}"
    single = _arm_values(runs, kind, "single", PROMPTS[0], key)
    limit = LATENCY_SLACK * statistics.median(single)

    def row(figure: str, values: list[float]) -> Row:
        figure = f"kernel latency {q} (ms), {figure}"
        return (
            _judged(scenario, figure, values, limit)
            if q == "p50"
            else Row(scenario, figure, "-", _cell(values))
        )

    rows = [Row(scenario, f"kernel latency {q} (ms), 1 session", "-", _cell(single))]
    rows.append(
        row("1-arm compare (the fan-out's own cost)", _arm_values(runs, kind, "compare1", PROMPTS[0], key))
    )
    rows += [row(f"compare arm {arm!r}", _arm_values(runs, kind, "compare", arm, key)) for arm in PROMPTS]
    separate = [v for a in PROMPTS for v in _arm_values(runs, kind, "separate", a, key)]
    return [*rows, Row(scenario, f"kernel latency {q} (ms), separate sessions (both)", "-", _cell(separate))]


def _judged(scenario: str, figure: str, values: list[float], limit: float) -> Row:
    """A latency row judged against LATENCY_SLACK x a single session's median (`limit`)."""
    target = f"<= {limit:.1f} (1.2 x single)"
    return Row(scenario, figure, target, _cell(values), ok=statistics.median(values) <= limit)


def _paired_rows(
    scenario: str, runs: dict[str, list[dict[str, Any]]], kind: str, one: str, two: str
) -> list[Row]:
    """Each arm's p50 over the single session's in the same round: the rounds are interleaved,
    so a slow minute of the machine weighs on both sides of each ratio."""
    single = _arm_values(runs, kind, one, PROMPTS[0], "latency_ms_p50")
    rows = []
    for arm in PROMPTS:
        ratios = [
            a / s for a, s in zip(_arm_values(runs, kind, two, arm, "latency_ms_p50"), single, strict=True)
        ]
        figure = f"kernel latency p50, arm {arm!r} / single, paired by round"
        rows.append(Row(scenario, figure, "-", _cell(ratios)))
    return rows


def _waiting_rows(runs: dict[str, list[dict[str, Any]]]) -> list[Row]:
    """Pipeline only: what decart_nb's own steps add to each of two arms, apart from two models
    computing at once (the model waits WAIT_MS and uses no CPU)."""
    scenario = f"9 compare, pipeline only (a model that waits {WAIT_MS:g} ms), pattern"
    key = "latency_ms_p50"
    single = _arm_values(runs, "pattern", "wait1", PROMPTS[0], key)
    limit = LATENCY_SLACK * statistics.median(single)
    rows = [Row(scenario, "kernel latency p50 (ms), 1 session", "-", _cell(single))]
    rows += [
        _judged(
            scenario,
            f"kernel latency p50 (ms), compare arm {arm!r}",
            _arm_values(runs, "pattern", "wait2", arm, key),
            limit,
        )
        for arm in PROMPTS
    ]
    return rows + _paired_rows(scenario, runs, "pattern", "wait1", "wait2")


def _round_trip_rows(scenario: str, runs: dict[str, list[dict[str, Any]]], kind: str) -> list[Row]:
    """What a person sees: from the camera frame leaving the page's stand-in to its output decoded
    there, with the encode, the sending and the decoding that kernel latency leaves out. Shown,
    not judged: the stand-in shares the machine's CPUs, as a local browser would."""

    def trips(setup: str, arm: str) -> list[float]:
        return [float(r["round_trip_ms_p50"][arm]) for r in runs[f"{kind}/{setup}"]]

    single = trips("single", PROMPTS[0])
    rows = [Row(scenario, "round trip p50 (ms), 1 session", "-", _cell(single))]
    for arm in PROMPTS:
        values = trips("compare", arm)
        rows.append(Row(scenario, f"round trip p50 (ms), compare arm {arm!r}", "-", _cell(values)))
        ratios = [a / s for a, s in zip(values, single, strict=True)]
        rows.append(
            Row(scenario, f"round trip p50, arm {arm!r} / single, paired by round", "-", _cell(ratios))
        )
    return rows


def _model_rows(scenario: str, runs: dict[str, list[dict[str, Any]]], kind: str) -> list[Row]:
    """Where the two arms' latency goes: the model's own time grows when both compute at once."""
    key = "model_ms_p50"
    rows = [
        Row(
            scenario,
            "model ms p50, 1 session",
            "-",
            _cell(_arm_values(runs, kind, "single", PROMPTS[0], key)),
        )
    ]
    rows += [
        Row(
            scenario,
            f"model ms p50, compare arm {arm!r}",
            "-",
            _cell(_arm_values(runs, kind, "compare", arm, key)),
        )
        for arm in PROMPTS
    ]
    separate = [v for a in PROMPTS for v in _arm_values(runs, kind, "separate", a, key)]
    return [*rows, Row(scenario, "model ms p50, separate sessions (both)", "-", _cell(separate))]


def _contention_rows(rounds: list[dict[str, Any]]) -> list[Row]:
    """The machine's own contention: two models released together slow each other."""
    scenario = "9 compare, the local model alone (no pipeline)"

    def cell(key: str) -> str:
        return _cell([float(v) for r in rounds for v in r[key]])

    rows = [
        Row(scenario, "ms from release to output, 1 thread at 30 fps", "-", cell("alone")),
        Row(scenario, "ms from release to output, 2 threads released together (each)", "-", cell("together")),
        Row(scenario, "  of which in process(), 1 thread", "-", cell("alone_process")),
        Row(scenario, "  of which in process(), 2 threads together (each)", "-", cell("together_process")),
    ]
    if all("placed" in r for r in rounds):  # runs recorded before placement have none
        rows[2:2] = [
            Row(scenario, "ms from release to output, 2 threads together, a CPU each", "-", cell("placed"))
        ]
        rows.append(
            Row(
                scenario,
                "  of which in process(), 2 threads together, a CPU each",
                "-",
                cell("placed_process"),
            )
        )
    return rows


def compare_rows(short: bool = True, repeat: int = 3) -> list[Row]:
    """For bench/__main__.py (`--only compare`): the rows of `repeat` rounds."""
    return rows_from(measure(repeat, 7.0 if short else 20.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.compare_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("SETUP", "SOURCE", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--contention", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=7.0, help="measured seconds per run (after a 3 s warm-up)"
    )
    args = parser.parse_args(argv)
    if args.child:
        setup, source, seconds = args.child
        replies = sys.stdout
        sys.stdout = sys.stderr  # only JSON replies on the real stdout
        child(setup, source, float(seconds), sys.stdin, replies)
        return 0
    if args.contention:
        print(json.dumps(contention(args.contention)))
        return 0
    print(f"{machine()}\n")
    print(render(rows_from(measure(args.repeat, args.seconds))))
    print(f"\neach cell: median (min-max) of {args.repeat} runs, {args.seconds:g} s measured each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
