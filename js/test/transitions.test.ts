// The page's state diagram (transitions.ts): what the Controller may move to, and what not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { allowed, IDLE_STATUSES, TRANSITIONS, type Status } from "../src/transitions.ts";

const STATUSES = Object.keys(TRANSITIONS) as Status[];

test("every status may stop, and staying (a new notice) is always allowed", () => {
  for (const s of STATUSES) {
    assert.ok(allowed(s, "stopped"), `${s} -> stopped`);
    assert.ok(allowed(s, s), `${s} -> ${s}`);
  }
});

test("every status is reachable and every target is a status", () => {
  const targets = new Set(STATUSES.flatMap((s) => Object.keys(TRANSITIONS[s])));
  for (const s of STATUSES) if (s !== "idle") assert.ok(targets.has(s), `nothing goes to ${s}`);
  for (const t of targets) assert.ok(STATUSES.includes(t as Status), `${t} is no status`);
});

test("the moves the Controller makes are allowed, the odd ones refused", () => {
  const ok: [Status, Status][] = [
    ["idle", "starting"],
    ["starting", "connecting"],
    ["connecting", "live"],
    ["live", "reconnecting"],
    ["reconnecting", "live"],
    ["live", "connecting"], // "auto" fell back to the comm
    ["live", "paused"],
    ["paused", "starting"],
    ["live", "camera-error"],
    ["camera-error", "starting"],
    ["stopped", "connecting"],
  ];
  for (const [from, to] of ok) assert.ok(allowed(from, to), `${from} -> ${to}`);
  const refused: [Status, Status][] = [
    ["idle", "live"],
    ["stopped", "live"],
    ["camera-error", "live"],
    ["paused", "live"],
    ["idle", "reconnecting"],
    ["camera-error", "connecting"],
  ];
  for (const [from, to] of refused) assert.ok(!allowed(from, to), `${from} -> ${to} was allowed`);
});

// The diagram in transitions.ts, edge by edge: a move added or lost must show here.
const EDGES = `
idle: starting paused connecting stopped
starting: connecting live reconnecting paused camera-error stopped
paused: starting connecting reconnecting stopped
connecting: live reconnecting paused camera-error stopped
live: reconnecting connecting paused camera-error stopped
reconnecting: live connecting paused camera-error stopped
camera-error: starting paused stopped
stopped: starting paused connecting`;

test("the table has exactly the diagram's moves", () => {
  const want = Object.fromEntries(
    EDGES.trim().split("\n").map((line) => {
      const [from, to] = line.split(": ") as [string, string];
      return [from, to.split(" ").sort()];
    }),
  );
  const got = Object.fromEntries(STATUSES.map((s) => [s, Object.keys(TRANSITIONS[s]).sort()]));
  assert.deepEqual(got, want);
});

test("idle statuses are the ones Try again or a view starts from", () => {
  assert.deepEqual([...IDLE_STATUSES].sort(), ["camera-error", "idle", "stopped"]);
  for (const s of IDLE_STATUSES) assert.ok(allowed(s, "starting") || s === "idle");
});

test("the table cannot be changed at run time", () => {
  assert.ok(Object.isFrozen(TRANSITIONS) && STATUSES.every((s) => Object.isFrozen(TRANSITIONS[s])));
});
