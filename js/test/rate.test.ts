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

const state = (rc: RateController, changed: boolean | null): Expect => [changed, rc.kbps, rc.fps, rc.latency, rc.rung.width, rc.rung.height, rc.rungChanges];

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
