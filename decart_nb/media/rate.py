"""Rate control for one direction of the codec transport (VP8 chunks over the widget's comm).

The SENDER of each direction runs one `RateController`: the kernel for the output (this class),
the page for its camera (a TypeScript twin, js/src/rate.ts, that follows the same rules and order
of steps, so both ends behave alike). The constants live in one table both read, rate_rules.json
beside this module, with seeded scenarios both are tested against. Pure arithmetic once that
table is read at import: no I/O, no clock (the caller passes `now`, in seconds).

The receiver acks each chunk as soon as it has decoded it (a receiver too busy to decode is a slow
link), and the sender takes, encodes and sends the next frame only while fewer than `window`
chunks are unacked. So the time from send to ack (`seconds`) is what the far end needs for one
chunk (its bytes, a round trip, the decode, and the chunks in flight ahead of it). The window is
the link's bandwidth-delay product in chunks (rule 5): a sender that may have only two chunks
unacked waits a whole round trip for every other frame, which caps the frame rate at
2 / (1.25 x latency) whatever the bandwidth (15 fps at a 100 ms round trip); a window that holds
what the sending rate puts on the link in one latency keeps the frames coming at the model's
rate. The queue stays bounded: the window holds only what the rate sends in a latency and a
period (plus WINDOW_FACTOR's margin), the bitrate keeps a chunk's own transmission under FULL of
its period (rule 1), and the sender holds no frame (it encodes only what it can send).

Outputs (read them after every call):
- `kbps`: the encoder's target bitrate, within [min_kbps, max_kbps].
- `fps`: the target frame rate (the sender never sends faster), <= the model's fps.
- `rung`: the resolution to encode at, one of `ladder(width, height)`: full, 3/4, 1/2, 3/8, 1/4 of
  the model's width and height, each rounded down to an even number. The receiver scales whatever
  it gets to the model's size (kernel) or the display's (page).

Rules, applied in this order on every ack (`on_ack(nbytes, seconds, now)`):
The chunk's own time first: a chunk sent before the previous ack came (`now - seconds` before the
previous ack's `now`) may have waited on the link behind the one ahead of it, which left the link
at about (previous ack - latency). On a FIFO link the chunk's time alone is then exactly
`seconds = min(seconds, now - previous_ack + max(latency, quickest))` (with the latency as it stood
before this ack, and `quickest` the least send->ack as measured of the fit's acks: a latency read
too low would shorten the acks the next fit is made of, and so on down to 0); that is what the rules
below see, so a wait behind our own chunk is not read as latency and a link that is full shows as
chunks that take longer than a period.
0. Latency: the part of send->ack that does not depend on the chunk's size (the round trip, and
   what the path adds to every message: a Jupyter server without TCP_NODELAY holds a message up to
   ~40 ms for the browser's delayed ACK). The fit holds the acks of the last FIT_S (1 s), at most
   FIT_ACKS (40), at least FIT_MIN_ACKS (5) however old: a stall's slow acks (the widget's first
   display, ~300 KB at 1 Mbit/s) leave it a second after it, rather than hold the latency at
   seconds (and the frame rate at its minimum) for 40 acks at a few fps. Its `slope` of seconds
   over nbytes is the median of the slopes between every two acks of different sizes, `max(0,
   ...)` (0 when all sizes are equal): a least-squares line through a burst of a stall's acks
   is so steep that every later ack's residual is negative and the latency reads 0. Then
   `latency = max(0, sorted(residuals)[int(LATENCY_QUANTILE * (n - 1))])` with
   `residuals = seconds_i - slope * nbytes_i` (LATENCY_QUANTILE 0.75: the upper quartile, not the
   minimum, since on a Jupyter websocket a few acks come quick while most wait ~40 ms; erring high
   costs a little frame rate, erring low reads the latency as a full link).
5. Window (computed here, after rule 0, with the fps as it stood before this ack): the chunks the
   sending rate puts on the link in a latency and a period, with a margin,
   `window = min(MAX_IN_FLIGHT, max(IN_FLIGHT, floor(WINDOW_FACTOR * (latency * fps + 1))))`
   (IN_FLIGHT 2, MAX_IN_FLIGHT 10, WINDOW_FACTOR 1.5). In bytes: the target bitrate times
   (latency + period), times the factor, over a chunk's average size (kbps / fps): the
   bandwidth-delay product at the rate we send, plus the chunk on the wire. A lost chunk (no
   sample) leaves it as it is.
1. Bitrate, by the delivery time against the time a chunk has (`period = 1 / fps`, before rule 2;
   `budget = min(window * period, latency + period)`: the window must be free again when the
   frame `window` periods on is due, and the chunk's own transmission must fit in one period or
   the link falls behind the frames):
   LATE_ACKS (2) chunks in a row with `seconds - latency > FULL * (budget - latency)` -> `kbps *=
   DECREASE` (FULL 0.75, DECREASE 0.85: the link is full or queueing, and a key frame or the other
   direction's traffic would not fit; one late chunk alone is a stall, not a full link);
   else `seconds - latency < HEADROOM * (budget - latency)` (0.5) -> `kbps *= INCREASE` (1.05:
   the chunk's own transmission took well under the time the budget leaves it), but only while the
   encoder uses the bitrate it has: the median of the last USED_ACKS (10) chunks at least
   USED_SHARE (0.75) of a chunk at the target, `kbps / fps` (an encoder making less, a plain
   picture, would let the target climb far past the link, measured: 4.8 Mbit/s on a 1 Mbit/s link,
   and the first detailed frame, key frame or larger rung would burst at it);
   else, when the latency is over QUEUE_S (50 ms) above its least of the last BASE_S (10 s; each
   latency taken no lower than the quickest send->ack, as measured, of the acks it was fitted to)
   (other traffic on the link, Jupyter's own messages or the other direction, queues our chunks:
   that shows as latency, not as a chunk's own time), `kbps *= DECREASE` at most once every
   QUEUE_CUT_EVERY_S (1 s), and never an increase;
   otherwise kbps stays. Then kbps is clamped to [min_kbps, max_kbps]. On a steady link a chunk's
   transmission settles between half and FULL of what the budget leaves it (the bitrate near
   0.5-0.75 of the link), so the larger key frames and the other direction's traffic still fit.
2. Frame rate: the model's fps, but no more than `window / (LATENCY_FACTOR * latency)` (1.25:
   the window's round trips leave each chunk's transmission some of its period; without this a
   latency longer than the window would read as a full link and take the bitrate to its minimum;
   the window grows with `latency * fps`, so this binds only at MAX_IN_FLIGHT: 32 fps at 250 ms),
   and no more than `kbps * 1000 / (MIN_BPP * smallest.pixels)` (even the smallest rung gets
   MIN_BPP bits per pixel per frame: fewer, better frames rather than mush); never below MIN_FPS.
3. Rung: the largest rung whose bits per pixel per frame, `kbps * 1000 / (pixels * fps)`, is
   >= MIN_BPP (0.1); the smallest rung when none is. A step UP needs a margin, bpp >= MIN_BPP *
   UP_MARGIN (1.25) at the larger rung, so a bitrate at a boundary does not flip between two rungs.
   The rung changes at most once every RUNG_HOLD_S (2 s), counted from the last change, or before
   any change from the first ack (which may itself change the starting rung). `on_ack` returns
   True when the rung changed: the sender then makes the next frame a key frame (its encoder
   restarts at the new size).
4. CPU: the rung is no larger than the sender's encoder keeps up with. The sender reports each
   frame's encode time, wall clock, with `on_encoded(seconds)` (a machine busy with decoding,
   drawing or the model counts: that is the point). When the rung may change (rule 3's hold), and
   the last ENCODE_FRAMES (10) encodes at the current rung have a median over ENCODE_SHARE (0.5)
   of the period, the rung steps one down (the "CPU cap"; rule 3 may go lower, not higher); once
   the median scaled by the next larger rung's pixels stays under ENCODE_SHARE / UP_MARGIN of the
   period, the cap steps one up. Encodes at an earlier rung are forgotten on a change. A sender
   that never calls `on_encoded` gets rule 3 alone (the realtime encoders take a few ms a frame;
   a camera page on a 2-core machine busy with the kernel took 40 ms at 1280x720).

A chunk whose ack never comes (the sender waited timeouts.ACK_TIMEOUT_S): `on_lost(now)` halves
kbps (LOST_DECREASE) unless it already did in the last LOST_HOLD_S (1 s: in a stall the chunks in
flight with the lost one time out one after the other; one stall, one halving), then applies rules
2 and 3 (it adds no sample to rule 0), and returns True on a rung change as `on_ack` does. The
sender sends a key frame after a lost chunk anyway: the lost one broke the chain.

Starting point: `start_kbps` (START_KBPS, 400) at the model's fps, with rules 2 and 3 applied.
`max_kbps` defaults to MAX_BPP (0.2) bits per pixel per frame at the full size and the model's fps
(5,530 kbps for 1280x720 at 30 fps): more buys little quality for a lot of bandwidth.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_S",
    "DECREASE",
    "ENCODE_FRAMES",
    "ENCODE_SHARE",
    "FIT_ACKS",
    "FIT_MIN_ACKS",
    "FIT_S",
    "FULL",
    "HEADROOM",
    "INCREASE",
    "IN_FLIGHT",
    "LADDER",
    "LATENCY_FACTOR",
    "LATENCY_QUANTILE",
    "LATE_ACKS",
    "LOST_DECREASE",
    "LOST_HOLD_S",
    "MAX_BPP",
    "MAX_IN_FLIGHT",
    "MIN_BPP",
    "MIN_FPS",
    "MIN_KBPS",
    "QUEUE_CUT_EVERY_S",
    "QUEUE_S",
    "RUNG_HOLD_S",
    "START_KBPS",
    "UP_MARGIN",
    "USED_ACKS",
    "USED_SHARE",
    "WINDOW_FACTOR",
    "RateController",
    "Rung",
    "ladder",
]

# The rules' numbers, shared with the page's twin (js/src/rate.ts): rate_rules.json beside this file
# says what each means and holds the scenarios both are tested against.
_RULES: dict[str, float | int | list[float]] = json.loads(
    (Path(__file__).parent / "rate_rules.json").read_text(encoding="utf-8")
)["constants"]


def _number(name: str) -> float:
    value = _RULES[name]
    if not isinstance(value, float):
        raise TypeError(f"rate_rules.json: {name} must be a number with a decimal point, not {value!r}")
    return value


def _count(name: str) -> int:
    value = _RULES[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"rate_rules.json: {name} must be a whole number, not {value!r}")
    return value


def _ladder() -> tuple[float, ...]:
    value = _RULES["LADDER"]
    if not isinstance(value, list) or not value:
        raise TypeError(f"rate_rules.json: LADDER must be a list of fractions, not {value!r}")
    return tuple(float(f) for f in value)


LADDER = _ladder()  # fractions of the model's width and height, largest first
IN_FLIGHT = _count("IN_FLIGHT")  # the window's floor: chunks a sender may always have unacked
MAX_IN_FLIGHT = _count("MAX_IN_FLIGHT")  # the window's ceiling
WINDOW_FACTOR = _number("WINDOW_FACTOR")  # the window's margin over the bandwidth-delay product
DECREASE = _number("DECREASE")
INCREASE = _number("INCREASE")
LOST_DECREASE = _number("LOST_DECREASE")
HEADROOM = _number("HEADROOM")
FULL = _number("FULL")
QUEUE_S = _number("QUEUE_S")
BASE_S = _number("BASE_S")
QUEUE_CUT_EVERY_S = _number("QUEUE_CUT_EVERY_S")
FIT_ACKS = _count("FIT_ACKS")
FIT_S = _number("FIT_S")  # rule 0 fits the acks of this last span (a stall's acks leave it soon)
FIT_MIN_ACKS = _count("FIT_MIN_ACKS")  # however old, the fit keeps this many
LATE_ACKS = _count("LATE_ACKS")
LATENCY_FACTOR = _number("LATENCY_FACTOR")
LATENCY_QUANTILE = _number("LATENCY_QUANTILE")
MIN_BPP = _number("MIN_BPP")
UP_MARGIN = _number("UP_MARGIN")
MAX_BPP = _number("MAX_BPP")
RUNG_HOLD_S = _number("RUNG_HOLD_S")
ENCODE_FRAMES = _count("ENCODE_FRAMES")
ENCODE_SHARE = _number("ENCODE_SHARE")
MIN_FPS = _number("MIN_FPS")
MIN_KBPS = _number("MIN_KBPS")
START_KBPS = _number("START_KBPS")
LOST_HOLD_S = _number("LOST_HOLD_S")  # a loss this soon after the last halving does not halve
USED_ACKS = _count("USED_ACKS")  # rule 1: the chunks whose median size says what the encoder uses
USED_SHARE = _number("USED_SHARE")  # of a chunk at the target, the least that median lets kbps rise


@dataclass(frozen=True)
class Rung:
    """One resolution of the ladder."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def ladder(width: int, height: int) -> tuple[Rung, ...]:
    """The model's size and its fractions (LADDER), even numbers, largest first."""
    return tuple(Rung(_even(width * f), _even(height * f)) for f in LADDER)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _median_slope(acks: list[tuple[int, float]]) -> float:
    """Rule 0's slope: the median of the slopes between every two acks of different sizes (0 when
    all sizes are equal; the lower middle one of an even count)."""
    slopes = sorted(
        (t2 - t1) / (b2 - b1) for i, (b1, t1) in enumerate(acks) for b2, t2 in acks[i + 1 :] if b2 != b1
    )
    return slopes[(len(slopes) - 1) // 2] if slopes else 0.0


class RateController:
    """Target bitrate, frame rate and resolution of one sender (see the module's docstring)."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        start_kbps: float = START_KBPS,
        min_kbps: float = MIN_KBPS,
        max_kbps: float | None = None,
    ) -> None:
        self.rungs = ladder(width, height)
        self.model_fps = float(fps)
        self.min_kbps = min_kbps
        self.max_kbps = max_kbps if max_kbps is not None else MAX_BPP * width * height * fps / 1000.0
        self.kbps = self._clamp(start_kbps)
        self.latency = 0.0
        self.window = IN_FLIGHT  # rule 5: chunks the sender may have unacked
        self._acks: deque[tuple[int, float]] = deque(maxlen=FIT_ACKS)
        self._raw: deque[float] = deque(maxlen=FIT_ACKS)  # the same acks' send->ack, uncorrected
        self._ack_times: deque[float] = deque(maxlen=FIT_ACKS)  # and their `now`
        self._last_ack_at: float | None = None
        self._latencies: deque[tuple[float, float]] = deque()  # (now, latency) of the last BASE_S
        self._queue_cut_at = float("-inf")
        self._lost_at = float("-inf")  # the last halving for a lost chunk
        self._encodes: deque[float] = deque(maxlen=ENCODE_FRAMES)  # at the current rung
        self._cpu_cap = 0  # rule 4: the largest rung's index the encoder keeps up with
        self.fps = self._target_fps()
        self.rung = self.rungs[self._best_rung(len(self.rungs) - 1)]
        self._rung_since: float | None = None  # None: the first ack may move the rung at once
        self.rung_changes = 0

    # -- inputs --------------------------------------------------------------------------------------
    def on_ack(self, nbytes: int, seconds: float, now: float) -> bool:
        """A chunk of `nbytes` took `seconds` from send to ack; True when the rung changed."""
        self._raw.append(seconds)  # as measured, before the correction below
        if self._last_ack_at is not None and now - seconds < self._last_ack_at:
            # its time alone; the latency no lower than the quickest ack as measured, or a latency
            # read too low would shorten the acks the next fit is made of, and so on down to 0
            seconds = min(seconds, now - self._last_ack_at + max(self.latency, min(self._raw)))
        self._last_ack_at = now
        self._acks.append((nbytes, seconds))
        self._ack_times.append(now)
        while len(self._ack_times) > FIT_MIN_ACKS and self._ack_times[0] < now - FIT_S:
            for kept in (self._ack_times, self._acks, self._raw):
                kept.popleft()
        self.latency = self._fit_latency()
        self.window = self._window()
        queued = self._queued(now)
        period = 1.0 / self.fps
        budget = min(self.window * period, self.latency + period)
        recent = list(self._acks)[-LATE_ACKS:]
        if len(recent) == LATE_ACKS and all(
            t - self.latency > FULL * (budget - self.latency) for _, t in recent
        ):
            self.kbps = self._clamp(self.kbps * DECREASE)
        elif queued:
            if now - self._queue_cut_at >= QUEUE_CUT_EVERY_S:
                self._queue_cut_at = now
                self.kbps = self._clamp(self.kbps * DECREASE)
        elif seconds - self.latency < HEADROOM * (budget - self.latency) and self._used():
            self.kbps = self._clamp(self.kbps * INCREASE)
        return self._adapt(now)

    def _used(self) -> bool:
        """Rule 1's increase needs the encoder to use the bitrate it has: the median of the last
        USED_ACKS chunks at least USED_SHARE of a chunk at the target (kbps / fps). An encoder that
        makes less (a plain picture) would otherwise let the target climb far past the link, and
        the first detailed frame, key frame or larger rung would then burst at it."""
        sizes = sorted(b for b, _ in list(self._acks)[-USED_ACKS:])
        return sizes[(len(sizes) - 1) // 2] >= USED_SHARE * self.kbps * 125.0 / self.fps

    def _window(self) -> int:
        """Rule 5: the bandwidth-delay product in chunks at the current fps, with a margin."""
        chunks = math.floor(WINDOW_FACTOR * (self.latency * self.fps + 1.0))
        return min(MAX_IN_FLIGHT, max(IN_FLIGHT, chunks))

    def room(self, unacked: int) -> bool:
        """Whether a sender with `unacked` chunks in flight may send another."""
        return unacked < self.window

    def _queued(self, now: float) -> bool:
        """Rule 1's queue test: the latency is QUEUE_S over its least in the last BASE_S (each
        taken no lower than the quickest send->ack, as measured, of the acks it was fitted to: a
        few very slow acks, a stall at start, steepen the fit's slope until the latency reads 0,
        and a base of 0 would read a 100 ms round trip as a queue for BASE_S)."""
        quickest = min(self._raw)
        self._latencies.append((now, max(self.latency, quickest)))
        while self._latencies[0][0] < now - BASE_S:
            self._latencies.popleft()
        return self.latency - min(lat for _, lat in self._latencies) > QUEUE_S

    def _fit_latency(self) -> float:
        """Rule 0: what every chunk's send->ack holds whatever its size."""
        acks = list(self._acks)
        slope = max(0.0, _median_slope(acks))
        residuals = sorted(t - slope * b for b, t in acks)
        return max(0.0, residuals[int(LATENCY_QUANTILE * (len(residuals) - 1))])

    def on_encoded(self, seconds: float) -> None:
        """A frame took `seconds` (wall clock) to encode at the current rung: rule 4's input."""
        self._encodes.append(seconds)

    def on_lost(self, now: float) -> bool:
        """The last chunk's ack never came; True when the rung changed. Only the first loss of
        LOST_HOLD_S halves kbps: the chunks in flight with it were sent before it was known, and a
        stall of a few seconds (the widget's first display, JupyterLab's own traffic) times them out
        one after the other; each halving would take a window of ten to the minimum."""
        if now - self._lost_at >= LOST_HOLD_S:
            self._lost_at = now
            self.kbps = self._clamp(self.kbps * LOST_DECREASE)
        return self._adapt(now)

    # -- rules 2 and 3 -------------------------------------------------------------------------------
    def _adapt(self, now: float) -> bool:
        self.fps = self._target_fps()
        if self._rung_since is not None and now - self._rung_since < RUNG_HOLD_S:
            return False
        current = self.rungs.index(self.rung)
        self._cpu_cap = self._cpu_rung(current)
        best = max(self._best_rung(current), self._cpu_cap)
        if self._rung_since is None:
            self._rung_since = now
        if best == current:
            return False
        self.rung = self.rungs[best]
        self._rung_since = now
        self.rung_changes += 1
        self._encodes.clear()
        return True

    def _cpu_rung(self, current: int) -> int:
        """Rule 4: the CPU cap, from the encodes at the current rung."""
        if len(self._encodes) < ENCODE_FRAMES:
            return self._cpu_cap
        median = sorted(self._encodes)[len(self._encodes) // 2]
        allowed = ENCODE_SHARE / self.fps
        if median > allowed:
            return min(len(self.rungs) - 1, current + 1)
        if 0 < current <= self._cpu_cap:
            larger = median * self.rungs[current - 1].pixels / self.rungs[current].pixels
            if larger < allowed / UP_MARGIN:
                return current - 1
        return self._cpu_cap

    def bpp(self, rung: Rung) -> float:
        """Bits per pixel per frame at the current kbps and fps."""
        return self.kbps * 1000.0 / (rung.pixels * self.fps)

    def _best_rung(self, current: int) -> int:
        for i, rung in enumerate(self.rungs):
            need = MIN_BPP * UP_MARGIN if i < current else MIN_BPP
            if self.bpp(rung) >= need:
                return i
        return len(self.rungs) - 1

    def _target_fps(self) -> float:
        smallest = self.rungs[-1].pixels
        affordable = self.kbps * 1000.0 / (MIN_BPP * smallest)
        fps = min(self.model_fps, affordable)
        if self.latency > 0:
            fps = min(fps, self.window / (LATENCY_FACTOR * self.latency))
        return max(MIN_FPS, fps)

    def _clamp(self, kbps: float) -> float:
        return min(self.max_kbps, max(self.min_kbps, kbps))
