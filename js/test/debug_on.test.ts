// With __decartNBDebug set before the module loads (the browser harness's init script), the page
// keeps its controllers on globalThis.__decartNB, the shape the browser tests read.
import assert from "node:assert/strict";
import { test } from "node:test";

test("the debug flag set first: the registry is globalThis.__decartNB", async () => {
  const g = globalThis as { __decartNBDebug?: boolean; __decartNB?: unknown };
  g.__decartNBDebug = true;
  const { registry } = await import("../src/debug.ts");
  assert.ok(registry && registry.controllers instanceof Set);
  assert.equal(g.__decartNB, registry);
});
