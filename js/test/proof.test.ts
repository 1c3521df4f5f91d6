// The page's own SHA-256 and HMAC-SHA256 (no crypto.subtle on a plain-http page) against published
// vectors and node's crypto, and the handshake proof's layout (the kernel's side:
// decart_nb/widgets/socket_handshake.py; tests/test_page_socket_js.py checks both agree).
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { test } from "node:test";
import { NONCE_SIZE, sameBytes, socketProof } from "../src/proof.ts";
import { hmacSha256, sha256 } from "../src/sha256.ts";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

test("SHA-256 of FIPS 180-2's examples", () => {
  assert.equal(hex(sha256(utf8(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(hex(sha256(utf8("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(hex(sha256(utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
});

test("HMAC-SHA256 of RFC 4231's test cases 1, 2 and 6 (a key longer than a block)", () => {
  assert.equal(hex(hmacSha256(new Uint8Array(20).fill(0x0b), utf8("Hi There"))), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  assert.equal(hex(hmacSha256(utf8("Jefe"), utf8("what do ya want for nothing?"))), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const key = new Uint8Array(131).fill(0xaa);
  assert.equal(hex(hmacSha256(key, utf8("Test Using Larger Than Block-Size Key - Hash Key First"))), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
});

test("SHA-256 and HMAC agree with node's around the block sizes", () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
    const message = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256);
    const key = Uint8Array.from({ length: (n * 3) % 150 }, (_, i) => i % 256);
    assert.equal(hex(sha256(message)), createHash("sha256").update(message).digest("hex"), `sha256 of ${n} bytes`);
    assert.equal(hex(hmacSha256(key, message)), createHmac("sha256", key).update(message).digest("hex"), `hmac of ${n} bytes`);
  }
});

test("a proof is HMAC(token, role | u16le port | first | second)", () => {
  const [first, second] = [new Uint8Array(NONCE_SIZE).fill(7), new Uint8Array(NONCE_SIZE).fill(9)];
  const message = Buffer.concat([Buffer.from("kernel"), Buffer.from([0x92, 0x10]), first, second]); // port 4242
  const want = createHmac("sha256", "secret").update(message).digest("hex");
  assert.equal(hex(socketProof("secret", "kernel", 4242, first, second)), want);
  assert.notEqual(hex(socketProof("secret", "page", 4242, first, second)), want, "the role is in the proof");
  assert.notEqual(hex(socketProof("secret", "kernel", 4243, first, second)), want, "the port is in the proof");
});

test("sameBytes compares whole arrays", () => {
  assert.ok(sameBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
  assert.ok(!sameBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])));
  assert.ok(!sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])));
});
