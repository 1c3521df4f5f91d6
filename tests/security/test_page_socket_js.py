"""Attacks on the page's side of the page socket (camera.js's PagePipe and Controller, in node with
tests/test_page_socket_js.py's fake model, WebSocket and clock): another user of the host listens
on a port the page connects to (one the kernel freed when its connection ended) and speaks MAGIC
(which the relay checks) and anything it likes after it.

- The handshake: the page sends such a listener its nonce and nothing else (no token, no page
  message, no frame), and never takes its socket for the kernel's: whatever it answers, short of
  the token's proof for that very port, the comm carries everything.
- The page forgets an offer when the kernel's connection ends (its `stop`), when a newer one comes,
  and when the widget goes: a late copy of the old offer opens nothing, on a new link neither.
Each part fails without its own fix.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from decart_nb.widgets import socket_handshake as hs
from tests.test_page_socket_js import CAMERA_JS, KERNEL_NONCE, PAGE_NONCE, PORT, run_scenarios

# The real kernel's proof, but of another port (a listener that relays the handshake to it).
OTHER_PORT_PROOF = hs.kernel_proof("secret", PORT + 1, PAGE_NONCE, KERNEL_NONCE)
WRONG_TOKEN_PROOF = hs.kernel_proof("not-the-token", PORT, PAGE_NONCE, KERNEL_NONCE)
NONCE_HEX = bytes([hs.NONCE]).hex() + PAGE_NONCE.hex()

FOREIGN = r"""
const out = {};
const nonce = () => frame(5, new Uint8Array(32).fill(9));
const proof = (h) => frame(6, hex(h));
const READY = () => new Uint8Array([0]).buffer;
const keyChunk = () => frame(1, new Uint8Array([1, 0, 0, 0, 1, 2, 0, 2, 0, 0x9d, 0x01, 0x2a]));
// What a foreign listener says after MAGIC (which the relay keeps), one attack each.
const attacks = {
  readyAtOnce: [READY()],
  nonceThenReady: [nonce(), READY()],
  madeUpProof: [nonce(), frame(6, new Uint8Array(32).fill(1)), READY()],
  wrongTokensProof: [nonce(), proof(WRONG_TOKEN_PROOF), READY()],
  anotherPortsProof: [nonce(), proof(OTHER_PORT_PROOF), READY()],
  shortProof: [nonce(), frame(6, hex(KERNEL_PROOFS.secret).subarray(0, 16)), READY()],
  mediaFirst: [keyChunk(), READY()],
  textFirst: ["decart_nb-media/1", READY()],
};
for (const [name, says] of Object.entries(attacks)) {
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  const ws = FakeSocket.made[0];
  c.send(cameraInfo("held"));
  ws.open();
  for (const data of says) if (ws.readyState === 1) ws.onmessage({ data });
  // After the attack: a page message and a camera chunk, as the page would send them.
  const where = c.send(cameraInfo("after"));
  const chunk = { byteLength: 4, copyTo: (dst) => dst.set([1, 2, 3, 4]) };
  const media = Boolean(c.pipe?.sendMedia({ type: "chunk", seq: 1, key: true, width: 2, height: 2 }, chunk));
  out[name] = {
    sent: ws.sent.map((d) => Buffer.from(d).toString("hex")),
    live: c.pipeLive,
    closed: ws.readyState === 3,
    where,
    media,
    comm: c.model.sent.slice(),
  };
}
console.log(JSON.stringify(out));
"""

FORGOTTEN = r"""
const out = {};
// The kernel's connection ends: its `stop`, and its listener closes (the relay closes the socket).
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  FakeSocket.made[0].open();
  FakeSocket.made[0].ready();
  out.liveFirst = c.pipeLive;
  c.kernelMessage({ type: "stop" });
  FakeSocket.made[0].drop();
  offer(c); // a late copy of the old offer
  out.afterStop = FakeSocket.made.length;
  c.kernelMessage({ type: "restart" }); // a new link
  offer(c);
  out.afterRestart = FakeSocket.made.length;
  offer(c, "newer"); // the kernel's new listener: opened
  out.newer = FakeSocket.made.length;
  FakeSocket.made.at(-1).open();
  FakeSocket.made.at(-1).ready("newer");
  offer(c); // the old one once more: nothing opens, the live one stays
  out.oldAgain = FakeSocket.made.length;
  out.newerKept = c.pipeLive;
}
// A newer offer replaces an older one that is still open: the older is not reopened later.
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  offer(c, "newer");
  offer(c);
  out.replaced = FakeSocket.made.length;
}
// The widget goes (the kernel closes its listener): a late offer to the same model opens nothing.
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  FakeSocket.made[0].open();
  FakeSocket.made[0].ready();
  c.destroy();
  FakeSocket.made[0].drop();
  offer(c);
  out.afterDestroy = FakeSocket.made.length;
}
console.log(JSON.stringify(out));
"""


def constants() -> str:
    return (
        f"const OTHER_PORT_PROOF = {json.dumps(OTHER_PORT_PROOF.hex())};\n"
        f"const WRONG_TOKEN_PROOF = {json.dumps(WRONG_TOKEN_PROOF.hex())};\n"
    )


@pytest.fixture(scope="module")
def foreign() -> dict[str, Any]:
    return dict(run_scenarios(CAMERA_JS.read_text(), constants() + FOREIGN))


ATTACKS = (
    "readyAtOnce",
    "nonceThenReady",
    "madeUpProof",
    "wrongTokensProof",
    "anotherPortsProof",
    "shortProof",
    "mediaFirst",
    "textFirst",
)


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_foreign_listener_gets_the_pages_nonce_and_nothing_else(
    foreign: dict[str, Any], attack: str
) -> None:
    got = foreign[attack]
    assert got["sent"] == [NONCE_HEX], f"the page sent a foreign listener more than its nonce: {got['sent']}"
    assert b"secret".hex() not in "".join(got["sent"]), "the token crossed the socket"
    assert not got["live"] and got["closed"], "the page took a foreign listener for the kernel's"
    assert not got["media"], "a camera chunk went to a foreign listener"
    # What the page had to say went over the comm, in order.
    assert got["where"] == "comm" and got["comm"] == ["camera", "camera"], got


def test_the_page_never_reopens_a_forgotten_offer() -> None:
    out = run_scenarios(CAMERA_JS.read_text(), FORGOTTEN)
    assert out["liveFirst"]
    assert out["afterStop"] == 1, "the page reopened the offer of the kernel's ended connection"
    assert out["afterRestart"] == 1, "the page reopened an old offer on a new link"
    assert out["newer"] == 2, "the kernel's new offer was not opened"
    assert out["oldAgain"] == 2 and out["newerKept"], "an old offer replaced the live socket"
    assert out["replaced"] == 2, "an offer a newer one replaced was opened again"
    assert out["afterDestroy"] == 1, "a closed widget's page opened an offer"
