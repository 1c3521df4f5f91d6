// Rate control for the camera's VP8 over the comm: the twin of decart_nb/media/rate.py (its
// docstring is the spec: same rules, constants and order of steps, so both senders behave alike).
// The constants live in one table both read, decart_nb/media/rate_rules.json, whose seeded
// scenarios both are tested against (js/test/rate.test.ts, tests/test_rate.py). Inputs per acked
// chunk: its bytes and its send->ack seconds; outputs: kbps, fps and the rung (resolution) to
// encode at.
import { constants } from "../../decart_nb/media/rate_rules.json";

export interface RateRules {
  LADDER: readonly number[]; // fractions of the model's width and height, largest first
  IN_FLIGHT: number; // the window's floor: chunks a sender may always have unacked
  MAX_IN_FLIGHT: number; // the window's ceiling
  WINDOW_FACTOR: number; // the window's margin over the bandwidth-delay product in chunks
  DECREASE: number; // LATE_ACKS chunks in a row over FULL of the budget: the link is full or queueing
  INCREASE: number; // a chunk's own transmission under HEADROOM of what the budget leaves: well under
  LOST_DECREASE: number;
  LOST_HOLD_S: number; // a loss this soon after the last halving does not halve again
  HEADROOM: number;
  FULL: number; // a chunk's own transmission over this share of the budget counts as late
  QUEUE_S: number; // a latency this much over its least of the last BASE_S is a queue: decrease
  BASE_S: number;
  QUEUE_CUT_EVERY_S: number; // the latency follows a cut slowly: one cut a second
  FIT_ACKS: number; // the acks rule 0 fits the latency to, of the last FIT_S
  FIT_S: number;
  FIT_MIN_ACKS: number; // however old, the fit keeps this many
  LATE_ACKS: number;
  LATENCY_FACTOR: number; // `window` frame periods are at least this many latencies
  LATENCY_QUANTILE: number; // of the acks' residuals: quick acks among slow ones do not make the latency
  MIN_BPP: number; // bits per pixel per frame a rung needs
  UP_MARGIN: number; // a step up needs MIN_BPP * UP_MARGIN, so a boundary does not flip rungs
  MAX_BPP: number; // max kbps: this at the full size and the model's fps
  RUNG_HOLD_S: number;
  ENCODE_FRAMES: number; // rule 4 takes the median of this many encode times
  ENCODE_SHARE: number; // of a frame period, the most a frame's encode may take
  MIN_FPS: number;
  MIN_KBPS: number;
  START_KBPS: number;
  USED_ACKS: number; // rule 1 increases only while the median of this many chunks is at least
  USED_SHARE: number; // this share of a chunk at the target (kbps / fps): the encoder uses its bitrate
}

export const RATE: Readonly<RateRules> = Object.freeze({ ...constants, LADDER: Object.freeze([...constants.LADDER]) });

export interface Rung {
  readonly width: number;
  readonly height: number;
}

export interface RateOptions {
  startKbps?: number;
  minKbps?: number;
  maxKbps?: number | null;
}

const even = (x: number): number => Math.max(2, Math.floor(Math.floor(x) / 2) * 2);

export function ladder(width: number, height: number): readonly Rung[] {
  return RATE.LADDER.map((f) => Object.freeze({ width: even(width * f), height: even(height * f) }));
}

// Rule 0's slope: the median of the slopes between every two acks of different sizes (0 when all
// sizes are equal; the lower middle one of an even count).
function medianSlope(acks: readonly (readonly [number, number])[]): number {
  const slopes: number[] = [];
  acks.forEach(([b1, t1], i) => {
    for (const [b2, t2] of acks.slice(i + 1)) if (b2 !== b1) slopes.push((t2 - t1) / (b2 - b1));
  });
  slopes.sort((x, y) => x - y);
  return slopes[Math.floor((slopes.length - 1) / 2)] ?? 0;
}

// The rung at `i` of a ladder (ladders are never empty: LADDER has five fractions).
function at(rungs: readonly Rung[], i: number): Rung {
  const rung = rungs[i];
  if (!rung) throw new RangeError(`no rung ${i}`);
  return rung;
}

export class RateController {
  readonly rungs: readonly Rung[];
  readonly modelFps: number;
  readonly minKbps: number;
  readonly maxKbps: number;
  kbps: number;
  latency = 0; // rule 0: what every chunk's send->ack holds whatever its size
  window: number = RATE.IN_FLIGHT; // rule 5: chunks the sender may have unacked
  private acks: [nbytes: number, seconds: number][] = []; // the last FIT_ACKS
  private raw: number[] = []; // the same acks' send->ack, uncorrected
  private ackTimes: number[] = []; // and their `now`
  private lastAckAt: number | null = null; // `now` of the last ack
  private latencies: [now: number, latency: number][] = []; // of the last BASE_S
  private queueCutAt = -Infinity;
  private lostAt = -Infinity; // the last halving for a lost chunk
  private encodes: number[] = []; // rule 4: the last ENCODE_FRAMES encode times at the current rung
  cpuCap = 0; // rule 4: the largest rung's index the encoder keeps up with
  fps: number;
  rung: Rung;
  private rungSince: number | null = null; // null: the first ack may move the rung at once
  rungChanges = 0;

  constructor(width: number, height: number, fps: number, { startKbps = RATE.START_KBPS, minKbps = RATE.MIN_KBPS, maxKbps = null }: RateOptions = {}) {
    this.rungs = ladder(width, height);
    this.modelFps = fps;
    this.minKbps = minKbps;
    this.maxKbps = maxKbps ?? (RATE.MAX_BPP * width * height * fps) / 1000;
    this.kbps = this.clamp(startKbps);
    this.fps = this.targetFps();
    this.rung = at(this.rungs, this.bestRung(this.rungs.length - 1));
  }

  // Rules 0 and 1, then 2 and 3: a chunk of `nbytes` took `seconds` from send to ack (`now` in
  // seconds); true when the rung changed (the next frame is then a key frame).
  onAck(nbytes: number, seconds: number, now: number): boolean {
    // A chunk sent before the last ack came may have waited for the one ahead: count from when
    // that one left the link (its ack less the latency), as if it had travelled alone.
    // The latency no lower than the quickest ack as measured: a latency read too low would shorten
    // the acks the next fit is made of, and so on down to 0.
    this.raw.push(seconds); // as measured, before the correction below
    if (this.lastAckAt !== null && now - seconds < this.lastAckAt) {
      seconds = Math.min(seconds, now - this.lastAckAt + Math.max(this.latency, Math.min(...this.raw)));
    }
    this.lastAckAt = now;
    this.acks.push([nbytes, seconds]);
    this.ackTimes.push(now);
    // The fit holds the acks of the last FIT_S (at most FIT_ACKS, at least FIT_MIN_ACKS): a stall's
    // slow acks leave it soon after the stall.
    while (this.ackTimes.length > RATE.FIT_ACKS || (this.ackTimes.length > RATE.FIT_MIN_ACKS && (this.ackTimes[0] ?? now) < now - RATE.FIT_S)) {
      this.ackTimes.shift();
      this.acks.shift();
      this.raw.shift();
    }
    this.latency = this.fitLatency();
    this.window = this.fitWindow();
    const queued = this.queued(now);
    const period = 1 / this.fps;
    const budget = Math.min(this.window * period, this.latency + period);
    const recent = this.acks.slice(-RATE.LATE_ACKS);
    if (recent.length === RATE.LATE_ACKS && recent.every(([, t]) => t - this.latency > RATE.FULL * (budget - this.latency))) {
      this.kbps = this.clamp(this.kbps * RATE.DECREASE);
    } else if (queued) {
      if (now - this.queueCutAt >= RATE.QUEUE_CUT_EVERY_S) {
        this.queueCutAt = now;
        this.kbps = this.clamp(this.kbps * RATE.DECREASE);
      }
    } else if (seconds - this.latency < RATE.HEADROOM * (budget - this.latency) && this.used()) {
      this.kbps = this.clamp(this.kbps * RATE.INCREASE);
    }
    return this.adapt(now);
  }

  // Rule 1's increase needs the encoder to use the bitrate it has: the median of the last
  // USED_ACKS chunks at least USED_SHARE of a chunk at the target (an encoder making less, a plain
  // picture, would let the target climb past the link, and its next key frame burst at it).
  private used(): boolean {
    const sizes = this.acks.slice(-RATE.USED_ACKS).map(([b]) => b).sort((x, y) => x - y);
    return (sizes[Math.floor((sizes.length - 1) / 2)] ?? 0) >= (RATE.USED_SHARE * this.kbps * 125) / this.fps;
  }

  // Rule 5: the bandwidth-delay product in chunks at the current fps (a latency and a period of
  // chunks), with WINDOW_FACTOR's margin, within [IN_FLIGHT, MAX_IN_FLIGHT].
  private fitWindow(): number {
    const chunks = Math.floor(RATE.WINDOW_FACTOR * (this.latency * this.fps + 1));
    return Math.min(RATE.MAX_IN_FLIGHT, Math.max(RATE.IN_FLIGHT, chunks));
  }

  // Whether a sender with `unacked` chunks in flight may send another.
  room(unacked: number): boolean {
    return unacked < this.window;
  }

  // Rule 1's queue test: the latency is QUEUE_S over its least in the last BASE_S.
  // Each latency counts no lower than the quickest send->ack, as measured, of the acks it was fitted
  // to: a stall's slow acks steepen the fit's slope until the latency reads 0, and a base of 0 would
  // read a long round trip as a queue.
  private queued(now: number): boolean {
    const quickest = Math.min(...this.raw);
    this.latencies.push([now, Math.max(this.latency, quickest)]);
    while ((this.latencies[0]?.[0] ?? now) < now - RATE.BASE_S) this.latencies.shift();
    return this.latency - Math.min(...this.latencies.map(([, lat]) => lat)) > RATE.QUEUE_S;
  }

  // Rule 0: the LATENCY_QUANTILE (upper quartile) of the residuals of send->ack over the line in
  // bytes whose slope is the median of the slopes between every two acks (a few huge acks of a
  // stall do not tilt it, as they tilted a least-squares line until the latency read 0).
  private fitLatency(): number {
    const n = this.acks.length;
    const slope = Math.max(0, medianSlope(this.acks));
    const residuals = this.acks.map(([b, t]) => t - slope * b).sort((x, y) => x - y);
    return Math.max(0, residuals[Math.floor(RATE.LATENCY_QUANTILE * (n - 1))] ?? 0);
  }

  // Rule 4's input: a frame took `seconds` (wall clock) to encode at the current rung.
  onEncoded(seconds: number): void {
    this.encodes.push(seconds);
    if (this.encodes.length > RATE.ENCODE_FRAMES) this.encodes.shift();
  }

  // The last chunk's ack never came; true when the rung changed.
  // Only the first loss of LOST_HOLD_S halves: the window's chunks time out one after the other in
  // a stall, and each halving would take a window of ten to the minimum.
  onLost(now: number): boolean {
    if (now - this.lostAt >= RATE.LOST_HOLD_S) {
      this.lostAt = now;
      this.kbps = this.clamp(this.kbps * RATE.LOST_DECREASE);
    }
    return this.adapt(now);
  }

  private adapt(now: number): boolean {
    this.fps = this.targetFps();
    if (this.rungSince !== null && now - this.rungSince < RATE.RUNG_HOLD_S) return false;
    const current = this.rungs.indexOf(this.rung);
    this.cpuCap = this.cpuRung(current);
    const best = Math.max(this.bestRung(current), this.cpuCap);
    if (this.rungSince === null) this.rungSince = now;
    if (best === current) return false;
    this.rung = at(this.rungs, best);
    this.rungSince = now;
    this.rungChanges += 1;
    this.encodes = [];
    return true;
  }

  // Rule 4: the CPU cap, from the encodes at the current rung.
  private cpuRung(current: number): number {
    if (this.encodes.length < RATE.ENCODE_FRAMES) return this.cpuCap;
    const median = [...this.encodes].sort((x, y) => x - y)[Math.floor(this.encodes.length / 2)] ?? 0;
    const allowed = RATE.ENCODE_SHARE / this.fps;
    if (median > allowed) return Math.min(this.rungs.length - 1, current + 1);
    if (current > 0 && current <= this.cpuCap) {
      const [up, here] = [at(this.rungs, current - 1), at(this.rungs, current)];
      const larger = (median * (up.width * up.height)) / (here.width * here.height);
      if (larger < allowed / RATE.UP_MARGIN) return current - 1;
    }
    return this.cpuCap;
  }

  // Bits per pixel per frame at the current kbps and fps.
  bpp(rung: Rung): number {
    return (this.kbps * 1000) / (rung.width * rung.height * this.fps);
  }

  private bestRung(current: number): number {
    for (let i = 0; i < this.rungs.length; i++) {
      const need = i < current ? RATE.MIN_BPP * RATE.UP_MARGIN : RATE.MIN_BPP;
      if (this.bpp(at(this.rungs, i)) >= need) return i;
    }
    return this.rungs.length - 1;
  }

  // The model's fps, but no more than the window allows (window / (LATENCY_FACTOR * latency))
  // and no more than gives the smallest rung MIN_BPP (fewer, better frames); at least MIN_FPS.
  private targetFps(): number {
    const smallest = at(this.rungs, this.rungs.length - 1);
    const affordable = (this.kbps * 1000) / (RATE.MIN_BPP * smallest.width * smallest.height);
    let fps = Math.min(this.modelFps, affordable);
    if (this.latency > 0) fps = Math.min(fps, this.window / (RATE.LATENCY_FACTOR * this.latency));
    return Math.max(RATE.MIN_FPS, fps);
  }

  private clamp(kbps: number): number {
    return Math.min(this.maxKbps, Math.max(this.minKbps, kbps));
  }
}
