"""The rate controller's seeded scenarios, shared by both languages: inputs (acks, losses, encode
times) and the outputs rate.py gives after every step, stored in decart_nb/media/rate_rules.json
beside the rules' constants. tests/test_rate.py runs them against rate.py, js/test/rate.test.ts
against the page's twin (js/src/rate.ts); tests/test_rate_twin.py draws fresh random events the
same way and runs both controllers on them step for step.

After a change of the rules (a constant, or rate.py and rate.ts alike), rewrite the expectations:

    .venv/bin/python -m tests.rate_scenarios
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decart_nb.media import rate
from decart_nb.media.rate import RateController

__all__ = [
    "MODELS",
    "RULES",
    "Event",
    "Model",
    "State",
    "apply",
    "expected_states",
    "random_events",
    "scenarios",
    "state",
]

RULES = Path(rate.__file__).parent / "rate_rules.json"
LOST_SHARE = 0.03
ENCODED_SHARE = 0.6  # of the acks, those a frame's encode time comes before
OVERLAP_SHARE = 0.3  # of the acks, those sent before the previous ack came
ACK_TIMEOUT_S = 3.0  # what a sender waits before it calls a chunk lost
DIGITS = 6  # the stored events' seconds are rounded to this (the expectations are for the rounded ones)
SCENARIO_EVENTS = 150

Event = tuple[Any, ...]  # ("ack", nbytes, seconds, now), ("lost", now) or ("encoded", seconds)
# After a call: [changed (None before the first call and after on_encoded), kbps, fps, latency,
# rung width, rung height, rung changes, window].
State = list[Any]


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

    def as_json(self) -> dict[str, float]:
        return {"width": self.width, "height": self.height, "fps": self.fps, **self.js_options()}


MODELS = (
    Model(1280, 720, 30),
    Model(640, 360, 25, start_kbps=1000.0, max_kbps=2000.0),
    Model(1920, 1080, 20, start_kbps=150.0, min_kbps=80.0),
    Model(1000, 562, 24, max_kbps=900.0),
)


# -- events ----------------------------------------------------------------------------------------
def random_events(seed: int, count: int) -> list[Event]:
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


def narrowing_link(fps: float, count: int) -> list[Event]:
    """A sender at the controller's pace on a link of 20, then 5, then 1 Mbit/s (30 ms round trip),
    its encoder slow at first: the bitrate grows, then falls, and the rung follows."""
    rc = RateController(1280, 720, fps)
    events: list[Event] = []
    now = 0.0
    while len(events) < count:
        mbit = 20.0 if len(events) < count // 3 else 5.0 if len(events) < 2 * count // 3 else 1.0
        if len(events) % 3 == 0:
            events.append(("encoded", 0.03 if len(events) < count // 2 else 0.004))
            rc.on_encoded(events[-1][1])
        nbytes = max(300, int(rc.kbps * 125 / rc.fps))
        seconds = 0.03 + nbytes * 8 / (mbit * 1e6)
        now += max(seconds, 1 / rc.fps)
        events.append(("ack", nbytes, seconds, now))
        rc.on_ack(nbytes, seconds, now)
    return events


def remote_link(fps: float, count: int, rtt: float, mbit: float) -> list[Event]:
    """A sender at the controller's pace, as many chunks in flight as its window allows, on a FIFO
    `mbit` link `rtt` away (a remote kernel): the window grows to the bandwidth-delay product."""
    rc = RateController(1280, 720, fps)
    events: list[Event] = []
    now, free_at = 0.0, 0.0
    inflight: list[tuple[float, float, int]] = []  # (sent, acked, bytes), in order
    while len(events) < count:
        if len(inflight) >= rc.window:
            now = max(now, inflight[0][1])
        while inflight and inflight[0][1] <= now:
            sent, acked, nbytes = inflight.pop(0)
            events.append(("ack", nbytes, acked - sent, acked))
            rc.on_ack(nbytes, acked - sent, acked)
        nbytes = max(300, int(rc.kbps * 125 / rc.fps))
        free_at = max(now, free_at) + nbytes * 8 / (mbit * 1e6)
        acked = max(free_at + rtt, inflight[-1][1] if inflight else 0.0)
        inflight.append((now, acked, nbytes))
        now += 1 / rc.fps
    return events[:count]


def rounded(events: list[Event]) -> list[Event]:
    """`events` as stored: seconds and times to DIGITS places."""
    return [tuple(round(x, DIGITS) if isinstance(x, float) else x for x in e) for e in events]


# -- rate.py's outputs -----------------------------------------------------------------------------
def state(rc: RateController, changed: bool | None) -> State:
    return [changed, rc.kbps, rc.fps, rc.latency, rc.rung.width, rc.rung.height, rc.rung_changes, rc.window]


def apply(rc: RateController, event: Event) -> bool | None:
    """One event to `rc`: what on_ack / on_lost returned (None for an encode time)."""
    if event[0] == "encoded":
        rc.on_encoded(event[1])
        return None
    if event[0] == "ack":
        return rc.on_ack(event[1], event[2], event[3])
    return rc.on_lost(event[1])


def expected_states(model: Model, events: list[Event]) -> list[State]:
    rc = RateController(model.width, model.height, model.fps, **model.py_options())
    return [state(rc, None)] + [state(rc, apply(rc, e)) for e in events]


def scenarios() -> list[tuple[str, Model, list[Event]]]:
    """The stored scenarios: each model with its seeded random events, and a narrowing link."""
    found = [
        (
            f"random acks and losses, seed {100 * (i + 1) + i}",
            model,
            rounded(random_events(100 * (i + 1) + i, SCENARIO_EVENTS)),
        )
        for i, model in enumerate(MODELS)
    ]
    found.append(("a link narrowing from 20 to 1 Mbit/s", MODELS[0], rounded(narrowing_link(30, 240))))
    found.append(
        ("a 5 Mbit/s link 100 ms away: the window", MODELS[0], rounded(remote_link(30, 200, 0.1, 5.0)))
    )
    found.append(
        ("a 1 Mbit/s link 200 ms away: the window", MODELS[0], rounded(remote_link(30, 200, 0.2, 1.0)))
    )
    return found


# -- the file --------------------------------------------------------------------------------------
def scenarios_json() -> str:
    """The "scenarios" list as JSON text: one event or state a line, so a diff says what moved."""
    parts = []
    for name, model, events in scenarios():
        states = expected_states(model, events)
        lines = ",\n        ".join(json.dumps(list(e)) for e in events)
        expect = ",\n        ".join(json.dumps(s) for s in states)
        parts.append(
            f'    {{\n      "name": {json.dumps(name)},\n      "model": {json.dumps(model.as_json())},\n'
            f'      "events": [\n        {lines}\n      ],\n'
            f'      "expect": [\n        {expect}\n      ]\n    }}'
        )
    return "[\n" + ",\n".join(parts) + "\n  ]"


def write() -> None:
    text = RULES.read_text(encoding="utf-8")
    head = text[: text.index('"scenarios": [')]
    RULES.write_text(head + '"scenarios": ' + scenarios_json() + "\n}\n", encoding="utf-8")
    json.loads(RULES.read_text(encoding="utf-8"))  # still JSON


if __name__ == "__main__":
    write()
