// The page socket's binary frames (media_frames.ts), against bytes written out by hand from the
// layout the kernel reads (decart_nb/widgets/media_socket.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeMedia, encodeMedia, encodeMessage, field, MEDIA } from "../src/media_frames.ts";

const bytes = (data: ArrayBuffer): number[] => [...new Uint8Array(data)];
const chunkOf = (content: number[]) => ({ byteLength: content.length, copyTo: (dst: Uint8Array) => dst.set(content) });

test("a chunk: kind, u32 seq, u8 key, u16 width, u16 height (little-endian), then its bytes", () => {
  const data = encodeMedia({ type: "chunk", seq: 0x01020304, key: true, width: 640, height: 360 }, chunkOf([9, 8, 7]));
  assert.deepEqual(bytes(data), [1, 4, 3, 2, 1, 1, 0x80, 2, 0x68, 1, 9, 8, 7]);
  assert.equal(MEDIA.HEADER, 10);
});

test("a chunk_ack is kind and u32 seq; a keyframe request its kind alone", () => {
  assert.deepEqual(bytes(encodeMedia({ type: "chunk_ack", seq: 258 })), [2, 2, 1, 0, 0]);
  assert.deepEqual(bytes(encodeMedia({ type: "keyframe" })), [3]);
});

test("what is encoded decodes to the same message", () => {
  const msg = { type: "chunk", seq: 77, key: false, width: 320, height: 180 } as const;
  const decoded = decodeMedia(encodeMedia(msg, chunkOf([1, 2, 3, 4])));
  assert.deepEqual(decoded?.msg, msg);
  assert.deepEqual([...(decoded?.bytes ?? [])], [1, 2, 3, 4]);
  assert.deepEqual(decodeMedia(encodeMedia({ type: "chunk_ack", seq: 5 }))?.msg, { type: "chunk_ack", seq: 5 });
  assert.deepEqual(decodeMedia(encodeMedia({ type: "keyframe" }))?.msg, { type: "keyframe" });
});

test("short or unknown frames decode to nothing", () => {
  assert.equal(decodeMedia(new ArrayBuffer(0)), null);
  assert.equal(decodeMedia(new Uint8Array([1, 0, 0, 0, 0, 1, 2, 0, 2, 0]).buffer), null, "a chunk with no bytes");
  assert.equal(decodeMedia(new Uint8Array([2, 1, 0]).buffer), null, "a short ack");
  assert.equal(decodeMedia(new Uint8Array([MEDIA.MESSAGE, 123]).buffer), null, "the page's own kind");
  assert.equal(decodeMedia(new Uint8Array([0]).buffer), null, "READY after the handshake");
});

test("a page message is kind MESSAGE then its JSON; a handshake field kind then its bytes", () => {
  const json = new TextEncoder().encode('{"type":"keyframe"}');
  assert.deepEqual(bytes(encodeMessage(json)), [MEDIA.MESSAGE, ...json]);
  assert.deepEqual(bytes(field(MEDIA.NONCE, new Uint8Array([1, 2]))), [5, 1, 2]);
});
