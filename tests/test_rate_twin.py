"""The page's RateController (js/src/rate.ts) against rate.py's, step for step: the same seeded
random acks and losses go to both (the TypeScript one bundled and run in node), and after every
call the returned bool, the rung, its change count and the window must be equal and kbps, fps and
latency equal to within 1e-9 (relative). Both read their constants from one table, rate_rules.json; its stored
scenarios are checked in tests/test_rate.py (rate.py) and js/test/rate.test.ts (rate.ts)."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from typing import NamedTuple

from decart_nb.media.rate import RateController
from tests import page_bundle
from tests.rate_scenarios import MODELS, Event, Model, random_events

EVENTS = 600
SEEDS = (1, 2, 3)
REL_TOL = 1e-9
ABS_TOL = 1e-12  # a latency of 0 in one and 1e-18 in the other is no mismatch


class State(NamedTuple):
    """What a controller shows after a call (`changed` is None before the first call)."""

    changed: bool | None
    kbps: float
    fps: float
    latency: float
    rung: tuple[int, int]
    rung_changes: int
    window: int


class Run(NamedTuple):
    model: Model
    seed: int
    events: list[Event]


def all_runs() -> list[Run]:
    return [
        Run(model, seed, random_events(seed * 100 + i, EVENTS))
        for seed in SEEDS
        for i, model in enumerate(MODELS)
    ]


# -- rate.py ---------------------------------------------------------------------------------------
def py_state(rc: RateController, changed: bool | None) -> State:
    rung = (rc.rung.width, rc.rung.height)
    return State(changed, rc.kbps, rc.fps, rc.latency, rung, rc.rung_changes, rc.window)


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


# -- rate.ts in node -------------------------------------------------------------------------------
DRIVER = """
const runs = INPUT.map(({ model: [width, height, fps], options, events }) => {
  const rc = new RateController(width, height, fps, options);
  const state = (changed) =>
    [changed, rc.kbps, rc.fps, rc.latency, [rc.rung.width, rc.rung.height], rc.rungChanges, rc.window];
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
    """The page's parts, bundled, RateController among them (on globalThis)."""
    return page_bundle.internals().read_text(encoding="utf-8")


def js_states(source: str, runs: list[Run]) -> list[list[State]]:
    """Every run through the TypeScript RateController in `source`, in one node process."""
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
        [page_bundle.node(), "--input-type=module", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"node failed:\n{done.stderr}"
    out = json.loads(done.stdout)
    return [[State(s[0], s[1], s[2], s[3], (s[4][0], s[4][1]), s[5], s[6]) for s in states] for states in out]


# -- the comparison --------------------------------------------------------------------------------
def same(py: State, js: State) -> bool:
    close = all(
        math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        for a, b in ((py.kbps, js.kbps), (py.fps, js.fps), (py.latency, js.latency))
    )
    exact = type(py.changed) is type(js.changed) and py.changed == js.changed
    same_ints = (py.rung, py.rung_changes, py.window) == (js.rung, js.rung_changes, js.window)
    return close and exact and same_ints


def first_mismatch(run: Run, py: list[State], js: list[State]) -> str | None:
    """None when the two agree after every step, else where and how they first differ."""
    if len(py) != len(js):
        return f"{run.model} seed {run.seed}: {len(py)} Python states, {len(js)} JavaScript states"
    for step, (p, j) in enumerate(zip(py, js, strict=True)):
        if not same(p, j):
            event = run.events[step - 1] if step else "the constructor"
            return (
                f"{run.model} seed {run.seed}, step {step - 1} (event {event}):\n"
                f"  rate.py: {p}\n  rate.ts: {j}"
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
    """A twin with INCREASE off by 0.01 must not pass: the parity test cannot pass by comparing nothing
    (the bundle inlines the table: the mutation changes the page's side only)."""
    source = twin_source()
    mutated, count = re.subn(
        r"(\bINCREASE: )([0-9.]+)", lambda m: f"{m.group(1)}{float(m.group(2)) + 0.01!r}", source
    )
    assert count == 1 and mutated != source, "the bundled rules have no single INCREASE entry"
    runs = [Run(MODELS[0], SEEDS[0], random_events(SEEDS[0] * 100, EVENTS))]
    found = mismatches(mutated, runs)
    assert found and "step" in found[0], "a twin with another INCREASE went unnoticed"
