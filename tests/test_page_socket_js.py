"""The page's side of the page socket and of a busy kernel, in node (no browser): the page's modules
(js/src, bundled with their internals on globalThis by tests/page_bundle.py) run against a fake
widget model, a fake WebSocket and a manual clock.

- While the socket opens, page messages wait in order (the newest page_stats replacing an older
  one) and go over it on READY, or over the comm when it fails, so nothing sent before a socket
  message can reach the kernel after it; past PIPE_QUEUE_MAX the comm takes them all.
- An offer whose socket never opened is not tried again; a newer offer is, and so is the same one
  after a live socket closed.
- The handshake: the page's nonce first, its proof (Python's HMAC) only after the kernel's checked,
  never the token; SHA-256 and HMAC-SHA256 agree with Python's hashlib/hmac. (The attacks on the
  page's side: tests/security/test_page_socket_js.py.)
- An offer sent over the comm does not time out while `kernel_busy`, and the notice says why;
  the count starts again when the cell ends. Over the socket the timeout runs as before.
- "auto" gives WebRTC AUTO_ICE_MS / AUTO_CONNECT_MS from the kernel's answer, not from the offer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from typing import Any

import pytest

from decart_nb.widgets import socket_handshake as hs
from tests import page_bundle


class _Internals:
    """The page's internals as a script to run after the stubs; read_text() builds it (once)."""

    def read_text(self) -> str:
        return page_bundle.internals().read_text(encoding="utf-8")


CAMERA_JS = _Internals()

STUBS = r"""
let now = 0;
let nextTimer = 1;
const timers = new Map();
globalThis.setTimeout = (f, ms) => {
  const id = nextTimer++;
  timers.set(id, { at: now + (ms || 0), f });
  return id;
};
globalThis.clearTimeout = (id) => timers.delete(id);
globalThis.setInterval = () => 0;
globalThis.clearInterval = () => {};
function advance(ms) {
  const end = now + ms;
  for (;;) {
    let next = null;
    for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
    if (!next) break;
    timers.delete(next[0]);
    now = next[1].at;
    next[1].f();
  }
  now = end;
}
globalThis.performance = { now: () => now };
globalThis.location = { href: "http://127.0.0.1:8888/lab" };
globalThis.navigator = {};
globalThis.window = { addEventListener() {}, removeEventListener() {} };
globalThis.document = {
  hidden: false,
  addEventListener() {},
  removeEventListener() {},
  getElementById: (id) =>
    id === "jupyter-config-data" ? { textContent: '{"baseUrl": "/base/", "token": "tk"}' } : null,
};
// The page's nonces are all 7s (PAGE_NONCE), the fake kernel's all 9s (KERNEL_NONCE): Python
// made the proofs (KERNEL_PROOFS, PAGE_PROOFS: hex, by token, for port 4242).
const pageRandom = { getRandomValues: (a) => a.fill(7) };
Object.defineProperty(globalThis, "crypto", { value: pageRandom, configurable: true });
const hex = (h) => new Uint8Array((h.match(/../g) || []).map((b) => parseInt(b, 16)));
const frame = (kind, bytes) => {
  const data = new Uint8Array(1 + bytes.length);
  data[0] = kind;
  data.set(bytes, 1);
  return data.buffer;
};
class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; FakeSocket.made.push(this); }
  send(data) { this.sent.push(data); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen(); }
  // The kernel's side of the handshake (MAGIC stays with the relay), then READY.
  ready(token = "secret") {
    this.onmessage({ data: frame(5, new Uint8Array(32).fill(9)) });
    this.onmessage({ data: frame(6, hex(KERNEL_PROOFS[token])) });
    this.onmessage({ data: new Uint8Array([0]).buffer });
  }
  drop() { this.readyState = 3; this.onclose(); }
  // The page messages it carried (MESSAGE frames), by type.
  messages() {
    return this.sent.filter((d) => d instanceof ArrayBuffer && new Uint8Array(d)[0] === 4)
      .map((d) => JSON.parse(new TextDecoder().decode(new Uint8Array(d).subarray(1))).type);
  }
}
FakeSocket.made = [];
FakeSocket.OPEN = 1;
globalThis.WebSocket = FakeSocket;
class FakeModel {
  constructor(state) {
    this.state = { mode: "camera", transport: "auto", kernel_busy: false, codec: "vp8", ...state };
    this.sent = [];
    this.handlers = {};
  }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; for (const f of this.handlers[`change:${key}`] || []) f(); }
  on(event, f) { (this.handlers[event] ??= []).push(f); }
  send(msg) { this.sent.push(msg.type); }
}
function controller(state) {
  const c = new Controller(new FakeModel(state));
  c.listen();
  return c;
}
const offer = (c, token = "secret") => c.kernelMessage({ type: "media_socket", port: 4242, token });
const tick = () => new Promise((resolve) => setImmediate(resolve));
const pageStats = (n) => ({
  type: "page_stats", fps_sent: n, fps_received: null, fps_decoded: null, fps_presented: null,
  frames_dropped: null, freezes: null, width: null, height: null, rtt_ms: null, kbps_sent: null,
  kbps_received: null,
});
const cameraInfo = (label) => ({
  type: "camera", facingMode: "", label, deviceId: "", width: 0, height: 0, frameRate: 0,
});
"""

SCENARIOS = r"""
const out = {};

// 1. Held while the socket opens, flushed over it on READY, in order; the comm gets none of them.
{
  const c = controller();
  offer(c);
  const ws = FakeSocket.made.at(-1);
  out.url = ws.url;
  const where = [
    c.send({ type: "stopped", reason: "restarting" }),
    c.send(pageStats(1)),
    c.send(cameraInfo("x")),
    c.send(pageStats(2)),
    c.send({ type: "offer", sdp: "v=0", attempt: 1 }),
  ];
  ws.open();
  out.beforeProof = ws.sent.map((d) => Buffer.from(d).toString("hex"));
  out.heldBeforeReady = ws.messages();
  ws.ready();
  out.handshake = ws.sent.slice(0, 2).map((d) => Buffer.from(d).toString("hex"));
  out.where = where;
  out.flushed = ws.messages();
  out.commWhileOpening = c.model.sent.slice();
  out.afterReady = c.send({ type: "reconnecting", attempt: 1 });
  out.liveSocket = ws.messages().at(-1);
  // The live socket closes: the comm takes the next message; the same offer opens it again.
  ws.drop();
  out.afterDrop = c.send({ type: "gave_up", attempts: 5 });
  out.commAfterDrop = c.model.sent.slice();
  offer(c);
  out.reopenedAfterLive = FakeSocket.made.length === 2;
}

// 2. A socket that never opens: what it held goes over the comm in order; the same offer is
//    not tried again, a newer one is.
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  c.send({ type: "stopped", reason: "restarting" });
  c.send({ type: "offer", sdp: "v=0", attempt: 2 });
  FakeSocket.made[0].drop(); // no relay: a 404
  out.failedFlush = c.model.sent.slice();
  out.afterFail = c.send(pageStats(3));
  offer(c);
  out.retriedSame = FakeSocket.made.length;
  offer(c, "newer");
  out.triedNewer = FakeSocket.made.length;
}

// 3. A socket slow to open (a slow link busy with the video's first seconds): after
//    PIPE_OPEN_TIMEOUT_MS what waited goes over the comm, and so does what follows, while the
//    socket goes on opening; once live it carries the page's messages.
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  c.send(cameraInfo("y"));
  advance(PIPE_OPEN_TIMEOUT_MS + 1);
  out.timedOut = c.model.sent.slice();
  out.pipeAfterTimeout = c.pipe !== null && FakeSocket.made[0].readyState !== 3;
  out.lateSend = c.send({ type: "reconnecting", attempt: 1 });
  FakeSocket.made[0].open();
  FakeSocket.made[0].ready();
  out.lateLive = c.send({ type: "gave_up", attempts: 5 });
  out.lateSocket = FakeSocket.made[0].messages().at(-1);
  out.lateComm = c.model.sent.slice();
}

// 4. More than PIPE_QUEUE_MAX held: the socket is given up, all of them go over the comm in order.
{
  FakeSocket.made.length = 0;
  const c = controller();
  offer(c);
  for (let i = 0; i <= PIPE_QUEUE_MAX; i++) c.send({ type: "reconnecting", attempt: i });
  out.overflow = [c.model.sent.length, c.pipe === null, c.pipeQueue.length];
}

// 5. An offer over the comm while a cell runs: no timeout, a notice; the count restarts at the
//    cell's end. Over the socket: the timeout runs.
async function answerTimeout(busy, viaSocket) {
  FakeSocket.made.length = 0;
  const c = controller({ kernel_busy: busy });
  if (viaSocket) {
    offer(c);
    FakeSocket.made[0].open();
    FakeSocket.made[0].ready();
  }
  c.setStatus("connecting", "Connecting to the kernel…");
  const link = new RtcLink(c, c.generation);
  c.link = link;
  const result = { error: null, notices: [c.notice] };
  link.offer("v=0").catch((err) => (result.error = err.reason));
  result.notices.push(c.notice);
  advance(ANSWER_TIMEOUT_MS * 2);
  await tick();
  result.afterTwoTimeouts = result.error;
  c.model.set("kernel_busy", false); // the cell ended
  result.notices.push(c.notice);
  advance(ANSWER_TIMEOUT_MS - 1000);
  await tick();
  result.justBefore = result.error;
  advance(2000);
  await tick();
  result.notices.push(c.notice);
  return result;
}
out.busyComm = await answerTimeout(true, false);
out.busySocket = await answerTimeout(true, true);

// 6. "auto" counts from the kernel's answer: nothing runs out before it, however late it comes.
async function autoDeadline(path, answerAfter) {
  const c = controller();
  const link = { answeredAt: 0, icePath: async () => path };
  const settled = { done: false };
  const result = { reason: null, at: null };
  const start = now;
  c.autoDeadline(link, settled).catch((err) => {
    result.reason = err.reason;
    result.at = now - start - answerAfter;
  });
  for (let t = 0; t < answerAfter + 10000 && result.reason === null; t += 50) {
    if (t === answerAfter) link.answeredAt = now;
    advance(50);
    await tick();
    await tick();
  }
  settled.done = true;
  return result;
}
out.autoNoPath = await autoDeadline(false, 20000);
out.autoSlowConnect = await autoDeadline(true, 20000);
console.log(JSON.stringify(out));
"""


PORT = 4242
PAGE_NONCE, KERNEL_NONCE = bytes([7]) * hs.NONCE_SIZE, bytes([9]) * hs.NONCE_SIZE
TOKENS = ("secret", "newer")


def proofs() -> str:
    """The fake kernel's proofs and the page's expected ones, by token, as JS constants."""
    kernel = {t: hs.kernel_proof(t, PORT, PAGE_NONCE, KERNEL_NONCE).hex() for t in TOKENS}
    page = {t: hs.page_proof(t, PORT, KERNEL_NONCE, PAGE_NONCE).hex() for t in TOKENS}
    return f"const KERNEL_PROOFS = {json.dumps(kernel)};\nconst PAGE_PROOFS = {json.dumps(page)};\n"


def run_scenarios(source: str, scenarios: str = SCENARIOS) -> Any:
    """Runs the page's internals (`source`) after the stubs, then `scenarios` (which print one JSON
    line)."""
    script = f"{proofs()}{STUBS}\n{source}\n(async () => {{\n{scenarios}\n}})();\n"
    done = subprocess.run(
        [page_bundle.node(), "--input-type=module", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    return dict(run_scenarios(CAMERA_JS.read_text()))


def test_messages_wait_for_the_opening_socket_in_order_and_take_it_once_ready(out: dict[str, Any]) -> None:
    assert out["url"] == "ws://127.0.0.1:8888/base/decart_nb/media/4242?token=tk"
    # Before the kernel's proof: the page's nonce only (never the token).
    assert out["beforeProof"] == [bytes([hs.NONCE]).hex() + PAGE_NONCE.hex()]
    assert out["heldBeforeReady"] == []
    assert out["where"] == ["queued"] * 5
    # The newest page_stats replaced the older one; the order is otherwise the order sent.
    assert out["flushed"] == ["stopped", "camera", "page_stats", "offer"]
    # The kernel proved itself: the page's proof, as Python's HMAC makes it, went before them.
    page_proof = hs.page_proof("secret", PORT, KERNEL_NONCE, PAGE_NONCE)
    assert out["handshake"][1] == bytes([hs.PROOF]).hex() + page_proof.hex()
    assert out["commWhileOpening"] == []
    assert out["afterReady"] == "socket" and out["liveSocket"] == "reconnecting"
    assert out["afterDrop"] == "comm" and out["commAfterDrop"] == ["gave_up"]
    assert out["reopenedAfterLive"], "the same offer did not reopen a socket that had been live"


def test_a_socket_that_never_opens_hands_everything_to_the_comm_and_is_not_retried(
    out: dict[str, Any],
) -> None:
    assert out["failedFlush"] == ["stopped", "offer"]
    assert out["afterFail"] == "comm"
    assert out["retriedSame"] == 1, "the offer of a socket that never opened was tried again"
    assert out["triedNewer"] == 2, "a newer offer was not tried"
    assert out["timedOut"] == ["camera"] and out["pipeAfterTimeout"], "a slow socket was given up"
    assert out["lateSend"] == "comm", "a message waited for a socket slower than PIPE_OPEN_TIMEOUT_MS"
    assert out["lateLive"] == "socket" and out["lateSocket"] == "gave_up", "the late socket was not used"
    assert out["lateComm"] == ["camera", "reconnecting"]
    assert out["overflow"][0] == 65 and out["overflow"][1] and out["overflow"][2] == 0


def test_an_offer_over_the_comm_waits_for_a_running_cell_and_says_so(out: dict[str, Any]) -> None:
    busy = out["busyComm"]
    assert busy["afterTwoTimeouts"] is None, "the answer timed out while a cell ran"
    assert busy["notices"][1] == "Waiting for the kernel (a cell is running)…", busy
    assert busy["notices"][2] == "Connecting to the kernel…", busy  # the cell ended
    assert busy["justBefore"] is None, "the count did not start again at the cell's end"
    # Then the timeout runs out, with the reason the transport message would carry.
    assert busy["error"] == "the kernel did not answer within 15 s", busy
    socket = out["busySocket"]
    assert socket["notices"][1] == "Connecting to the kernel…", "a socket offer waits for no cell"
    assert socket["afterTwoTimeouts"] == "the kernel did not answer within 15 s", socket


def test_auto_counts_webrtcs_time_from_the_answer_not_the_offer(out: dict[str, Any]) -> None:
    # The answer came 20 s after the offer (a busy kernel): no fallback before it.
    no_path, slow = out["autoNoPath"], out["autoSlowConnect"]
    assert no_path["reason"] == "UDP blocked: WebRTC found no network path", no_path
    assert 1000 <= no_path["at"] <= 1200, no_path  # AUTO_ICE_MS after the answer
    assert slow["reason"] == "WebRTC did not connect within 6 s", slow
    assert 6000 <= slow["at"] <= 6200, slow  # AUTO_CONNECT_MS after the answer


HMAC_CASES = r"""
const out = CASES.map(([key, message]) => [
  Buffer.from(sha256(hex(message))).toString("hex"),
  Buffer.from(hmacSha256(hex(key), hex(message))).toString("hex"),
]);
console.log(JSON.stringify(out));
"""


def test_the_pages_sha256_and_hmac_agree_with_pythons() -> None:
    """The page has its own SHA-256 (no crypto.subtle on a plain-http page): against hashlib and
    hmac, on keys and messages around the block sizes, empty ones, and keys over 64 bytes."""
    lengths = (0, 1, 3, 31, 32, 55, 56, 63, 64, 65, 100, 119, 120, 127, 128, 129, 200, 1000)
    cases = [
        (bytes(range(k % 256)), bytes((i * 7 + 3) % 256 for i in range(m)))
        for k, m in zip(lengths, reversed(lengths), strict=True)
    ]
    cases += [(b"k" * 200, b""), (b"", b"msg"), (b"token" * 13, b"x" * 64)]
    hexed = [[key.hex(), message.hex()] for key, message in cases]
    script = f"const CASES = {json.dumps(hexed)};\n" + HMAC_CASES
    got = run_scenarios(CAMERA_JS.read_text(), script)
    want = [[hashlib.sha256(m).hexdigest(), hmac.new(k, m, hashlib.sha256).hexdigest()] for k, m in cases]
    assert got == want


FIGURE_CASES = r"""
const out = {};
// The selected candidate pair's round trip, in ms (Chromium names it on the transport).
const report = (entries) => new Map(entries.map((e) => [e.id, e]));
out.selected = roundTripMs(report([
  { id: "T", type: "transport", selectedCandidatePairId: "B" },
  { id: "A", type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: 0.9 },
  { id: "B", type: "candidate-pair", currentRoundTripTime: 0.0125 },
]));
out.nominated = roundTripMs(report([
  { id: "A", type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: 0.004 },
]));
out.none = roundTripMs(report([{ id: "A", type: "candidate-pair", state: "in-progress" }]));

// A WebRTC page's stats: the bitrates from two samples' bytes, and the round trip.
const sent = [];
let bytes = 0;
const pc = {
  getStats: async () => report([
    { id: "o", type: "outbound-rtp", kind: "video", framesSent: bytes / 1000, bytesSent: bytes },
    { id: "i", type: "inbound-rtp", kind: "video", framesReceived: 1, bytesReceived: bytes / 2 },
    { id: "p", type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: 0.02 },
  ]),
};
const link = { pc, lastStats: null, host: { presentedFrames: async () => 0, send: (m) => sent.push(m) } };
await RtcLink.prototype.samplePageStats.call(link, pc);
now += 2000;
bytes = 250000; // 2 Mbit over 2 s out, half of it in
await RtcLink.prototype.samplePageStats.call(link, pc);
out.pageStats = sent;
out.schema = sent.map((m) => schemaMismatch(PAGE_MESSAGES, m));

// The status line shows the kernel's figures as they come: names, values, titles.
class El {
  constructor() { this.children = []; this.dataset = {}; this.title = ""; this.text = ""; }
  append(...items) { this.children.push(...items); }
  replaceChildren() { this.children = []; }
  get textContent() {
    return this.children.map((c) => (typeof c === "string" ? c : c.textContent)).join("") + this.text;
  }
  set textContent(v) { this.text = v; }
}
globalThis.document.createElement = () => new El();
const line = new El();
showFigures(line, [["camera", "1280×720", "the camera"], ["round trip", "–", "not measured"]]);
out.line = line.textContent;
out.titles = line.children.filter((c) => typeof c !== "string").map((c) => [c.dataset.figure, c.title]);
const kept = line.children[0];
showFigures(line, [["camera", "1280×720", "the camera"], ["round trip", "–", "not measured"]]);
out.keptNodes = line.children[0] === kept;
console.log(JSON.stringify(out));
"""


def test_the_page_measures_webrtcs_round_trip_and_bitrates_and_shows_the_kernels_figures() -> None:
    got = run_scenarios(CAMERA_JS.read_text(), FIGURE_CASES)
    assert got["selected"] == 12.5, "not the selected pair's round trip"
    assert got["nominated"] == 4.0 and got["none"] is None
    last = got["pageStats"][-1]
    assert last["rtt_ms"] == 20.0
    assert last["kbps_sent"] == 1000.0 and last["kbps_received"] == 500.0, last
    assert got["schema"] == [""], "page_stats differs from its schema"
    assert got["line"] == "camera 1280×720 · round trip –"
    assert got["titles"] == [["camera", "the camera"], ["round trip", "not measured"]]
    assert got["keptNodes"], "unchanged figures were rebuilt (a hover tooltip would flicker)"
