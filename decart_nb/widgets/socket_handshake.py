"""The page socket's handshake: each side proves it holds the listener's token, never sending it.

The kernel sends NONCE(nonce_k) right after MAGIC, the page NONCE(nonce_p) as soon as its
websocket opens. The kernel answers PROOF(kernel_proof), which the page checks before it sends
anything else; then the page answers PROOF(page_proof) and the kernel, once it checked that,
sends READY. Both nonces are fresh random bytes per connection, so a recorded proof is worth
nothing on another one; the role names keep one side's proof from passing for the other's; the
port the page asked the relay for is in both, so a listener on another port that relays the
handshake to the real one (a neighbour on a port the page should not have used) fails it.

The page's side (js/src/proof.ts, sha256.ts) computes the same HMAC-SHA256 with its own SHA-256, since a page
served over plain http on a LAN host has no `crypto.subtle`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

__all__ = [
    "NONCE",
    "NONCE_SIZE",
    "PROOF",
    "kernel_proof",
    "new_nonce",
    "nonce_frame",
    "page_proof",
    "proof_frame",
    "read_field",
    "same",
]

NONCE, PROOF = 0x05, 0x06  # frame kinds, both ways, before READY
NONCE_SIZE = 32  # bytes of a nonce, and of a proof (an HMAC-SHA256)
_PORT = struct.Struct("<H")


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def nonce_frame(nonce: bytes) -> bytes:
    return bytes([NONCE]) + nonce


def proof_frame(proof: bytes) -> bytes:
    return bytes([PROOF]) + proof


def read_field(body: bytes | None, kind: int) -> bytes | None:
    """The nonce or proof a frame body of `kind` carries; None for any other body."""
    if body is None or len(body) != 1 + NONCE_SIZE or body[0] != kind:
        return None
    return body[1:]


def kernel_proof(token: str, port: int, nonce_p: bytes, nonce_k: bytes) -> bytes:
    """What the kernel sends: HMAC-SHA256(token, "kernel" | u16le port | nonce_p | nonce_k)."""
    return _mac(token, b"kernel" + _PORT.pack(port) + nonce_p + nonce_k)


def page_proof(token: str, port: int, nonce_k: bytes, nonce_p: bytes) -> bytes:
    """What the page sends: HMAC-SHA256(token, "page" | u16le port | nonce_k | nonce_p)."""
    return _mac(token, b"page" + _PORT.pack(port) + nonce_k + nonce_p)


def same(proof: bytes | None, expected: bytes) -> bool:
    """Constant-time comparison (a wrong proof's first bytes do not show in how long it took)."""
    return proof is not None and hmac.compare_digest(proof, expected)


def _mac(token: str, message: bytes) -> bytes:
    return hmac.new(token.encode(), message, hashlib.sha256).digest()
