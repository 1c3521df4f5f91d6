// The page socket's handshake proofs. Each side proves it holds the token of the kernel's offer
// without sending it (media_socket.py, socket_handshake.py): the kernel sends NONCE (32 random
// bytes), the page its own NONCE as soon as the socket opens; the kernel answers PROOF,
// HMAC-SHA256(token, "kernel" | u16le port | nonce_p | nonce_k), which the page checks before it
// sends anything else (whatever listens on a port the page was sent to must know the token
// first); then the page sends its PROOF, HMAC-SHA256(token, "page" | u16le port | nonce_k |
// nonce_p), and the kernel READY. Anything else before READY closes the socket.
import { hmacSha256 } from "./sha256.ts";

export const NONCE_SIZE = 32; // bytes of a nonce and of a proof

// A handshake proof: HMAC-SHA256(token, role | u16le port | first | second).
export function socketProof(token: string, role: "kernel" | "page", port: number, first: Uint8Array, second: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(role);
  const message = new Uint8Array(head.length + 2 + first.length + second.length);
  message.set(head);
  new DataView(message.buffer).setUint16(head.length, port, true);
  message.set(first, head.length + 2);
  message.set(second, head.length + 2 + first.length);
  return hmacSha256(new TextEncoder().encode(token), message);
}

// Equal byte arrays, in a time that does not depend on where they differ.
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  a.forEach((byte, i) => (diff |= byte ^ (b[i] ?? 0)));
  return diff === 0;
}
