"""RateController on a simulated link: chunks cross one FIFO link (a chunk's bytes take
bytes * 8 / bandwidth once the chunks ahead of it have left) and are acked a round trip later; the
sender keeps at most the controller's `window` chunks unacked and never sends faster than its
target fps."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from decart_nb.media import rate
from decart_nb.media.rate import (
    IN_FLIGHT,
    MAX_IN_FLIGHT,
    MIN_BPP,
    RUNG_HOLD_S,
    RateController,
    ladder,
)
from tests import page_bundle
from tests.rate_scenarios import RULES, Model, expected_states, scenarios

RTT_S = 0.004  # the loopback's round trip plus the kernel's handling
KEY_FACTOR = 4.0  # a key frame is this many times a delta frame's size


@dataclass
class Run:
    """What a simulated sender did: (time, kbps, rung, fps) after every ack, its rung changes, and
    each chunk's (sent, acked) times."""

    samples: list[tuple[float, float, tuple[int, int], float]] = field(default_factory=list)
    rung_changes: list[float] = field(default_factory=list)
    chunks: list[tuple[float, float]] = field(default_factory=list)

    def at(self, t: float) -> tuple[float, float, tuple[int, int], float]:
        return [s for s in self.samples if s[0] <= t][-1]


@dataclass
class Link:
    """One FIFO link: when it is free again, and the chunks on it (sent, acked, bytes)."""

    bandwidth: Callable[[float], float]
    rtt: float
    free_at: float = 0.0
    unacked: deque[tuple[float, float, int]] = field(default_factory=deque)

    def send(self, t: float, nbytes: int, extra: float) -> None:
        start = max(t, self.free_at)
        self.free_at = start + nbytes * 8 / self.bandwidth(start)
        last_ack = self.unacked[-1][1] if self.unacked else 0.0
        acked = max(last_ack, self.free_at + self.rtt + extra)  # acks come in order
        self.unacked.append((t, acked, nbytes))


def simulate(
    rc: RateController,
    seconds: float,
    bandwidth: Callable[[float], float],
    rtt: float = RTT_S,
    jitter: float = 0.0,
    seed: int = 1,
    stalls: float = 0.0,
    stall_s: tuple[float, float] = (0.0, 0.040),
) -> Run:
    """Drive `rc` as the sender does: send the newest frame when the window has room and a period
    has passed, of the size the target bitrate gives (bigger when a key frame). With `stalls`, that
    share of the chunks waits `stall_s` (a range) more (a delayed ACK, a busy page)."""
    rng = random.Random(seed)
    run, link, t, last, key = Run(), Link(bandwidth, rtt), 0.0, float("-inf"), True

    def take_acks(until: float) -> None:
        nonlocal key
        while link.unacked and link.unacked[0][1] <= until:
            sent, acked, nbytes = link.unacked.popleft()
            if rc.on_ack(nbytes, acked - sent, acked):
                run.rung_changes.append(acked)
                key = True
            run.samples.append((acked, rc.kbps, (rc.rung.width, rc.rung.height), rc.fps))
            run.chunks.append((sent, acked))

    while t < seconds:
        while not rc.room(len(link.unacked)):
            t = max(t, link.unacked[0][1])
            take_acks(t)
        take_acks(t)
        t = max(t, last + 1 / rc.fps)
        take_acks(t)
        nbytes = rc.kbps * 1000 / 8 / rc.fps * (KEY_FACTOR if key else 1.0)
        nbytes *= 1 + jitter * (rng.random() - 0.5)
        extra = rng.uniform(*stall_s) if rng.random() < stalls else 0.0
        link.send(t, int(nbytes), extra)
        last, key = t, False
    return run


def meets_the_rung_rule(rc: RateController) -> bool:
    """The rung is the largest with bpp >= MIN_BPP (or the smallest): a larger one would not be."""
    i = rc.rungs.index(rc.rung)
    ok_here = rc.bpp(rc.rung) >= MIN_BPP or i == len(rc.rungs) - 1
    larger_fails = i == 0 or rc.bpp(rc.rungs[i - 1]) < MIN_BPP * 1.25
    return ok_here and larger_fails


def test_the_ladder_is_the_models_aspect_in_even_numbers() -> None:
    rungs = ladder(1280, 720)
    sizes = [(r.width, r.height) for r in rungs]
    assert sizes == [(1280, 720), (960, 540), (640, 360), (480, 270), (320, 180)]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder(1280, 704) + ladder(1000, 562))


@pytest.mark.parametrize("mbit", [1.0, 5.0])
def test_a_steady_link_converges_below_its_bandwidth(mbit: float) -> None:
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 12.0, lambda t: mbit * 1e6)
    tail = [s for s in run.samples if s[0] > 8.0]
    kbps = [s[1] for s in tail]
    assert max(kbps) < mbit * 1000, "the target bitrate exceeds the link"
    assert min(kbps) > 0.3 * mbit * 1000, f"the link is left mostly unused: {min(kbps):.0f} kbps"
    assert meets_the_rung_rule(rc), (rc.kbps, rc.rung, rc.fps)
    assert rc.fps == 30, "a link this fast carries the model's fps at the chosen rung"
    assert rc.bpp(rc.rung) >= MIN_BPP


def test_five_megabits_gets_a_larger_rung_than_one() -> None:
    slow, fast = RateController(1280, 720, 30), RateController(1280, 720, 30)
    simulate(slow, 10.0, lambda t: 1e6)
    simulate(fast, 10.0, lambda t: 5e6)
    assert fast.rung.pixels > slow.rung.pixels, (fast.rung, slow.rung)


def test_a_bandwidth_drop_is_followed_within_two_seconds() -> None:
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 14.0, lambda t: 5e6 if t < 10.0 else 1e6)
    before = run.at(9.9)
    assert before[1] > 1000, "the fast link was not used before the drop"
    after = run.at(12.0)
    assert after[1] < 1000, f"2 s after the drop the bitrate is still {after[1]:.0f} kbps"
    assert after[2][0] * after[2][1] < before[2][0] * before[2][1], "the rung did not come down"
    assert meets_the_rung_rule(rc)


def test_the_rung_never_changes_faster_than_the_hold() -> None:
    rc = RateController(1280, 720, 30)
    # A link that swings between 0.7 and 3 Mbit/s every 0.4 s, with chunk sizes jittering by +-50%.
    run = simulate(rc, 20.0, lambda t: 3e6 if int(t / 0.4) % 2 else 0.7e6, jitter=1.0)
    assert len(run.rung_changes) >= 1
    gaps = [b - a for a, b in zip(run.rung_changes, run.rung_changes[1:], strict=False)]
    assert all(gap >= RUNG_HOLD_S for gap in gaps), gaps


def test_a_link_too_slow_for_the_smallest_rung_lowers_the_frame_rate() -> None:
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 10.0, lambda t: 0.1e6)
    held = bool(run.rung_changes) and run.samples[-1][0] - run.rung_changes[-1] < RUNG_HOLD_S
    assert rc.rung in rc.rungs[-2:] and (meets_the_rung_rule(rc) or held), (rc.rung, rc.kbps, rc.fps)
    assert 5 <= rc.fps < 30, rc.fps
    assert rc.kbps < 100


def tail_kbps(run: Run, after: float) -> float:
    """The median target bitrate after `after` seconds."""
    return statistics.median(s[1] for s in run.samples if s[0] > after)


@pytest.mark.parametrize(("mbit", "min_kbps"), [(1.0, 300), (5.0, 1500)])
@pytest.mark.parametrize("rtt", [0.043, 0.100, 0.200])
def test_a_remote_link_keeps_the_frame_rate_and_the_bitrate_through_its_window(
    mbit: float, min_kbps: float, rtt: float
) -> None:
    # 43 ms: a Jupyter server without TCP_NODELAY (every message waits for a delayed ACK); 100 and
    # 200 ms: a remote kernel. Two chunks in flight would cap the frame rate at 2 / (1.25 x rtt):
    # 37, 16 and 8 fps; the window holds the bandwidth-delay product instead.
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 15.0, lambda t: mbit * 1e6, rtt=rtt, jitter=0.6)
    assert rc.latency == pytest.approx(rtt, abs=0.005), "the latency is not told from the transmission"
    assert rc.fps == 30, rc.fps
    assert IN_FLIGHT < rc.window <= MAX_IN_FLIGHT, rc.window
    sent = [s for s, _ in run.chunks if s > 8.0]
    assert len(sent) / (run.chunks[-1][0] - 8.0) > 27, "the sender did not keep the model's frame rate"
    assert tail_kbps(run, 8.0) > min_kbps, "the bitrate went down as if the link were full"
    assert max(s[1] for s in run.samples if s[0] > 8.0) < mbit * 1000
    # Latency never grows: the chunks' send->ack stays the round trip plus about a period.
    times = [acked - sent for sent, acked in run.chunks if sent > 8.0]
    assert statistics.median(times[-30:]) < rtt + 0.05, statistics.median(times[-30:])
    held = run.samples[-1][0] - run.rung_changes[-1] < RUNG_HOLD_S  # the rung may not move yet
    assert meets_the_rung_rule(rc) or held, (rc.rung, rc.kbps, rc.fps)


def test_the_window_is_the_bandwidth_delay_product_in_chunks_within_its_floor_and_ceiling() -> None:
    rc = RateController(1280, 720, 30)
    assert rc.window == IN_FLIGHT  # before any ack
    for i in range(40):  # a 100 ms round trip at 30 fps: 3 chunks a latency, 4 with the one sent
        rc.on_ack(2000, 0.1, 1.0 + i / 30)
    assert rc.window == 6, rc.window  # floor(1.5 * (0.1 * 30 + 1))
    far = RateController(1280, 720, 30)
    for i in range(40):  # 300 ms: 9 chunks a latency, 15 with the margin, past the ceiling
        far.on_ack(2000, 0.3, 1.0 + i / 30)
    assert far.window == MAX_IN_FLIGHT
    assert far.fps == pytest.approx(MAX_IN_FLIGHT / (1.25 * 0.3)), "the ceiling caps the frame rate"
    quick = RateController(1280, 720, 30)
    for i in range(40):  # loopback: the floor
        quick.on_ack(2000, 0.002, 1.0 + i / 30)
    assert quick.window == IN_FLIGHT
    assert not quick.room(IN_FLIGHT) and quick.room(IN_FLIGHT - 1)


def test_a_latency_most_acks_have_is_the_latency_though_some_come_quick() -> None:
    # Measured in Chromium on the shaped 5 Mbit/s link: most acks 40-50 ms, a fifth 6-30 ms.
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 15.0, lambda t: 5e6, rtt=0.005, jitter=0.6, stalls=0.8, stall_s=(0.035, 0.045))
    assert 0.025 <= rc.latency <= 0.050, rc.latency
    assert rc.fps == 30, "two chunks in flight cover a 50 ms latency at 30 fps"
    assert tail_kbps(run, 8.0) > 300, "the latency was read as a full link"


@pytest.mark.parametrize(("mbit", "min_kbps"), [(1.0, 350), (5.0, 1500)])
def test_stalls_of_single_chunks_do_not_take_the_bitrate_down(mbit: float, min_kbps: float) -> None:
    rc = RateController(1280, 720, 30)
    run = simulate(rc, 15.0, lambda t: mbit * 1e6, jitter=0.6, stalls=0.5)
    assert tail_kbps(run, 8.0) > min_kbps, tail_kbps(run, 8.0)
    assert rc.fps == 30


def test_a_lost_chunk_halves_the_bitrate() -> None:
    rc = RateController(1280, 720, 30, start_kbps=2000)
    rc.on_ack(8000, 0.01, now=0.0)
    before = rc.kbps
    rc.on_lost(now=0.5)
    assert rc.kbps == pytest.approx(before / 2)
    assert rc.on_lost(now=3.0), "a halved bitrate past the hold moves to a smaller rung"


def test_rate_py_takes_its_constants_from_the_shared_table() -> None:
    """rate.py and the page's twin (js/src/rate.ts) read one table, rate_rules.json: rate.py's
    constants are its values, and the page imports it rather than keeping numbers of its own."""
    table = json.loads(RULES.read_text(encoding="utf-8"))["constants"]
    names = set(rate.__all__) - {"RateController", "Rung", "ladder"}
    assert set(table) == names, set(table) ^ names
    for name in names:
        want = tuple(table[name]) if name == "LADDER" else table[name]
        assert getattr(rate, name) == want and type(getattr(rate, name)) is type(want), name
    page = (page_bundle.JS / "src" / "rate.ts").read_text(encoding="utf-8")
    assert 'from "../../decart_nb/media/rate_rules.json"' in page
    assert not re.search(r"^\s+[A-Z_]+: [\d.]+,", page, re.M), "rate.ts has constants of its own"


@pytest.mark.parametrize("index", range(len(scenarios())))
def test_rate_py_gives_the_shared_scenarios_outputs(index: int) -> None:
    """Each stored scenario (js/test/rate.test.ts runs them against the page's twin) through rate.py:
    after every step the same outputs as stored, kbps, fps and latency to within 1e-9."""
    stored = json.loads(RULES.read_text(encoding="utf-8"))["scenarios"][index]
    m = stored["model"]
    options = {"start_kbps": m.get("startKbps"), "min_kbps": m.get("minKbps"), "max_kbps": m.get("maxKbps")}
    model = Model(m["width"], m["height"], m["fps"], **options)
    got = expected_states(model, [tuple(e) for e in stored["events"]])
    assert len(got) == len(stored["expect"]) == len(stored["events"]) + 1
    for step, (mine, want) in enumerate(zip(got, stored["expect"], strict=True)):
        floats = zip(mine[1:4], want[1:4], strict=True)
        same = all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in floats)
        assert same and mine[0] == want[0] and mine[4:] == want[4:], (stored["name"], step, mine, want)


def steady_acks(rc: RateController, start: float, seconds: float, encode_ms_at_720p: float | None) -> float:
    """Quick acks at the target fps on a wide link; each frame's encode reported as taking its
    rung's share of `encode_ms_at_720p` (an encoder's time goes with the pixels)."""
    t = start
    while t < start + seconds:
        if encode_ms_at_720p is not None:
            rc.on_encoded(encode_ms_at_720p / 1000 * rc.rung.pixels / (1280 * 720))
        rc.on_ack(int(rc.kbps * 125 / rc.fps), 0.005, t)
        t += 1 / rc.fps
    return t


def test_slow_encodes_step_the_rung_down_and_quick_ones_let_it_back_up() -> None:
    rc = RateController(1280, 720, 30, start_kbps=5000)
    t = steady_acks(rc, 0.0, 3.0, None)
    assert rc.rung == rc.rungs[0], "a wide link and no encode times: the full size"
    # 25 ms at 1280x720 is over half a 33 ms period; 14 ms at 960x540 is under it, and 25 ms is
    # too slow to step back up (under ENCODE_SHARE / UP_MARGIN of it, 13.3 ms, is the bar).
    t = steady_acks(rc, t, 8.0, 25.0)
    assert rc.rung == rc.rungs[1], rc.rung
    assert rc.bpp(rc.rungs[0]) >= MIN_BPP * 1.25, "the bits alone would allow the full size"
    # The machine frees up: 12 ms at 1280x720.
    steady_acks(rc, t, 4.0, 12.0)
    assert rc.rung == rc.rungs[0], rc.rung


def test_a_few_slow_encodes_do_not_move_the_rung() -> None:
    rc = RateController(1280, 720, 30, start_kbps=5000)
    t = steady_acks(rc, 0.0, 3.0, 4.0)
    for _ in range(4):  # a hiccup: under half of ENCODE_FRAMES, so the median stays quick
        rc.on_encoded(0.2)
    steady_acks(rc, t, 3.0, None)
    assert rc.rung == rc.rungs[0] and rc.rung_changes == 0, rc.rung


def test_a_latency_risen_over_its_least_reads_as_a_queue() -> None:
    # Other traffic (Jupyter's own messages, the other direction) queues our chunks on a shared
    # link: that shows as latency whatever a chunk's size, not as its own time.
    rc = RateController(1280, 720, 30)
    t, kbps = 0.0, []
    while t < 10.0:
        queue = 0.0 if t < 6.0 else 0.08
        nbytes = int(rc.kbps * 125 / rc.fps)
        rc.on_ack(nbytes, 0.01 + queue + nbytes * 8 / 5e6, t)
        kbps.append((t, rc.kbps))
        t += 1 / rc.fps
    before = [k for s, k in kbps if s < 6.0][-1]
    queued = [k for s, k in kbps if s >= 7.0]
    assert queued[-1] <= before * 0.85**2, (before, queued[-1])
    assert all(b <= a for a, b in itertools.pairwise(queued)), "an increase while queued"
    cuts = sum(b < a for a, b in itertools.pairwise(queued))
    assert cuts <= 4, f"{cuts} cuts in 3 s: at most one a second"


def test_a_stall_at_start_does_not_make_a_long_round_trip_read_as_a_queue() -> None:
    # The page's first chunks wait behind the widget's first display (~300 KB at 1 Mbit/s): a few
    # acks of 2.5 s steepen the latency fit's slope until the latency reads 0. Were 0 the queue
    # test's base, the 100 ms round trip after it would read as a queue for BASE_S (10 s) and hold
    # the bitrate at its minimum (measured: 50 kbps, 7 fps, 100 ms from JupyterLab at 1 Mbit/s).
    # The acks after it come while the next are in flight, so the FIFO correction shortens them with
    # that latency of 0 too: only the acks' times as measured keep the base honest.
    rng = random.Random(2)
    rc = RateController(1280, 720, 30)
    now = 0.0
    for _ in range(10):
        now += 0.3
        rc.on_ack(rng.randint(6000, 10000), 2.5, now)
    start = now
    while now < start + 8.0:
        nbytes = max(300, int(rc.kbps * 125 / rc.fps * rng.uniform(0.5, 1.5)))
        now += 1 / rc.fps
        rc.on_ack(nbytes, 0.1 + nbytes * 8 / 1e6 + rng.uniform(0.0, 0.01), now)
    assert rc.kbps > 300, rc.kbps
    assert rc.fps == 30


def test_a_stalls_few_huge_acks_do_not_tilt_the_latency_fit() -> None:
    # The last acks of a stall (the widget's first display at 1 Mbit/s) come in a burst at 2.5 s
    # whatever their size, a fifth of the fit's acks: a least-squares line through them is so steep
    # that every later ack's residual is negative and the latency reads 0 (a 100 ms round trip then
    # reads as a full link). The median of the pairwise slopes stays the link's.
    rng = random.Random(3)
    rc = RateController(1280, 720, 60)
    now = 0.0
    for _ in range(8):
        now += 0.01
        rc.on_ack(rng.randint(6000, 10000), 2.5, now)
    for _ in range(30):
        nbytes = rng.randint(1000, 3000)
        now += 1 / 60
        rc.on_ack(nbytes, 0.1 + nbytes * 8 / 1e6, now)
    assert 0.09 <= rc.latency <= 0.13, rc.latency


def test_a_stalls_acks_leave_the_latency_fit_once_it_is_over() -> None:
    # After a stall the sender is slow (its latency read seconds): at 5 fps, the stall's ten acks
    # would stay most of a 40-ack fit for 6 s and hold the latency at 2.5 s, the frame rate at its
    # minimum. The fit holds the last FIT_S of acks: a second after the stall it is the link's.
    rng = random.Random(4)
    rc = RateController(1280, 720, 30)
    now = 0.0
    for _ in range(10):
        now += 0.05
        rc.on_ack(rng.randint(1000, 3000), 2.5, now)
    for _ in range(8):
        nbytes = rng.randint(1000, 3000)
        now += 0.2
        rc.on_ack(nbytes, 0.1 + nbytes * 8 / 1e6, now)
    assert 0.09 <= rc.latency <= 0.13, rc.latency


def test_an_encoder_using_less_than_its_bitrate_does_not_let_it_climb() -> None:
    # A plain picture: the encoder makes 2000-byte chunks whatever the target. On a fast link every
    # ack is quick, but a target far past what is used would make the first detailed frame, key
    # frame or larger rung burst at it: kbps rises only while the chunks use USED_SHARE of it.
    rc = RateController(1280, 720, 30)
    now = 0.0
    for _ in range(300):
        now += 1 / 30
        rc.on_ack(2000, 0.01, now)
    used = 2000 * 8 * rc.fps / 1000
    assert rc.kbps <= used / rate.USED_SHARE * rate.INCREASE, (rc.kbps, used)
    assert rc.kbps > 400, "it still rose while the chunks used USED_SHARE of it"


def test_a_stall_that_times_out_the_whole_window_halves_the_bitrate_once() -> None:
    # Ten chunks in flight when the link stalls for seconds time out one after the other: one
    # stall, one halving (ten would take 400 kbps to the minimum).
    rc = RateController(1280, 720, 30)
    for i in range(10):
        rc.on_lost(5.0 + i * 0.05)
    assert rc.kbps == pytest.approx(200.0)
    rc.on_lost(6.5)  # a loss after the hold is news
    assert rc.kbps == pytest.approx(100.0)
