// The page's RateController against the shared scenarios of decart_nb/media/rate_rules.json (rate.py
// runs the same ones: tests/test_rate.py): after every step the outputs rate.py gave.
import assert from "node:assert/strict";
import { test } from "node:test";
import { constants, scenarios } from "../../decart_nb/media/rate_rules.json";
import { RATE, RateController, ladder } from "../src/rate.ts";

type Event = (string | number)[];
type Expect = (boolean | number | null)[];

function step(rc: RateController, event: Event): boolean | null {
  const [kind, a, b, c] = event;
  if (kind === "encoded") {
    rc.onEncoded(Number(a));
    return null;
  }
  return kind === "ack" ? rc.onAck(Number(a), Number(b), Number(c)) : rc.onLost(Number(a));
}

const state = (rc: RateController, changed: boolean | null): Expect => [changed, rc.kbps, rc.fps, rc.latency, rc.rung.width, rc.rung.height, rc.rungChanges, rc.window];

function close(a: unknown, b: unknown): boolean {
  if (typeof a !== "number" || typeof b !== "number") return a === b;
  return Math.abs(a - b) <= Math.max(1e-9 * Math.max(Math.abs(a), Math.abs(b)), 1e-12);
}

test("the rules are the shared table's", () => {
  assert.deepEqual({ ...RATE, LADDER: [...RATE.LADDER] }, constants);
  assert.deepEqual(ladder(1280, 720).map((r) => [r.width, r.height]), [[1280, 720], [960, 540], [640, 360], [480, 270], [320, 180]]);
});

test("there are scenarios, and they change the rung", () => {
  assert.ok(scenarios.length >= 4);
  assert.ok(scenarios.some((s) => (s.expect.at(-1)?.[6] as number) > 0));
});

for (const scenario of scenarios) {
  test(`scenario: ${scenario.name}`, () => {
    const m = scenario.model as { width: number; height: number; fps: number; startKbps?: number; minKbps?: number; maxKbps?: number };
    const rc = new RateController(m.width, m.height, m.fps, { startKbps: m.startKbps, minKbps: m.minKbps, maxKbps: m.maxKbps });
    const got: Expect[] = [state(rc, null)];
    for (const event of scenario.events as Event[]) got.push(state(rc, step(rc, event)));
    assert.equal(got.length, scenario.expect.length);
    got.forEach((mine, i) => {
      const want = scenario.expect[i] as Expect;
      const same = mine.every((x, j) => close(x, want[j]));
      assert.ok(same, `step ${i - 1} (${JSON.stringify((scenario.events as Event[])[i - 1])}): rate.ts ${JSON.stringify(mine)}, rate.py ${JSON.stringify(want)}`);
    });
  });
}

test("the window is the bandwidth-delay product in chunks, within its floor and ceiling", () => {
  const rc = new RateController(1280, 720, 30);
  assert.equal(rc.window, RATE.IN_FLIGHT); // before any ack
  for (let i = 0; i < 40; i++) rc.onAck(2000, 0.1, 1 + i / 30); // 100 ms at 30 fps
  assert.equal(rc.window, 6); // floor(1.5 * (0.1 * 30 + 1))
  assert.equal(rc.fps, 30, "a 100 ms round trip keeps the model's frame rate");
  assert.ok(!rc.room(6) && rc.room(5));
  const far = new RateController(1280, 720, 30);
  for (let i = 0; i < 40; i++) far.onAck(2000, 0.3, 1 + i / 30); // 300 ms: past the ceiling
  assert.equal(far.window, RATE.MAX_IN_FLIGHT);
  assert.ok(Math.abs(far.fps - RATE.MAX_IN_FLIGHT / (1.25 * 0.3)) < 1e-9, String(far.fps));
  const quick = new RateController(1280, 720, 30);
  for (let i = 0; i < 40; i++) quick.onAck(2000, 0.002, 1 + i / 30); // loopback: the floor
  assert.equal(quick.window, RATE.IN_FLIGHT);
});

test("a stall at start does not make a long round trip read as a queue", () => {
  // A few 2.5 s acks (the widget's first display at 1 Mbit/s) steepen the latency fit until it
  // reads 0; as the queue test's base, 0 would hold the bitrate at its minimum for BASE_S.
  // The acks after it come while the next are in flight, so the FIFO correction shortens them with
  // that latency of 0 too: only the acks' times as measured keep the base honest.
  let seed = 2;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648; // a seeded LCG: the same run every time
    return seed / 2147483648;
  };
  const rc = new RateController(1280, 720, 30);
  let now = 0;
  for (let i = 0; i < 10; i++) rc.onAck(6000 + Math.floor(4000 * random()), 2.5, (now += 0.3));
  const start = now;
  while (now < start + 8) {
    const nbytes = Math.max(300, Math.floor(((rc.kbps * 125) / rc.fps) * (0.5 + random())));
    now += 1 / 30; // pipelined: each ack comes a frame after the last, under its own time
    rc.onAck(nbytes, 0.1 + (nbytes * 8) / 1e6 + 0.01 * random(), now);
  }
  assert.ok(rc.kbps > 300, String(rc.kbps));
  assert.equal(rc.fps, 30);
});

function lcg(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648; // seeded: the same run every time
    return seed / 2147483648;
  };
}

test("a stall's few huge acks do not tilt the latency fit", () => {
  // A burst of acks at 2.5 s whatever their size (the widget's first display at 1 Mbit/s), a fifth
  // of the fit: a least-squares line through them reads every later ack's latency as 0.
  const random = lcg(3);
  const rc = new RateController(1280, 720, 60);
  let now = 0;
  for (let i = 0; i < 8; i++) rc.onAck(6000 + Math.floor(4000 * random()), 2.5, (now += 0.01));
  for (let i = 0; i < 30; i++) {
    const nbytes = 1000 + Math.floor(2000 * random());
    rc.onAck(nbytes, 0.1 + (nbytes * 8) / 1e6, (now += 1 / 60));
  }
  assert.ok(rc.latency >= 0.09 && rc.latency <= 0.13, String(rc.latency));
});

test("a stall's acks leave the latency fit once it is over", () => {
  // At 5 fps after a stall, its ten acks would stay most of a 40-ack fit for 6 s.
  const random = lcg(4);
  const rc = new RateController(1280, 720, 30);
  let now = 0;
  for (let i = 0; i < 10; i++) rc.onAck(1000 + Math.floor(2000 * random()), 2.5, (now += 0.05));
  for (let i = 0; i < 8; i++) {
    const nbytes = 1000 + Math.floor(2000 * random());
    rc.onAck(nbytes, 0.1 + (nbytes * 8) / 1e6, (now += 0.2));
  }
  assert.ok(rc.latency >= 0.09 && rc.latency <= 0.13, String(rc.latency));
});

test("an encoder using less than its bitrate does not let it climb", () => {
  // A plain picture: 2000-byte chunks whatever the target; every ack quick.
  const rc = new RateController(1280, 720, 30);
  let now = 0;
  for (let i = 0; i < 300; i++) rc.onAck(2000, 0.01, (now += 1 / 30));
  const used = (2000 * 8 * rc.fps) / 1000;
  assert.ok(rc.kbps <= (used / RATE.USED_SHARE) * RATE.INCREASE, `${rc.kbps} kbps for ${used} used`);
  assert.ok(rc.kbps > 400, "it still rose while the chunks used USED_SHARE of it");
});

test("a stall that times out the whole window halves the bitrate once", () => {
  const rc = new RateController(1280, 720, 30);
  for (let i = 0; i < 10; i++) rc.onLost(5 + i * 0.05);
  assert.ok(Math.abs(rc.kbps - 200) < 1e-9, String(rc.kbps));
  rc.onLost(6.5); // after the hold: news
  assert.ok(Math.abs(rc.kbps - 100) < 1e-9, String(rc.kbps));
});
