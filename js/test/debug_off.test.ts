// Without __decartNBDebug the page exposes nothing on globalThis (window.__decartNB is test-only).
import assert from "node:assert/strict";
import { test } from "node:test";
import { registry } from "../src/debug.ts";

test("no debug flag: no registry, nothing on globalThis", () => {
  assert.equal(registry, null);
  assert.equal((globalThis as { __decartNB?: unknown }).__decartNB, undefined);
});
