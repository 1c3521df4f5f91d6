"""camera.js's RateController against rate.py's, step for step: the same seeded random acks and
losses go to both (the JavaScript one in node), and after every call the returned bool, the rung
and its change count must be equal and kbps, fps and latency equal to within 1e-9 (relative)."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from decart_nb.media import rate
from decart_nb.media.rate import RateController

CAMERA_JS = Path(rate.__file__).parents[2] / "js" / "src" / "index.ts"
START_MARKER = "const RATE = Object.freeze({"
CLASS_MARKER = "\nclass RateController {"
EVENTS = 600
SEEDS = (1, 2, 3)
LOST_SHARE = 0.03
ENCODED_SHARE = 0.6  # of the acks, those a frame's encode time comes before
OVERLAP_SHARE = 0.3  # of the acks, those sent before the previous ack came
ACK_TIMEOUT_S = 3.0  # what a sender waits before it calls a chunk lost
REL_TOL = 1e-9
ABS_TOL = 1e-12  # a latency of 0 in one and 1e-18 in the other is no mismatch

Event = tuple[Any, ...]  # ("ack", nbytes, seconds, now), ("lost", now) or ("encoded", seconds)


@dataclass(frozen=True)
class Model:
    """A model's size and fps and the controller's options (None: the default)."""

    width: int
    height: int
    fps: float
    start_kbps: float | None = None
    min_kbps: float | None = None
    max_kbps: float | None = None

    def py_options(self) -> dict[str, float]:
        names = {"start_kbps": self.start_kbps, "min_kbps": self.min_kbps, "max_kbps": self.max_kbps}
        return {name: value for name, value in names.items() if value is not None}

    def js_options(self) -> dict[str, float]:
        names = {"startKbps": self.start_kbps, "minKbps": self.min_kbps, "maxKbps": self.max_kbps}
        return {name: value for name, value in names.items() if value is not None}


MODELS = (
    Model(1280, 720, 30),
    Model(640, 360, 25, start_kbps=1000.0, max_kbps=2000.0),
    Model(1920, 1080, 20, start_kbps=150.0, min_kbps=80.0),
    Model(1000, 562, 24, max_kbps=900.0),
)


class State(NamedTuple):
    """What a controller shows after a call (`changed` is None before the first call)."""

    changed: bool | None
    kbps: float
    fps: float
    latency: float
    rung: tuple[int, int]
    rung_changes: int


class Run(NamedTuple):
    model: Model
    seed: int
    events: list[Event]


# -- the events ------------------------------------------------------------------------------------
def random_events(seed: int, count: int = EVENTS) -> list[Event]:
    """Acks of a few hundred bytes to ~60 KB in 1-400 ms, with runs of late and of quick ones and of
    equal sizes, ~3% lost chunks; `now` moves on by each ack's time plus a gap, or a timeout."""
    rng = random.Random(seed)
    events: list[Event] = []
    now, mode, left, size = 0.0, "steady", 0, 1000
    while len(events) < count:
        if left == 0:
            mode = rng.choices(["steady", "late", "quick", "same"], [6, 2, 2, 1])[0]
            left, size = rng.randint(3, 45), rng.randint(300, 60_000)
        left -= 1
        if rng.random() < LOST_SHARE:
            now += ACK_TIMEOUT_S
            events.append(("lost", now))
            continue
        if rng.random() < ENCODED_SHARE:  # rule 4's input: 1-80 ms, quick and slow encoders alike
            events.append(("encoded", rng.choice([rng.uniform(0.001, 0.012), rng.uniform(0.012, 0.08)])))
        nbytes, seconds = one_ack(rng, mode, size)
        # Two chunks in flight: some acks come sooner after the last one than their own send->ack,
        # so they were sent before it (the rules' FIFO correction).
        now += seconds * (rng.uniform(0.3, 1.0) if rng.random() < OVERLAP_SHARE else 1.0)
        events.append(("ack", nbytes, seconds, now))
        now += rng.choice([0.0, rng.uniform(0.0, 0.05)])
    return events


def one_ack(rng: random.Random, mode: str, size: int) -> tuple[int, float]:
    """One chunk's bytes and send->ack seconds in `mode`."""
    if mode == "same":
        return size, rng.uniform(0.02, 0.06)
    nbytes = rng.randint(300, 60_000) if rng.random() < 0.1 else rng.randint(300, 15_000)
    if mode == "late":
        return nbytes, rng.uniform(0.12, 0.4)
    if mode == "quick":
        return nbytes, rng.uniform(0.001, 0.01)
    mbit = rng.choice([1.0, 5.0, 20.0])
    seconds = 0.004 + nbytes * 8 / (mbit * 1e6) + rng.uniform(0.0, 0.04)
    return nbytes, min(0.4, seconds)


def all_runs() -> list[Run]:
    return [
        Run(model, seed, random_events(seed * 100 + i)) for seed in SEEDS for i, model in enumerate(MODELS)
    ]


# -- rate.py ---------------------------------------------------------------------------------------
def py_state(rc: RateController, changed: bool | None) -> State:
    rung = (rc.rung.width, rc.rung.height)
    return State(changed, rc.kbps, rc.fps, rc.latency, rung, rc.rung_changes)


def py_states(run: Run) -> list[State]:
    m = run.model
    rc = RateController(m.width, m.height, m.fps, **m.py_options())
    states = [py_state(rc, None)]
    for event in run.events:
        if event[0] == "encoded":
            rc.on_encoded(event[1])
            changed = None
        else:
            changed = rc.on_ack(*event[1:]) if event[0] == "ack" else rc.on_lost(event[1])
        states.append(py_state(rc, changed))
    return states


# -- camera.js in node -----------------------------------------------------------------------------
DRIVER = """
const runs = INPUT.map(({ model: [width, height, fps], options, events }) => {
  const rc = new RateController(width, height, fps, options);
  const state = (changed) =>
    [changed, rc.kbps, rc.fps, rc.latency, [rc.rung.width, rc.rung.height], rc.rungChanges];
  const states = [state(null)];
  for (const [kind, ...args] of events) {
    if (kind === "encoded") {
      rc.onEncoded(...args);
      states.push(state(null));
    } else states.push(state(kind === "ack" ? rc.onAck(...args) : rc.onLost(...args)));
  }
  return states;
});
process.stdout.write(JSON.stringify(runs));
"""


def twin_source() -> str:
    """camera.js from its RATE table to the end of class RateController (the `even` and `ladder`
    helpers lie between them)."""
    js = CAMERA_JS.read_text()
    start = js.find(START_MARKER)
    assert start >= 0, f"camera.js has no {START_MARKER!r}"
    cls = js.find(CLASS_MARKER, start)
    assert cls >= 0, "camera.js has no class RateController after its RATE table"
    end = js.find("\n}\n", cls)
    assert end >= 0, "camera.js: no closing brace at column 0 after class RateController"
    source = js[start : end + 3]
    for needed in ("const even", "function ladder"):
        assert needed in source, f"camera.js: {needed!r} is no longer between RATE and RateController"
    return source


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node not found: install nodejs (sudo apt-get install nodejs, or run scripts/setup)")
    return path


def js_states(source: str, runs: list[Run]) -> list[list[State]]:
    """Every run through the JavaScript RateController in `source`, in one node process."""
    data = [
        {
            "model": [r.model.width, r.model.height, r.model.fps],
            "options": r.model.js_options(),
            "events": r.events,
        }
        for r in runs
    ]
    script = f"{source}\nconst INPUT = {json.dumps(data)};\n{DRIVER}"
    done = subprocess.run(
        [node(), "--input-type=module", "-"], input=script, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"node failed:\n{done.stderr}"
    out = json.loads(done.stdout)
    return [[State(s[0], s[1], s[2], s[3], (s[4][0], s[4][1]), s[5]) for s in states] for states in out]


# -- the comparison --------------------------------------------------------------------------------
def same(py: State, js: State) -> bool:
    close = all(
        math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        for a, b in ((py.kbps, js.kbps), (py.fps, js.fps), (py.latency, js.latency))
    )
    exact = type(py.changed) is type(js.changed) and py.changed == js.changed
    return close and exact and py.rung == js.rung and py.rung_changes == js.rung_changes


def first_mismatch(run: Run, py: list[State], js: list[State]) -> str | None:
    """None when the two agree after every step, else where and how they first differ."""
    if len(py) != len(js):
        return f"{run.model} seed {run.seed}: {len(py)} Python states, {len(js)} JavaScript states"
    for step, (p, j) in enumerate(zip(py, js, strict=True)):
        if not same(p, j):
            event = run.events[step - 1] if step else "the constructor"
            return (
                f"{run.model} seed {run.seed}, step {step - 1} (event {event}):\n"
                f"  rate.py:   {p}\n  camera.js: {j}"
            )
    return None


def mismatches(source: str, runs: list[Run]) -> list[str]:
    found = (first_mismatch(r, py_states(r), js) for r, js in zip(runs, js_states(source, runs), strict=True))
    return [m for m in found if m is not None]


# -- the tests -------------------------------------------------------------------------------------
def test_the_pages_twin_follows_rate_py_step_for_step() -> None:
    runs = all_runs()
    found = mismatches(twin_source(), runs)
    assert not found, f"{len(found)} of {len(runs)} runs differ; the first:\n{found[0]}"


def test_the_random_events_exercise_every_rule() -> None:
    """The runs must go through losses, decreases, increases and rung changes, or parity says little."""
    runs = all_runs()
    states = [py_states(r) for r in runs]
    assert all(any(e[0] == "lost" for e in r.events) for r in runs)
    assert sum(s[-1].rung_changes for s in states) >= len(runs)
    kbps_steps = [b.kbps / a.kbps for s in states for a, b in itertools.pairwise(s)]
    assert any(x > 1.0 for x in kbps_steps) and any(0.5 < x < 1.0 for x in kbps_steps)
    assert any(cpu_capped(r) for r in runs), "rule 4 (the CPU cap) never engaged"


def cpu_capped(run: Run) -> bool:
    """Whether rate.py's CPU cap (rule 4) held the rung down at some step of `run`."""
    m = run.model
    rc = RateController(m.width, m.height, m.fps, **m.py_options())
    for event in run.events:
        if event[0] == "encoded":
            rc.on_encoded(event[1])
        elif event[0] == "ack":
            rc.on_ack(*event[1:])
        if rc._cpu_cap > 0:
            return True
    return False


def test_the_comparison_catches_a_changed_constant() -> None:
    """A twin with INCREASE off by 0.01 must not pass: the parity test cannot pass by comparing nothing."""
    source = twin_source()
    mutated, count = re.subn(
        r"(\bINCREASE: )([0-9.]+)", lambda m: f"{m.group(1)}{float(m.group(2)) + 0.01!r}", source
    )
    assert count == 1 and mutated != source, "camera.js's RATE table has no single INCREASE entry"
    runs = [Run(MODELS[0], SEEDS[0], random_events(SEEDS[0] * 100))]
    found = mismatches(mutated, runs)
    assert found and "step" in found[0], "a twin with another INCREASE went unnoticed"
