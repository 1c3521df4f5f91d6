// The message schema's check (schema.ts): the page logs any message off its table.
import assert from "node:assert/strict";
import { test } from "node:test";
import { asKernelMessage, KERNEL_MESSAGES, PAGE_MESSAGES, schemaMismatch } from "../src/schema.ts";

test("a message with exactly its fields matches", () => {
  assert.equal(schemaMismatch(PAGE_MESSAGES, { type: "offer", sdp: "v=0", attempt: 1 } as { type: string }), "");
  assert.equal(schemaMismatch(PAGE_MESSAGES, { type: "keyframe" }), "");
  assert.equal(schemaMismatch(KERNEL_MESSAGES, { type: "media_socket", port: 1, token: "t" } as { type: string }), "");
});

test("a missing field, an extra one, or an unknown type is named", () => {
  assert.equal(schemaMismatch(PAGE_MESSAGES, { type: "offer", sdp: "v=0" } as { type: string }), "offer: fields attempt differ from the schema");
  assert.equal(schemaMismatch(PAGE_MESSAGES, { type: "stopped", reason: "x", when: 1 } as { type: string }), "stopped: fields when differ from the schema");
  assert.equal(schemaMismatch(PAGE_MESSAGES, { type: "answer" }), 'unknown type "answer"');
});

test("the page handles kernel messages of known types only", () => {
  assert.deepEqual(asKernelMessage({ type: "stop" }), { type: "stop" });
  assert.equal(asKernelMessage({ type: "offer" }), null);
  assert.equal(asKernelMessage({ type: "toString" }), null);
  assert.equal(asKernelMessage("stop"), null);
  assert.equal(asKernelMessage(null), null);
});

test("the tables cannot be changed at run time", () => {
  assert.ok(Object.isFrozen(PAGE_MESSAGES) && Object.isFrozen(PAGE_MESSAGES.offer));
  assert.ok(Object.isFrozen(KERNEL_MESSAGES) && Object.isFrozen(KERNEL_MESSAGES.answer));
});
