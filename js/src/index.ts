// @ts-nocheck
// decart_nb camera widget: the page's camera goes to the kernel over WebRTC, the model's output
// comes back into a <video>. One self-contained ES module: anywidget loads it from a Blob URL, so
// there are no imports and nothing is fetched from a CDN.
//
// One Controller per widget model; every view of the model shows the same streams, so displaying
// the widget twice never opens the camera twice. Its parts, one concern each:
//   CameraSource  getUserMedia with the model's constraints (exact, then ideal), switching, pause,
//                 the track's `ended` (unplugged, permission revoked)
//   PagePipe      the page socket (decart_nb_server relays it to the kernel's media loop): the
//                 page's messages, read by the kernel while a cell runs, and the codec's media
//   RtcLink       transport "webrtc": RTCPeerConnection, offer/answer (no trickle: we wait for
//                 ICE gathering), codec preference, playout target, page stats
//   CodecLink     transport "comm" (or "auto" where WebRTC finds no path): VP8 video over the comm
//                 through WebCodecs, at most RATE.IN_FLIGHT chunks in flight each way, sized by a
//                 RateController
//   CommLink      the same as JPEG frames, where WebCodecs cannot do VP8 (or transport "jpeg")
//   Controller    owns the status (TRANSITIONS below), picks the transport, retries, talks to the
//                 kernel (PAGE_MESSAGES / KERNEL_MESSAGES; over the page socket while it is live,
//                 else the comm) and renders the views
//   View          one rendering of the widget

const BACKOFF_S = [1, 2, 4, 8, 8]; // five reconnection attempts
// The kernel's answer to an offer. An offer over the comm waits for a running cell (the kernel
// reads the comm between cells): while the model says `kernel_busy`, this does not run out.
const ANSWER_TIMEOUT_MS = 15000;
const CONNECT_TIMEOUT_MS = 10000;
const ICE_GATHER_TIMEOUT_MS = 5000;
const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often recovers by itself; "failed" does not
const LAST_VIEW_GRACE_MS = 1000; // a view re-rendered at once (cell moved) keeps the camera
// "auto": WebRTC gets this long from the kernel's answer to connect, then the comm takes over (a
// slow answer is a busy kernel, not the network).
const AUTO_CONNECT_MS = 6000;
// "auto" also gives up on WebRTC when ICE has found no working candidate pair this long after the
// kernel's answer: where UDP is blocked no pair ever works, and the comm takes over within ~1.5 s
// of the offer instead of 6 (issue 12). On a network that passes UDP (or relays it) the first
// pair succeeds within a few round trips, and DTLS then gets the rest of AUTO_CONNECT_MS. We do
// not start the comm at once and upgrade later: the kernel keeps one transport per page (a comm
// transport drops the page's peer), and the camera would be encoded twice meanwhile.
const AUTO_ICE_MS = 1000;
const FRAME_ACK_TIMEOUT_MS = 3000; // a lost ack must not stall the camera for good
const JPEG_QUALITY = 0.7;
const PAGE_STATS_MS = 2000; // how often the page tells the kernel what it sends, receives and shows
const CAMERA_JITTER_MS = 10; // a camera frame this much early still counts as the next period's
// The page socket: messages wait for READY at most this long, then the comm carries them while the
// socket goes on opening (on a slow link busy with the video's first seconds, the upgrade and the
// handshake's two round trips can take longer; the video moves to the socket once it is live).
const PIPE_OPEN_TIMEOUT_MS = 5000;
const PIPE_QUEUE_MAX = 64; // messages held while the socket opens; more: the comm takes them all
const PIPE_MESSAGE_MAX = 256 * 1024; // the kernel's MAX_MESSAGE (media_socket.py): larger goes by the comm
// The kernel's ICE servers (TURN credentials among them) come in an `ice_servers` message, never in
// the widget's state (a saved notebook keeps that). A peer waits this long for them (not counting
// a running cell that holds the page's request), then the attempt fails and says so.
const ICE_SERVERS_WAIT_MS = 5000;
const SPENT_SOCKETS_MAX = 16; // forgotten offers remembered (a late resend comes within seconds)
const KERNEL_BUSY_NOTICE = "Waiting for the kernel (a cell is running)…";
const TRANSPORT_TEXT = { webrtc: "WebRTC", codec: "comm (VP8)", socket: "media socket (VP8)", comm: "comm (JPEG)" };
const TRANSPORT_TITLE = {
  codec: "WebRTC is not used: the video travels over the notebook's comm as VP8",
  socket: "WebRTC is not used: the video travels as VP8 over a websocket of its own, relayed by the Jupyter server",
  comm: "WebRTC is not used: frames travel over the notebook's comm as JPEG (slower)",
};

const STATE_TEXT = {
  disconnected: "disconnected",
  connecting: "connecting",
  connected: "connected",
  generating: "generating",
  reconnecting: "reconnecting",
};

// Shown at once, before the kernel's message (which says what to do) arrives.
const CAMERA_HINTS = {
  NotAllowedError: "The browser blocked the camera.",
  SecurityError: "The browser blocked the camera.",
  NotFoundError: "No camera was found.",
  NotReadableError: "The camera is busy or failed to start.",
  AbortError: "The camera is busy or failed to start.",
  OverconstrainedError: "The camera cannot deliver the model's size or frame rate.",
  CameraEnded: "The camera stopped: it was unplugged, or the browser's permission was revoked.",
};

// Test and debugging hook: the live controllers of this page. `strict: true` makes a refused
// status transition throw instead of logging.
const registry = (globalThis.__decartNB ??= { controllers: new Set() });

const PREVIEW_EMPTY = {
  starting: "Asking for the camera…",
  paused: "Camera paused",
  "camera-error": "Camera unavailable",
  stopped: "Camera off",
};

// -- messages -------------------------------------------------------------------------------------
// The page's side of the message schema; the kernel's side is decart_nb/widgets/messages.py, and
// tests/test_messages.py checks that both name the same messages with the same fields. Each
// message is a JSON object with a `type` and these fields; a frame's JPEG travels as its one buffer.
//
// Page -> kernel:
/** @typedef {{type: "offer", sdp: string, attempt: number}} OfferMessage */
/** @typedef {{type: "camera", facingMode: string, label: string, deviceId: string, width: number, height: number, frameRate: number}} CameraMessage */
/** @typedef {{type: "devices", devices: {deviceId: string, label: string}[]}} DevicesMessage */
/** @typedef {{type: "camera_error", name: string, message: string}} CameraErrorMessage getUserMedia failed */
/** @typedef {{type: "camera_ended", label: string}} CameraEndedMessage the track ended mid-stream */
/** @typedef {{type: "reconnecting", attempt: number}} ReconnectingMessage */
/** @typedef {{type: "gave_up", attempts: number}} GaveUpMessage */
/** @typedef {{type: "stopped", reason: string}} StoppedMessage */
/** @typedef {{type: "transport", transport: "webrtc" | "codec" | "comm", codec: string, reason: string}} TransportMessage codec: "vp8"/"h264" (WebRTC), "vp8" (codec), "jpeg" (comm); reason: why not WebRTC ("" on WebRTC) */
/** @typedef {{type: "frame", seq: number}} FrameMessage a camera frame over the comm (buffer: JPEG) */
/** @typedef {{type: "frame_ack", seq: number}} FrameAckMessage either way: frame `seq` arrived */
/** @typedef {{type: "chunk", seq: number, key: boolean, width: number, height: number}} ChunkMessage either way: one VP8 frame (buffer: the EncodedVideoChunk's bytes) */
/** @typedef {{type: "chunk_ack", seq: number}} ChunkAckMessage either way, once the chunk is decoded */
/** @typedef {{type: "keyframe"}} KeyframeMessage either way: "my decoder needs a key frame" */
/** @typedef {{type: "want_ice_servers"}} WantIceServersMessage send me the ICE servers (the model counts them) */
/** @typedef {{type: "page_stats", fps_sent: ?number, fps_received: ?number, fps_decoded: ?number, fps_presented: ?number, frames_dropped: ?number, freezes: ?number, width: ?number, height: ?number, rtt_ms: ?number, kbps_sent: ?number, kbps_received: ?number}} PageStatsMessage rtt_ms, kbps_*: WebRTC's (null over the comm) */
// Kernel -> page:
/** @typedef {{type: "answer", attempt: number, sdp: string}} AnswerMessage */
/** @typedef {{type: "answer_error", attempt: number, error: {code: string, message: string}}} AnswerErrorMessage */
/** @typedef {{type: "restart"}} RestartMessage re-request the camera and renegotiate */
/** @typedef {{type: "stop"}} StopMessage the session disconnected */
/** @typedef {{type: "frame", seq: number, width: number, height: number}} OutputFrameMessage (buffer: JPEG) */
/** @typedef {{type: "ice_servers", servers: {urls: string | string[], username?: string, credential?: string}[]}} IceServersMessage the RTCPeerConnection's iceServers */

const schema = (table) => Object.freeze(Object.fromEntries(Object.entries(table).map(([k, v]) => [k, Object.freeze(v)])));

// Each message the page sends: its fields besides `type`.
const PAGE_MESSAGES = schema({
  offer: ["sdp", "attempt"],
  camera: ["facingMode", "label", "deviceId", "width", "height", "frameRate"],
  devices: ["devices"],
  camera_error: ["name", "message"],
  camera_ended: ["label"],
  reconnecting: ["attempt"],
  gave_up: ["attempts"],
  stopped: ["reason"],
  transport: ["transport", "codec", "reason"],
  frame: ["seq"],
  frame_ack: ["seq"],
  chunk: ["seq", "key", "width", "height"],
  chunk_ack: ["seq"],
  keyframe: [],
  page_stats: ["fps_sent", "fps_received", "fps_decoded", "fps_presented", "frames_dropped", "freezes", "width", "height", "rtt_ms", "kbps_sent", "kbps_received"],
  want_ice_servers: [],
});

// Each message the page handles: its fields besides `type`.
const KERNEL_MESSAGES = schema({
  answer: ["attempt", "sdp"],
  answer_error: ["attempt", "error"],
  restart: [],
  stop: [],
  frame: ["seq", "width", "height"],
  frame_ack: ["seq"],
  chunk: ["seq", "key", "width", "height"],
  chunk_ack: ["seq"],
  keyframe: [],
  media_socket: ["port", "token"],
  ice_servers: ["servers"],
});

// The fields `msg` lacks or has beyond its schema entry ("" when it matches).
function schemaMismatch(table, msg) {
  const fields = table[msg.type];
  if (!fields) return `unknown type ${JSON.stringify(msg.type)}`;
  const keys = Object.keys(msg).filter((k) => k !== "type");
  const odd = [...fields.filter((f) => !keys.includes(f)), ...keys.filter((k) => !fields.includes(k))];
  return odd.length ? `${msg.type}: fields ${odd.join(", ")} differ from the schema` : "";
}

// -- status: the page's state diagram -------------------------------------------------------------
// Each status, the statuses it may go to, and what makes it go there. setStatus() refuses any
// other move (console.error, the status stays; it throws when __decartNB.strict is set); staying
// in a status with a new notice is always allowed. "stopped" is reachable from every status.
//
//                start (camera)            camera open           peer connected / first comm frame
// idle, stopped ---------------> starting -------------> connecting -------------------------------> live
//    |    \____ start (no camera) ____________________^  ^    |  attempt fails                        |
//    | start (hidden)            ^ visible   "auto" falls |    v                 peer failed / lost   |
//    +----------------> paused --+              back  reconnecting <----------------------------------+
//                                                        |  peer connected again --> live
// page hidden:                       starting, connecting, live, reconnecting --> paused
// getUserMedia or a switch fails, the track ends:
//                                    starting, connecting, live, reconnecting --> camera-error
// camera-error --start (Try again, a new view)--> starting | paused           any --stop--> stopped
const TRANSITIONS = Object.freeze({
  idle: Object.freeze({
    starting: "start: ask for the camera",
    paused: "start while the page is hidden",
    connecting: "start without a camera (mode receive)",
    stopped: "stop",
  }),
  starting: Object.freeze({
    connecting: "the camera opened: connect",
    live: "resumed with the transport up",
    reconnecting: "the peer was lost while the camera reopens",
    paused: "the page was hidden",
    "camera-error": "getUserMedia failed",
    stopped: "stop",
  }),
  paused: Object.freeze({
    starting: "the page is visible again: reopen the camera",
    connecting: "started while hidden: connect anyway",
    reconnecting: "the peer was lost while hidden",
    stopped: "stop",
  }),
  connecting: Object.freeze({
    live: "the peer connected, or the first frame crossed the comm",
    reconnecting: "the attempt failed or the peer was lost",
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "stop, or the kernel is disconnected",
  }),
  live: Object.freeze({
    reconnecting: "the peer failed, or stayed disconnected",
    connecting: '"auto" fell back to the comm',
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "stop",
  }),
  reconnecting: Object.freeze({
    live: "the peer connected again",
    connecting: '"auto" fell back to the comm',
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "gave up, or stop",
  }),
  "camera-error": Object.freeze({
    starting: "start again (a new view)",
    paused: "start again while the page is hidden",
    stopped: "stop, or Try again (which then starts)",
  }),
  stopped: Object.freeze({
    starting: "start: ask for the camera",
    paused: "start while the page is hidden",
    connecting: "start without a camera",
  }),
});

// Statuses in which the page has not started, or has stopped trying (Try again starts it).
const IDLE_STATUSES = new Set(["idle", "stopped", "camera-error"]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class CameraError extends Error {
  constructor(err) {
    super(err && err.message ? err.message : String(err));
    this.name = (err && err.name) || "Error";
  }
}

function iceGathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ms); // send what we have: host candidates come first
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

// Why "auto" leaves WebRTC, for the `transport` message and the status line: an error's `reason`
// when it has one ("UDP blocked: WebRTC found no network path"), else its message. The part before
// the first ": " or "; " is the short form the status line shows; the title shows it all.
function fallbackError(message, reason) {
  return Object.assign(new Error(message), { reason });
}

function fallbackReason(err) {
  return err?.reason || `WebRTC failed: ${err?.message || err}`;
}

function shortReason(reason) {
  return reason.split(/: |; /)[0];
}

// -- camera ---------------------------------------------------------------------------------------
// The camera: getUserMedia with the model's size and rate (exact first, then as a preference),
// failures as CameraError (the kernel maps their names to CAMERA_* codes), and the track's `ended`.
class CameraSource {
  constructor(model, onEnded) {
    this.model = model;
    this.onEnded = onEnded; // (track): the camera stopped by itself (unplugged, permission revoked)
    this.stream = null;
    this.facing = ""; // the camera's own facingMode ("" when it does not say)
    this.paused = false; // released while the page is hidden
    this.unlisten = null;
  }

  get track() {
    return this.stream ? this.stream.getVideoTracks()[0] : null;
  }

  constraints(ideal) {
    const m = this.model;
    const [w, h, fps] = [m.get("width"), m.get("height"), m.get("fps")];
    const video = ideal
      ? { width: { ideal: w }, height: { ideal: h }, frameRate: { ideal: fps } }
      : { width: { exact: w }, height: { exact: h }, frameRate: { ideal: fps, max: fps } };
    const id = m.get("device_id");
    if (id) video.deviceId = ideal ? { ideal: id } : { exact: id };
    else video.facingMode = { ideal: m.get("facing_mode") };
    return { video, audio: false };
  }

  async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new CameraError({ name: "SecurityError", message: "No camera API: open the notebook over https or from localhost." });
    }
    try {
      return await navigator.mediaDevices.getUserMedia(this.constraints(false));
    } catch (err) {
      if (err.name !== "OverconstrainedError") throw new CameraError(err);
    }
    try {
      return await navigator.mediaDevices.getUserMedia(this.constraints(true));
    } catch (err) {
      throw new CameraError(err);
    }
  }

  // Another camera while this one is open. Many phones open one camera at a time: when the new
  // one is busy, release the old one and ask again.
  async reopen() {
    try {
      return await this.open();
    } catch (err) {
      if (err.name !== "NotReadableError") throw err;
    }
    this.release();
    return await this.open();
  }

  // Makes `stream` the camera (releasing the previous one); returns what the kernel is told.
  use(stream) {
    this.release();
    this.stream = stream;
    const track = this.track;
    const ended = () => this.stream === stream && this.onEnded(track);
    track.addEventListener("ended", ended);
    this.unlisten = () => track.removeEventListener("ended", ended);
    const s = track.getSettings();
    this.facing = s.facingMode || "";
    return {
      facingMode: this.facing,
      label: track.label,
      deviceId: s.deviceId || "",
      width: s.width || 0,
      height: s.height || 0,
      frameRate: s.frameRate || 0,
    };
  }

  release() {
    this.unlisten?.();
    this.unlisten = null;
    stopStream(this.stream); // the camera light goes off (stop() itself fires no `ended`)
    this.stream = null;
  }

  async devices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return null;
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((d) => d.kind === "videoinput").map((d) => ({ deviceId: d.deviceId, label: d.label }));
  }
}

// -- transports -----------------------------------------------------------------------------------
// A transport carries the camera to the kernel and the output back. The Controller holds one at a
// time (`controller.link`) and uses only this interface (RtcLink, CodecLink, CommLink):
//   kind                   "webrtc" | "codec" | "comm": the "transport" message and the view's label
//   codec                  what the video is coded as ("vp8", "h264", "jpeg"), for the same message
//   drawsFrames            true: the output is drawn frame by frame on a canvas (`output`);
//                          false: it plays in a <video> from the MediaStream `remote`
//   start(): Promise       connect (again); resolves once frames can flow, rejects if they cannot
//   reset()                drop the current connection (start() makes a new one)
//   close()                for good
//   setTrack(track|null)   the camera changed (switched, paused, resumed): Promise
//   message(msg, buffers)  a kernel message for this transport: true when it was one
//   up                     frames flow now
//   output, received       the newest output frame and how many arrived (drawsFrames only)
//   pipeChanged()          optional: the page socket went live or away (CodecLink)
//   kernelBusyChanged()    optional: the model's kernel_busy, or the socket, changed (RtcLink)
// It calls back its host (the Controller): carrying(link) once it carries the frames,
// linkLive(link) when frames flow, linkLost(link) when the connection is gone, outputChanged()
// and showFrame(frame) for the output, waitingForKernel(bool) while an offer waits for a cell;
// it reads host.model, host.stream, host.paused, host.camera, host.generation (bumped: stale work
// backs off) and host.pipe / host.pipeLive (the page socket, the Controller's); it
// sends through host.send and asks host.render() to redraw.

// Frames over the comm: the camera goes to the kernel as JPEG drawn at the model's size, the
// output comes back as JPEG. One frame in flight each way: the next camera frame leaves after the
// kernel's ack, and we ack each output frame once it is decoded, so the newest frame always wins.
class CommLink {
  constructor(host, gen) {
    this.host = host;
    this.gen = gen;
    this.kind = "comm";
    this.codec = "jpeg";
    this.drawsFrames = true;
    this.remote = null;
    this.seq = 0;
    this.waiting = null; // the camera frame in flight: {seq, resolve, timer}
    this.output = null; // the newest output frame, an ImageBitmap
    this.closed = false;
    this.sent = 0; // camera frames sent
    this.received = 0; // output frames received
  }

  get live() {
    return !this.closed && this.gen === this.host.generation;
  }

  get up() {
    return this.sent > 0;
  }

  async start() {
    this.host.carrying(this);
    if (this.host.camera) this.sendCamera().catch((err) => console.warn("decart_nb: comm camera loop stopped", err));
  }

  reset() {}

  async setTrack() {} // the camera loop reads host.stream for each frame

  message(msg, buffers) {
    if (msg.type === "frame") this.frame(msg, buffers);
    else if (msg.type === "frame_ack") this.acked(msg.seq);
    else return false;
    return true;
  }

  async sendCamera() {
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d");
    let inFlight = Promise.resolve();
    try {
      while (this.live) {
        const stream = this.host.stream;
        if (!stream || this.host.paused) {
          await sleep(100);
          continue;
        }
        if (video.srcObject !== stream) {
          video.srcObject = stream;
          await video.play().catch((err) => console.warn("decart_nb: camera video did not start", err));
        }
        if (video.readyState < 2) {
          await sleep(20);
          continue;
        }
        const m = this.host.model;
        const [w, h, fps] = [m.get("width"), m.get("height"), m.get("fps")];
        const started = performance.now();
        if (canvas.width !== w || canvas.height !== h) [canvas.width, canvas.height] = [w, h];
        ctx.drawImage(video, 0, 0, w, h);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
        // This frame was encoded while the previous one travelled: send it once that one is acked.
        await inFlight;
        if (!blob || !this.live) continue;
        inFlight = this.sendFrame(await blob.arrayBuffer());
        const rest = started + 1000 / fps - performance.now();
        if (rest > 0) await sleep(rest);
      }
    } finally {
      video.srcObject = null;
    }
  }

  sendFrame(buffer) {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.acked(seq, false), FRAME_ACK_TIMEOUT_MS);
      this.waiting = { seq, resolve, timer, sentAt: performance.now() }; // sentAt: the bench reads send->ack
      if (this.host.send({ type: "frame", seq }, [buffer])) this.sent += 1;
      else this.acked(seq, false);
    });
  }

  // `byKernel` false: given up waiting (a lost ack, or closing), not a sign of life.
  acked(seq, byKernel = true) {
    const waiting = this.waiting;
    if (!waiting || waiting.seq !== seq) return;
    this.waiting = null;
    clearTimeout(waiting.timer);
    waiting.resolve();
    if (byKernel && this.live) this.host.linkLive(this);
  }

  async frame(msg, buffers) {
    if (!this.live || !buffers || !buffers.length) return;
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(new Blob([buffers[0]], { type: "image/jpeg" }));
    } catch (err) {
      console.warn("decart_nb: an output frame did not decode", err);
    }
    if (!this.live) return bitmap?.close();
    this.host.send({ type: "frame_ack", seq: msg.seq });
    if (!bitmap) return;
    this.output?.close();
    this.output = bitmap;
    this.received += 1;
    this.host.linkLive(this);
    this.host.showFrame(bitmap);
  }

  close() {
    this.closed = true;
    if (this.waiting) this.acked(this.waiting.seq, false);
    this.output?.close();
    this.output = null;
  }
}

// -- video over the comm: VP8 through WebCodecs ----------------------------------------------------
// Rate control, the twin of decart_nb/media/rate.py (its docstring is the spec: same rules,
// constants and order of steps, so both senders behave alike; tests/test_rate.py checks the
// constants). Inputs per acked chunk: its bytes and its send->ack seconds; outputs: kbps, fps and
// the rung (resolution) to encode at.
const RATE = Object.freeze({
  LADDER: Object.freeze([1.0, 0.75, 0.5, 0.375, 0.25]), // fractions of the model's width and height
  IN_FLIGHT: 2, // chunks a sender may have unacked: the second travels while the first's ack returns
  DECREASE: 0.85, // LATE_ACKS chunks in a row over FULL of the budget: the link is full or queueing
  INCREASE: 1.05, // a chunk's own transmission under HEADROOM of what the budget leaves: well under
  LOST_DECREASE: 0.5,
  HEADROOM: 0.5,
  FULL: 0.75, // a chunk's own transmission over this share of the budget counts as late
  QUEUE_S: 0.05, // a latency this much over its least of the last BASE_S is a queue: decrease
  BASE_S: 10.0,
  QUEUE_CUT_EVERY_S: 1.0, // the latency follows a cut slowly: one cut a second
  FIT_ACKS: 40, // the acks rule 0 fits the latency to
  LATE_ACKS: 2,
  LATENCY_FACTOR: 1.25, // IN_FLIGHT frame periods are at least this many latencies
  LATENCY_QUANTILE: 0.75, // of the acks' residuals: quick acks among slow ones do not make the latency
  MIN_BPP: 0.1, // bits per pixel per frame a rung needs
  UP_MARGIN: 1.25, // a step up needs MIN_BPP * UP_MARGIN, so a boundary does not flip rungs
  MAX_BPP: 0.2, // max kbps: this at the full size and the model's fps
  RUNG_HOLD_S: 2.0,
  ENCODE_FRAMES: 10, // rule 4 takes the median of this many encode times
  ENCODE_SHARE: 0.5, // of a frame period, the most a frame's encode may take
  MIN_FPS: 5.0,
  MIN_KBPS: 50.0,
  START_KBPS: 400.0,
});

const even = (x) => Math.max(2, Math.floor(Math.floor(x) / 2) * 2);

function ladder(width, height) {
  return RATE.LADDER.map((f) => Object.freeze({ width: even(width * f), height: even(height * f) }));
}

class RateController {
  constructor(width, height, fps, { startKbps = RATE.START_KBPS, minKbps = RATE.MIN_KBPS, maxKbps = null } = {}) {
    this.rungs = ladder(width, height);
    this.modelFps = fps;
    this.minKbps = minKbps;
    this.maxKbps = maxKbps ?? (RATE.MAX_BPP * width * height * fps) / 1000;
    this.kbps = this.clamp(startKbps);
    this.latency = 0; // rule 0: what every chunk's send->ack holds whatever its size
    this.acks = []; // the last FIT_ACKS [nbytes, seconds]
    this.lastAckAt = null; // `now` of the last ack
    this.latencies = []; // [now, latency] of the last BASE_S
    this.queueCutAt = -Infinity;
    this.encodes = []; // rule 4: the last ENCODE_FRAMES encode times at the current rung
    this.cpuCap = 0; // rule 4: the largest rung's index the encoder keeps up with
    this.fps = this.targetFps();
    this.rung = this.rungs[this.bestRung(this.rungs.length - 1)];
    this.rungSince = null; // null: the first ack may move the rung at once
    this.rungChanges = 0;
  }

  // Rules 0 and 1, then 2 and 3: a chunk of `nbytes` took `seconds` from send to ack (`now` in
  // seconds); true when the rung changed (the next frame is then a key frame).
  onAck(nbytes, seconds, now) {
    // A chunk sent before the last ack came may have waited for the one ahead: count from when
    // that one left the link (its ack less the latency), as if it had travelled alone.
    if (this.lastAckAt !== null && now - seconds < this.lastAckAt) {
      seconds = Math.min(seconds, now - this.lastAckAt + this.latency);
    }
    this.lastAckAt = now;
    this.acks.push([nbytes, seconds]);
    if (this.acks.length > RATE.FIT_ACKS) this.acks.shift();
    this.latency = this.fitLatency();
    const queued = this.queued(now);
    const period = 1 / this.fps;
    const budget = Math.min(RATE.IN_FLIGHT * period, this.latency + period);
    const recent = this.acks.slice(-RATE.LATE_ACKS);
    if (recent.length === RATE.LATE_ACKS && recent.every(([, t]) => t - this.latency > RATE.FULL * (budget - this.latency))) {
      this.kbps = this.clamp(this.kbps * RATE.DECREASE);
    } else if (queued) {
      if (now - this.queueCutAt >= RATE.QUEUE_CUT_EVERY_S) {
        this.queueCutAt = now;
        this.kbps = this.clamp(this.kbps * RATE.DECREASE);
      }
    } else if (seconds - this.latency < RATE.HEADROOM * (budget - this.latency)) {
      this.kbps = this.clamp(this.kbps * RATE.INCREASE);
    }
    return this.adapt(now);
  }

  // Rule 1's queue test: the latency is QUEUE_S over its least in the last BASE_S.
  queued(now) {
    this.latencies.push([now, this.latency]);
    while (this.latencies[0][0] < now - RATE.BASE_S) this.latencies.shift();
    return this.latency - Math.min(...this.latencies.map(([, lat]) => lat)) > RATE.QUEUE_S;
  }

  // Rule 0: the LATENCY_QUANTILE (upper quartile) of the residuals of send->ack over the least-squares line in bytes.
  fitLatency() {
    const n = this.acks.length;
    const meanB = this.acks.reduce((sum, [b]) => sum + b, 0) / n;
    const meanT = this.acks.reduce((sum, [, t]) => sum + t, 0) / n;
    let variance = 0;
    let covariance = 0;
    for (const [b, t] of this.acks) {
      variance += (b - meanB) ** 2;
      covariance += (b - meanB) * (t - meanT);
    }
    const slope = variance > 0 ? Math.max(0, covariance / variance) : 0;
    const residuals = this.acks.map(([b, t]) => t - slope * b).sort((x, y) => x - y);
    return Math.max(0, residuals[Math.floor(RATE.LATENCY_QUANTILE * (n - 1))]);
  }

  // Rule 4's input: a frame took `seconds` (wall clock) to encode at the current rung.
  onEncoded(seconds) {
    this.encodes.push(seconds);
    if (this.encodes.length > RATE.ENCODE_FRAMES) this.encodes.shift();
  }

  // The last chunk's ack never came; true when the rung changed.
  onLost(now) {
    this.kbps = this.clamp(this.kbps * RATE.LOST_DECREASE);
    return this.adapt(now);
  }

  adapt(now) {
    this.fps = this.targetFps();
    if (this.rungSince !== null && now - this.rungSince < RATE.RUNG_HOLD_S) return false;
    const current = this.rungs.indexOf(this.rung);
    this.cpuCap = this.cpuRung(current);
    const best = Math.max(this.bestRung(current), this.cpuCap);
    if (this.rungSince === null) this.rungSince = now;
    if (best === current) return false;
    this.rung = this.rungs[best];
    this.rungSince = now;
    this.rungChanges += 1;
    this.encodes = [];
    return true;
  }

  // Rule 4: the CPU cap, from the encodes at the current rung.
  cpuRung(current) {
    if (this.encodes.length < RATE.ENCODE_FRAMES) return this.cpuCap;
    const median = [...this.encodes].sort((x, y) => x - y)[Math.floor(this.encodes.length / 2)];
    const allowed = RATE.ENCODE_SHARE / this.fps;
    if (median > allowed) return Math.min(this.rungs.length - 1, current + 1);
    if (current > 0 && current <= this.cpuCap) {
      const [up, here] = [this.rungs[current - 1], this.rungs[current]];
      const larger = (median * (up.width * up.height)) / (here.width * here.height);
      if (larger < allowed / RATE.UP_MARGIN) return current - 1;
    }
    return this.cpuCap;
  }

  // Bits per pixel per frame at the current kbps and fps.
  bpp(rung) {
    return (this.kbps * 1000) / (rung.width * rung.height * this.fps);
  }

  bestRung(current) {
    for (let i = 0; i < this.rungs.length; i++) {
      const need = i < current ? RATE.MIN_BPP * RATE.UP_MARGIN : RATE.MIN_BPP;
      if (this.bpp(this.rungs[i]) >= need) return i;
    }
    return this.rungs.length - 1;
  }

  // The model's fps, but no more than the window allows (IN_FLIGHT / (LATENCY_FACTOR * latency))
  // and no more than gives the smallest rung MIN_BPP (fewer, better frames); at least MIN_FPS.
  targetFps() {
    const smallest = this.rungs[this.rungs.length - 1];
    const affordable = (this.kbps * 1000) / (RATE.MIN_BPP * smallest.width * smallest.height);
    let fps = Math.min(this.modelFps, affordable);
    if (this.latency > 0) fps = Math.min(fps, RATE.IN_FLIGHT / (RATE.LATENCY_FACTOR * this.latency));
    return Math.max(RATE.MIN_FPS, fps);
  }

  clamp(kbps) {
    return Math.min(this.maxKbps, Math.max(this.minKbps, kbps));
  }
}

// The camera's newest frame. MediaStreamTrackProcessor (Chromium) hands us every camera frame:
// we keep only the newest and close the others at once (the camera's frame pool must not run
// dry). Without it, a <video> of the track is read into a VideoFrame when one is wanted.
class FrameTap {
  constructor(track) {
    this.track = track;
    this.latest = null;
    this.latestAt = 0; // when the newest frame came (performance.now() ms)
    this.takenAt = 0; // when the frame take() returned last came
    this.closed = false;
    this.wake = null;
    this.reader = null;
    this.video = null;
    if (typeof MediaStreamTrackProcessor === "function") {
      this.reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      this.pump().catch((err) => this.closed || console.warn("decart_nb: camera frames stopped", err));
    } else {
      this.video = document.createElement("video");
      this.video.muted = true;
      this.video.playsInline = true;
      this.video.srcObject = new MediaStream([track]);
      this.video.play().catch((err) => console.warn("decart_nb: camera video did not start", err));
    }
  }

  async pump() {
    while (!this.closed) {
      const { value, done } = await this.reader.read();
      if (done) return;
      if (this.closed) return value.close();
      this.latest?.close();
      this.latest = value;
      this.latestAt = performance.now();
      this.wake?.();
    }
  }

  // The newest frame that came at `notBefore` (performance.now() ms) or later, which the caller
  // closes; waits for one. Paced by the camera's frames rather than by a timer, which fires late
  // on a busy page. null once closed.
  async take(notBefore = 0) {
    while (!this.closed) {
      if (this.latest && this.latestAt >= notBefore) {
        const frame = this.latest;
        this.latest = null;
        this.takenAt = this.latestAt;
        return frame;
      }
      const early = notBefore - performance.now();
      if (this.video && this.video.readyState >= 2 && early <= 0) {
        this.takenAt = performance.now();
        return new VideoFrame(this.video, { timestamp: Math.round(this.takenAt * 1000) });
      }
      if (this.video && early > 0) {
        await sleep(early);
        continue;
      }
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.video ? 20 : 200);
      });
      this.wake = null;
    }
    return null;
  }

  close() {
    this.closed = true;
    this.reader?.cancel().catch((err) => console.warn("decart_nb: closing the camera frames", err));
    this.latest?.close();
    this.latest = null;
    this.wake?.();
    if (this.video) this.video.srcObject = null;
  }
}

// Can this browser encode and decode VP8 with WebCodecs? Asked once per page.
let vp8Check = null;
function vp8Supported(width, height) {
  vp8Check ??= (async () => {
    if (![globalThis.VideoEncoder, globalThis.VideoDecoder, globalThis.EncodedVideoChunk].every((f) => typeof f === "function")) return false;
    try {
      const [enc, dec] = await Promise.all([
        VideoEncoder.isConfigSupported({ codec: "vp8", width, height, bitrate: 1e6, framerate: 30, latencyMode: "realtime" }),
        VideoDecoder.isConfigSupported({ codec: "vp8" }),
      ]);
      return !!(enc.supported && dec.supported);
    } catch (err) {
      console.warn("decart_nb: no WebCodecs VP8 here, JPEG over the comm instead", err);
      return false;
    }
  })();
  return vp8Check;
}

// Video over the comm: the camera leaves as VP8 chunks (WebCodecs), the output comes back as VP8
// chunks. At most RATE.IN_FLIGHT chunks in flight each way, each acked once decoded, so send->ack
// is the time the far end needs for a chunk; the RateController turns it into bitrate, frame rate
// and size. A VP8 delta frame can never be dropped, so we encode only what we send: once the
// window has room (and a frame period has passed), the newest camera frame is encoded and sent.
// The page socket (decart_nb_server relays it to the kernel's media loop), the widget's for as long
// as it lives: the page's messages, which the kernel reads there while a cell runs, and the codec
// transport's VP8 chunks, acks and key-frame requests without Jupyter's per-message headers and
// status messages. Each message is one binary websocket message: u8 kind, then (little-endian)
// CHUNK u32 seq, u8 key, u16 width, u16 height, the chunk's bytes; CHUNK_ACK u32 seq; KEYFRAME
// nothing; MESSAGE (page -> kernel) one page message as UTF-8 JSON. Kernel messages, frames with a
// buffer, and everything where there is no relay go over the comm.
//
// First each side proves it holds the token of the kernel's offer, without sending it
// (media_socket.py, socket_handshake.py): the kernel sends NONCE (32 random bytes), the page its
// own NONCE as soon as the socket opens; the kernel answers PROOF, HMAC-SHA256(token, "kernel" |
// u16le port | nonce_p | nonce_k), which the page checks before it sends anything else (whatever
// listens on a port the page was sent to must know the token first); then the page sends its
// PROOF, HMAC-SHA256(token, "page" | u16le port | nonce_k | nonce_p), and the kernel READY.
// Anything else before READY closes the socket.
const MEDIA = Object.freeze({ READY: 0, CHUNK: 1, CHUNK_ACK: 2, KEYFRAME: 3, MESSAGE: 4, NONCE: 5, PROOF: 6, HEADER: 10 });
const NONCE_SIZE = 32; // bytes of a nonce and of a proof

// The server's websocket URL for the kernel's media port, from the page's Jupyter config; null
// where there is none (Colab, VS Code: the comm carries everything there).
function mediaSocketUrl(port) {
  const config = document.getElementById("jupyter-config-data");
  if (!config || !Number.isInteger(port)) return null;
  let data;
  try {
    data = JSON.parse(config.textContent);
  } catch {
    return null;
  }
  const base = new URL(data.wsUrl || data.baseUrl || "/", location.href);
  if (base.protocol === "http:" || base.protocol === "https:") base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const url = new URL(`decart_nb/media/${port}`, base);
  if (data.token) url.searchParams.set("token", data.token);
  return url.href;
}

// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) of byte arrays, for the handshake: a page served
// over plain http (Jupyter on a LAN host) has no crypto.subtle. The messages are a few dozen bytes.
const SHA256_K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function sha256(bytes) {
  // The message, a 1 bit, zeros, and its length in bits (big-endian u64): whole 64-byte blocks.
  const blocks = Math.ceil((bytes.length + 9) / 64);
  const padded = new Uint8Array(blocks * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bytes.length / 0x20000000));
  view.setUint32(padded.length - 4, (bytes.length * 8) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  for (let block = 0; block < blocks; block++) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block * 64 + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1; // a Uint32Array keeps it mod 2^32
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    [a, b, c, d, e, f, g, k].forEach((x, i) => (h[i] += x));
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((x, i) => outView.setUint32(i * 4, x));
  return out;
}

function hmacSha256(key, message) {
  const block = new Uint8Array(64); // a key longer than a block is hashed first
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

// A handshake proof: HMAC-SHA256(token, role | u16le port | first | second).
function socketProof(token, role, port, first, second) {
  const head = new TextEncoder().encode(role);
  const message = new Uint8Array(head.length + 2 + first.length + second.length);
  message.set(head);
  new DataView(message.buffer).setUint16(head.length, port, true);
  message.set(first, head.length + 2);
  message.set(second, head.length + 2 + first.length);
  return hmacSha256(new TextEncoder().encode(token), message);
}

// Equal byte arrays, in a time that does not depend on where they differ.
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// One connection of the page socket. Its host (the Controller) hears pipeReady(pipe) once the
// kernel proved it holds the token and said READY, pipeLate(pipe) if that takes longer than
// PIPE_OPEN_TIMEOUT_MS (it goes on opening), pipeEnded(pipe, wasLive) once it is gone, and
// pipeMedia(msg, buffers) for the kernel's chunks, acks and requests. It never sends the token, nor anything but its nonce before the kernel's proof.
class PagePipe {
  constructor(url, port, token, host) {
    this.host = host;
    this.live = false;
    this.closed = false;
    this.port = port;
    this.token = token;
    this.nonce = crypto.getRandomValues(new Uint8Array(NONCE_SIZE)); // nonce_p
    this.kernelNonce = null; // nonce_k, once it came
    this.proven = false; // the kernel's proof checked: our proof went out, READY is next
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.ws.send(this.field(MEDIA.NONCE, this.nonce));
    this.ws.onmessage = (event) => this.received(event.data);
    this.ws.onclose = () => this.ended();
    this.ws.onerror = () => {}; // a close follows, and ended() says what it means
    this.late = false; // past PIPE_OPEN_TIMEOUT_MS and not live yet: nothing waits for it
    this.openTimer = setTimeout(() => {
      if (this.live || this.closed) return;
      console.info(`decart_nb: the page socket is not ready after ${PIPE_OPEN_TIMEOUT_MS / 1000} s: the comm carries the page's messages meanwhile`);
      this.late = true;
      this.host.pipeLate(this);
    }, PIPE_OPEN_TIMEOUT_MS);
  }

  field(kind, bytes) {
    const data = new Uint8Array(1 + bytes.length);
    data[0] = kind;
    data.set(bytes, 1);
    return data.buffer;
  }

  received(data) {
    if (this.closed) return;
    if (!this.live) return this.handshake(data);
    if (!(data instanceof ArrayBuffer) || data.byteLength < 1) return;
    const view = new DataView(data);
    const kind = view.getUint8(0);
    if (kind === MEDIA.CHUNK && data.byteLength > MEDIA.HEADER) {
      const msg = { type: "chunk", seq: view.getUint32(1, true), key: view.getUint8(5) === 1, width: view.getUint16(6, true), height: view.getUint16(8, true) };
      this.host.pipeMedia(msg, [new Uint8Array(data, MEDIA.HEADER)]);
    } else if (kind === MEDIA.CHUNK_ACK && data.byteLength >= 5) {
      this.host.pipeMedia({ type: "chunk_ack", seq: view.getUint32(1, true) });
    } else if (kind === MEDIA.KEYFRAME) {
      this.host.pipeMedia({ type: "keyframe" });
    } else {
      console.warn("decart_nb: an odd page socket message", kind, data.byteLength);
    }
  }

  // Before READY: the kernel's NONCE, its PROOF (checked: then ours goes out), READY, in that
  // order and nothing else; anything else closes the socket (the comm carries everything).
  handshake(data) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(0);
    const field = bytes.length === 1 + NONCE_SIZE ? bytes.subarray(1) : null;
    if (!this.kernelNonce && field && bytes[0] === MEDIA.NONCE) {
      this.kernelNonce = field.slice();
    } else if (this.kernelNonce && !this.proven && field && bytes[0] === MEDIA.PROOF) {
      const expected = socketProof(this.token, "kernel", this.port, this.nonce, this.kernelNonce);
      if (!sameBytes(field, expected)) return this.refuse("its proof of the token is wrong");
      this.proven = true;
      this.ws.send(this.field(MEDIA.PROOF, socketProof(this.token, "page", this.port, this.kernelNonce, this.nonce)));
    } else if (this.proven && bytes.length === 1 && bytes[0] === MEDIA.READY) {
      clearTimeout(this.openTimer);
      this.live = true;
      this.host.pipeReady(this);
    } else {
      this.refuse(`an unexpected message in the handshake: kind ${bytes[0]}, ${bytes.length} bytes`);
    }
  }

  refuse(why) {
    console.warn(`decart_nb: the page socket is not the kernel's (${why}): the comm carries everything`);
    this.ws.close();
    this.ended();
  }

  get open() {
    return this.live && !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  // One page message as JSON; false when the socket cannot take it (the caller uses the comm).
  sendMessage(msg) {
    if (!this.open) return false;
    const json = new TextEncoder().encode(JSON.stringify(msg));
    if (json.byteLength > PIPE_MESSAGE_MAX) return false;
    const data = new Uint8Array(1 + json.byteLength);
    data[0] = MEDIA.MESSAGE;
    data.set(json, 1);
    this.ws.send(data.buffer);
    return true;
  }

  // Sends a chunk, chunk_ack or keyframe message (a chunk's bytes in `chunk`, an EncodedVideoChunk).
  sendMedia(msg, chunk) {
    if (!this.open) return false;
    const size = msg.type === "chunk" ? MEDIA.HEADER + chunk.byteLength : msg.type === "chunk_ack" ? 5 : 1;
    const data = new ArrayBuffer(size);
    const view = new DataView(data);
    if (msg.type === "chunk") {
      view.setUint8(0, MEDIA.CHUNK);
      view.setUint32(1, msg.seq, true);
      view.setUint8(5, msg.key ? 1 : 0);
      view.setUint16(6, msg.width, true);
      view.setUint16(8, msg.height, true);
      chunk.copyTo(new Uint8Array(data, MEDIA.HEADER));
    } else if (msg.type === "chunk_ack") {
      view.setUint8(0, MEDIA.CHUNK_ACK);
      view.setUint32(1, msg.seq, true);
    } else {
      view.setUint8(0, MEDIA.KEYFRAME);
    }
    this.ws.send(data);
    return true;
  }

  ended() {
    if (this.closed) return;
    const was = this.live;
    this.live = false;
    this.closed = true;
    clearTimeout(this.openTimer);
    if (!was && !this.late) console.info("decart_nb: no page socket here (the server lacks decart_nb_server?): the comm carries everything");
    else if (!was) console.info("decart_nb: the page socket closed before it was ready: the comm carries everything");
    this.host.pipeEnded(this, was);
  }

  close() {
    this.closed = true;
    this.live = false;
    clearTimeout(this.openTimer);
    this.ws.close();
  }
}

class CodecLink {
  constructor(host, gen) {
    this.host = host;
    this.gen = gen;
    this.kind = "codec";
    this.codec = "vp8";
    this.drawsFrames = true;
    this.remote = null;
    this.closed = false;
    this.sent = 0; // camera chunks sent
    this.received = 0; // output chunks received
    this.decoded = 0;
    this.output = null; // the newest decoded output frame (a VideoFrame), drawn by the views
    // camera -> kernel
    this.seq = 0;
    this.tap = null;
    this.encoder = null;
    this.encoding = null; // {resolve} of the encode in progress
    this.configured = null; // {width, height, kbps, fps} the encoder runs with
    this.wantKey = true;
    this.waiting = new Map(); // the chunks in flight, oldest first: seq -> {seq, bytes, sentAt, done, resolve, timer}
    const m = host.model;
    this.rate = new RateController(m.get("width"), m.get("height"), m.get("fps"));
    // kernel -> page
    this.decoder = null;
    this.needKey = true;
    this.decoding = []; // seqs of the output chunks given to the decoder, not yet acked
    this.statsTimer = null;
    this.lastStats = null;
  }

  get live() {
    return !this.closed && this.gen === this.host.generation;
  }

  get up() {
    return this.sent > 0 || this.received > 0;
  }

  get pipeLive() {
    return this.host.pipeLive;
  }

  // Chunks, acks and key-frame requests: over the page socket while it is live, else the comm.
  sendMedia(msg, chunk) {
    if (this.host.pipe?.sendMedia(msg, chunk)) return true;
    if (!chunk) return this.host.send(msg);
    const data = new ArrayBuffer(chunk.byteLength);
    chunk.copyTo(data);
    return this.host.send(msg, [data]);
  }

  // The page socket went live or away. Away: what was in flight on it is gone, so nothing waits
  // for its acks and the next chunk is a key frame (the kernel does the same with its output).
  pipeChanged() {
    if (!this.live) return;
    if (!this.pipeLive) {
      for (const w of [...this.waiting.values()]) this.finish(w);
      this.wantKey = true;
    }
    this.host.render();
  }

  async start() {
    this.host.carrying(this);
    this.sendMedia({ type: "keyframe" }); // our decoder starts from nothing
    this.statsTimer = setInterval(() => this.sendPageStats(), PAGE_STATS_MS);
    if (this.host.camera) this.sendCamera().catch((err) => console.warn("decart_nb: codec camera loop stopped", err));
  }

  reset() {}

  async setTrack() {
    this.wantKey = true; // the camera loop taps the new track
  }

  message(msg, buffers) {
    if (msg.type === "chunk") this.chunk(msg, buffers);
    else if (msg.type === "chunk_ack") this.acked(msg.seq);
    else if (msg.type === "keyframe") this.wantKey = true;
    else return false;
    return true;
  }

  // -- camera -> kernel -------------------------------------------------------------------------
  async sendCamera() {
    let last = -Infinity;
    try {
      while (this.live) {
        const track = this.host.paused ? null : this.host.stream?.getVideoTracks()[0];
        if (!track || track.readyState !== "live") {
          this.closeTap();
          await sleep(100);
          continue;
        }
        if (this.tap?.track !== track) {
          this.closeTap();
          this.tap = new FrameTap(track);
        }
        const frame = await this.tap.take(last + 1000 / this.rate.fps - CAMERA_JITTER_MS);
        if (!frame) continue;
        if (!this.live) return frame.close();
        last = this.tap.takenAt; // the period counts from the frame's arrival, not from our turn
        let chunk = null;
        try {
          chunk = await this.encode(frame);
        } catch (err) {
          if (!this.live) return; // closed while encoding
          console.warn("decart_nb: a camera frame did not encode", err);
          this.configured = null; // a new encoder, starting at a key frame
          await sleep(200);
        }
        if (chunk && this.live) await this.sendChunk(chunk);
      }
    } finally {
      this.closeTap();
    }
  }

  closeTap() {
    this.tap?.close();
    this.tap = null;
  }

  // Encodes `frame` (and closes it) at the rate controller's rung, bitrate and fps; a new size,
  // or a bitrate or fps well off the encoder's, reconfigures it first. null: libvpx skipped it.
  async encode(frame) {
    try {
      const { width, height } = this.rate.rung;
      const [kbps, fps, c] = [this.rate.kbps, this.rate.fps, this.configured];
      const resize = !c || c.width !== width || c.height !== height;
      if (resize || Math.abs(kbps - c.kbps) > 0.1 * c.kbps || Math.abs(fps - c.fps) > 1) {
        this.configureEncoder(width, height, kbps, fps);
        if (resize) this.wantKey = true;
      }
      const key = this.wantKey;
      this.wantKey = false;
      const out = new Promise((resolve) => (this.encoding = { resolve }));
      const started = performance.now();
      this.encoder.encode(frame, { keyFrame: key });
      // flush() resolves after every output: an encode that yields nothing cannot hang us.
      const chunk = await Promise.race([out, this.encoder.flush().then(() => null)]);
      if (!chunk && key) this.wantKey = true;
      if (chunk && !resize) this.rate.onEncoded((performance.now() - started) / 1000); // rule 4
      return chunk;
    } finally {
      this.encoding = null;
      frame.close();
    }
  }

  configureEncoder(width, height, kbps, fps) {
    if (!this.encoder || this.encoder.state === "closed") {
      this.encoder = new VideoEncoder({
        output: (chunk) => this.encoding?.resolve(chunk),
        error: (err) => console.warn("decart_nb: the VP8 encoder failed", err),
      });
    }
    this.encoder.configure({
      codec: "vp8",
      width,
      height,
      bitrate: Math.round(kbps * 1000),
      framerate: fps,
      latencyMode: "realtime",
      bitrateMode: "constant", // each frame near its share: a burst would hold the link
    });
    this.configured = { width, height, kbps, fps };
  }

  // Sends the chunk, then waits until fewer than RATE.IN_FLIGHT chunks are unacked.
  async sendChunk(chunk) {
    const seq = ++this.seq;
    const { width, height } = this.configured;
    const w = { seq, bytes: chunk.byteLength, sentAt: performance.now() };
    w.done = new Promise((resolve) => (w.resolve = resolve));
    w.timer = setTimeout(() => this.lost(seq), FRAME_ACK_TIMEOUT_MS);
    this.waiting.set(seq, w);
    if (this.sendMedia({ type: "chunk", seq, key: chunk.type === "key", width, height }, chunk)) this.sent += 1;
    else this.lost(seq);
    while (this.live && this.waiting.size >= RATE.IN_FLIGHT) await this.waiting.values().next().value.done;
  }

  acked(seq) {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.finish(w);
    const now = performance.now();
    if (this.rate.onAck(w.bytes, (now - w.sentAt) / 1000, now / 1000)) this.wantKey = true;
    if (this.live) this.host.linkLive(this);
  }

  // No ack within FRAME_ACK_TIMEOUT_MS: the chunk is lost, and with it the chain of delta frames.
  lost(seq) {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.finish(w);
    this.rate.onLost(performance.now() / 1000);
    this.wantKey = true;
  }

  finish(w) {
    this.waiting.delete(w.seq);
    clearTimeout(w.timer);
    w.resolve();
  }

  // -- kernel -> page ---------------------------------------------------------------------------
  // An output chunk is acked once decoded, not on receipt (as the kernel does with the camera's):
  // a page too busy to decode at the kernel's rate then reads as a slow link to the kernel's
  // RateController, and the decoder's queue cannot grow without bound.
  chunk(msg, buffers) {
    if (!this.live || !buffers || !buffers.length) return;
    this.received += 1;
    if (this.needKey && !msg.key) {
      this.sendMedia({ type: "chunk_ack", seq: msg.seq }); // no reference: a key frame is coming
      return;
    }
    try {
      if (!this.decoder || this.decoder.state === "closed") this.openDecoder();
      const type = msg.key ? "key" : "delta";
      this.decoding.push(msg.seq);
      this.decoder.decode(new EncodedVideoChunk({ type, timestamp: msg.seq, data: buffers[0] }));
      this.needKey = false;
    } catch (err) {
      this.decodeFailed(err);
    }
  }

  // Acks the chunks given to the decoder up to `seq` (a VP8 chunk gives one frame, or none).
  ackDecoded(seq) {
    while (this.decoding.length && this.decoding[0] <= seq) this.sendMedia({ type: "chunk_ack", seq: this.decoding.shift() });
  }

  openDecoder() {
    this.decoder = new VideoDecoder({
      output: (frame) => this.show(frame),
      error: (err) => this.decodeFailed(err),
    });
    this.decoder.configure({ codec: "vp8", optimizeForLatency: true });
  }

  decodeFailed(err) {
    if (!this.live) return;
    console.warn("decart_nb: an output chunk did not decode: asking for a key frame", err);
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.needKey = true;
    for (const seq of this.decoding.splice(0)) this.sendMedia({ type: "chunk_ack", seq }); // nothing will come of them
    this.sendMedia({ type: "keyframe" });
  }

  show(frame) {
    if (!this.live) return frame.close();
    this.ackDecoded(frame.timestamp);
    this.decoded += 1;
    const old = this.output;
    this.output = frame;
    this.host.linkLive(this);
    this.host.showFrame(frame);
    old?.close();
  }

  // What the page sends, receives and decodes, for session.stats (as RtcLink's getStats sample).
  sendPageStats() {
    if (!this.live) return;
    const sample = { t: performance.now(), sent: this.sent, received: this.received, decoded: this.decoded };
    const last = this.lastStats;
    this.lastStats = sample;
    if (!last) return;
    const rate = (key) => ((sample[key] - last[key]) * 1000) / (sample.t - last.t);
    this.host.send({
      type: "page_stats",
      fps_sent: rate("sent"),
      fps_received: rate("received"),
      fps_decoded: rate("decoded"),
      fps_presented: rate("decoded"), // each decoded frame is drawn at once
      frames_dropped: null,
      freezes: null,
      width: this.output?.displayWidth ?? null,
      height: this.output?.displayHeight ?? null,
      rtt_ms: null, // the kernel fits it from the output's acks (transport_rtt_ms)
      kbps_sent: null, // the kernel meters the comm's bitrate itself
      kbps_received: null,
    });
  }

  close() {
    this.closed = true;
    clearInterval(this.statsTimer);
    for (const w of [...this.waiting.values()]) this.finish(w);
    this.closeTap();
    this.encoding?.resolve(null);
    for (const coder of [this.encoder, this.decoder]) {
      if (coder && coder.state !== "closed") coder.close();
    }
    this.encoder = this.decoder = null;
    this.output?.close();
    this.output = null;
  }
}

// WebRTC: one RTCPeerConnection at a time, its offer answered by the kernel over the comm.
class RtcLink {
  constructor(host, gen) {
    this.host = host;
    this.gen = gen;
    this.kind = "webrtc";
    this.codec = host.model.get("codec") || "vp8";
    this.answeredAt = 0; // when the kernel's answer was applied (ICE checks start then)
    this.drawsFrames = false;
    this.pc = null;
    this.sender = null; // the camera's RTCRtpSender (null: receive only)
    this.receiver = null; // the output's RTCRtpReceiver
    this.remote = null; // the output; kept while reconnecting, replaced by the next track
    this.pending = null; // the offer waiting for its answer
    this.closed = false;
    this.disconnectTimer = null;
    this.statsTimer = null;
    this.lastStats = null; // the previous sample: rates are differences between samples
  }

  get live() {
    return !this.closed && this.gen === this.host.generation;
  }

  get up() {
    return this.pc?.connectionState === "connected";
  }

  // One attempt: a new peer, our offer, the kernel's answer, then until the peer connects.
  async start() {
    this.reset();
    const iceServers = this.host.iceServers() ?? (await this.host.waitIceServers(this.gen));
    if (!this.live) throw new Error("superseded");
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    const camera = this.host.camera;
    const stream = this.host.stream;
    let transceiver;
    if (camera && stream) {
      transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv", streams: [stream] });
    } else if (camera) {
      transceiver = pc.addTransceiver("video", { direction: "sendrecv" }); // paused: a track comes later
    } else {
      transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    }
    this.sender = camera ? transceiver.sender : null;
    this.preferCodec(transceiver);
    pc.ontrack = (event) => this.gotTrack(event);
    pc.onconnectionstatechange = () => this.peerState(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHER_TIMEOUT_MS);
    if (!this.live || pc !== this.pc) throw new Error("superseded");
    const sdp = await this.offer(pc.localDescription.sdp);
    if (!this.live || pc !== this.pc) throw new Error("superseded");
    await pc.setRemoteDescription({ type: "answer", sdp });
    this.answeredAt = performance.now();
    await this.connected(pc);
  }

  preferCodec(transceiver) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
    const want = this.host.model.get("codec") === "h264" ? "video/h264" : "video/vp8";
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === want);
    if (!first.length) return;
    try {
      transceiver.setCodecPreferences([...first, ...codecs.filter((c) => c.mimeType.toLowerCase() !== want)]);
    } catch (err) {
      console.warn("decart_nb: codec preference not applied", err);
    }
  }

  offer(sdp) {
    this.rejectPending(new Error("superseded"));
    const attempt = this.host.nextOffer();
    return new Promise((resolve, reject) => {
      const pending = { attempt, resolve, reject, timer: null, sent: "" };
      this.pending = pending;
      pending.sent = this.host.send({ type: "offer", sdp, attempt }); // "socket", "queued", "comm"
      this.armAnswerTimer(pending);
      this.host.waitingForKernel(this.waitsForKernel(pending));
    });
  }

  // Does the offer wait for a running cell? It went over the comm (the kernel reads it between
  // cells) while the kernel is busy; over the page socket it is answered at once.
  waitsForKernel(pending) {
    const viaSocket = pending.sent === "socket" || (pending.sent === "queued" && this.host.pipeLive);
    return !viaSocket && Boolean(this.host.model.get("kernel_busy"));
  }

  // ANSWER_TIMEOUT_MS, which starts again while the offer waits for a running cell.
  armAnswerTimer(pending) {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      if (this.pending !== pending) return;
      if (this.waitsForKernel(pending)) return this.armAnswerTimer(pending);
      this.pending = null;
      this.host.waitingForKernel(false);
      const s = ANSWER_TIMEOUT_MS / 1000;
      pending.reject(fallbackError(`no answer from the kernel within ${s} s`, `the kernel did not answer within ${s} s`));
    }, ANSWER_TIMEOUT_MS);
  }

  // The model's kernel_busy changed: the notice says whether the offer waits for a cell, and the
  // cell's end starts the answer's count afresh.
  kernelBusyChanged() {
    const pending = this.pending;
    if (!pending || !this.live) return;
    const waits = this.waitsForKernel(pending);
    if (!waits) this.armAnswerTimer(pending);
    this.host.waitingForKernel(waits);
  }

  message(msg) {
    if (msg.type !== "answer" && msg.type !== "answer_error") return false;
    const pending = this.pending;
    if (!pending || pending.attempt !== msg.attempt) return true; // an answer to a superseded offer
    this.pending = null;
    clearTimeout(pending.timer);
    this.host.waitingForKernel(false);
    if (msg.type === "answer") pending.resolve(msg.sdp);
    else pending.reject(Object.assign(new Error(msg.error?.message || "the kernel could not answer"), { code: msg.error?.code }));
    return true;
  }

  rejectPending(err) {
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    clearTimeout(pending.timer);
    this.host.waitingForKernel(false);
    pending.reject(err);
  }

  connected(pc) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!this.live || pc !== this.pc) return done(new Error("superseded"));
        if (pc.connectionState === "connected") return done(null);
        if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          return done(fallbackError(`connection ${pc.connectionState}`, `WebRTC failed: the connection ${pc.connectionState}`));
        }
      };
      const done = (err) => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        err ? reject(err) : resolve();
      };
      const timer = setTimeout(() => done(new Error("connection timed out")), CONNECT_TIMEOUT_MS);
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  gotTrack(event) {
    if (event.track.kind !== "video") return;
    this.receiver = event.receiver;
    this.applyPlayoutTarget();
    this.remote = new MediaStream([event.track]);
    this.host.outputChanged();
  }

  // The kernel is on loopback or a LAN: the default 0 plays each frame as soon as it is decoded.
  // Measured in Chromium (bench scenario 7): 0 presents 26-28 of 30 fps (two frames often land
  // within one display refresh), 40 presents 29.5-30 with the same glass-to-glass p50 on a quiet
  // machine but 17-33 ms more in some runs under load; playout_target_ms lets the user choose.
  applyPlayoutTarget() {
    const receiver = this.receiver;
    if (!receiver) return;
    const ms = Number(this.host.model.get("playout_target_ms")) || 0;
    try {
      if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = ms;
      else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = ms / 1000;
    } catch (err) {
      console.warn("decart_nb: playout target not set", err);
    }
  }

  async setTrack(track) {
    if (this.sender) await this.sender.replaceTrack(track);
  }

  peerState(pc) {
    if (pc !== this.pc || !this.live) return;
    const state = pc.connectionState;
    clearTimeout(this.disconnectTimer);
    if (state === "connected") {
      this.host.carrying(this);
      this.startPageStats(pc);
      this.host.linkLive(this);
    } else if (state === "failed") {
      this.host.linkLost(this);
    } else if (state === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (pc === this.pc && this.live && pc.connectionState === "disconnected") this.host.linkLost(this);
      }, DISCONNECTED_GRACE_MS);
    }
  }

  // Has ICE found a working candidate pair (so UDP, or a relay, reaches the kernel)?
  async icePath() {
    const pc = this.pc;
    if (!pc) return false;
    if (pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed") return true;
    let found = false;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "candidate-pair" && r.state === "succeeded") found = true;
    });
    return found;
  }

  reset() {
    const pc = this.pc;
    this.pc = null;
    this.answeredAt = 0;
    this.sender = null;
    this.receiver = null;
    clearTimeout(this.disconnectTimer);
    clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.lastStats = null;
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
  }

  close() {
    this.closed = true;
    this.rejectPending(new Error("transport closed"));
    this.reset();
    this.remote = null;
  }

  // -- page stats: what the browser sends, receives and presents, for session.stats -------------
  startPageStats(pc) {
    clearInterval(this.statsTimer);
    this.lastStats = null;
    this.statsTimer = setInterval(() => {
      if (pc !== this.pc || !this.live) return;
      this.samplePageStats(pc).catch((err) => console.warn("decart_nb: page stats failed", err));
    }, PAGE_STATS_MS);
  }

  async samplePageStats(pc) {
    const [report, presented] = await Promise.all([pc.getStats(), this.host.presentedFrames()]);
    if (pc !== this.pc) return;
    let inbound = null;
    let outbound = null;
    report.forEach((r) => {
      if (r.kind !== "video") return;
      if (r.type === "inbound-rtp") inbound = r;
      else if (r.type === "outbound-rtp" && (!outbound || (r.framesSent || 0) > (outbound.framesSent || 0))) outbound = r;
    });
    const sample = {
      t: performance.now(),
      sent: outbound?.framesSent,
      received: inbound?.framesReceived,
      decoded: inbound?.framesDecoded,
      presented,
      bytesSent: outbound?.bytesSent,
      bytesReceived: inbound?.bytesReceived,
    };
    const last = this.lastStats;
    this.lastStats = sample;
    if (!last) return;
    const rate = (key) =>
      typeof sample[key] === "number" && typeof last[key] === "number" && sample.t > last.t
        ? ((sample[key] - last[key]) * 1000) / (sample.t - last.t)
        : null;
    this.host.send({
      type: "page_stats",
      fps_sent: rate("sent"),
      fps_received: rate("received"),
      fps_decoded: rate("decoded"),
      fps_presented: rate("presented"),
      frames_dropped: inbound?.framesDropped ?? null,
      freezes: inbound?.freezeCount ?? null,
      width: inbound?.frameWidth ?? null,
      height: inbound?.frameHeight ?? null,
      rtt_ms: roundTripMs(report),
      kbps_sent: rate("bytesSent") === null ? null : (rate("bytesSent") * 8) / 1000,
      kbps_received: rate("bytesReceived") === null ? null : (rate("bytesReceived") * 8) / 1000,
    });
  }
}

// The network round trip (ms) of the connection's selected candidate pair, from its STUN
// checks; null until one was measured.
function roundTripMs(report) {
  let pairId = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  let rtt = null;
  report.forEach((r) => {
    if (r.type !== "candidate-pair" || typeof r.currentRoundTripTime !== "number") return;
    if (pairId ? r.id === pairId : r.nominated && r.state === "succeeded") rtt = r.currentRoundTripTime * 1000;
  });
  return rtt;
}

// -- controller -----------------------------------------------------------------------------------
// Owns the status and wires the camera and the transport to the views and the kernel.
class Controller {
  constructor(model) {
    this.model = model;
    this.views = new Set();
    this.source = new CameraSource(model, (track) => this.cameraEnded(track));
    this.link = null; // the transport (RtcLink or CommLink) of this generation
    this.mediaSocket = null; // {port, token, key}: the kernel's page socket, once it offered one
    this.pipe = null; // the page socket (PagePipe) while it opens or is live
    this.pipeQueue = []; // messages sent while the socket opens, in order
    this.pipeRefused = ""; // the key of an offer whose socket never opened here (no relay)
    // The offers of the kernel's earlier connections, forgotten (a few): never opened again. The
    // kernel frees their ports when its connection ends, and another user of the host may take one.
    this.spentSockets = [];
    this.iceServerList = null; // the kernel's ICE servers (its `ice_servers` message), once sent
    this.iceMissing = false; // the last wait for them ran out: the reconnection notice says so
    this.transport = ""; // what carries the frames now: "webrtc", "comm" or ""
    this.reason = ""; // why the frames do not take WebRTC ("" on WebRTC): the transport message's
    // "auto" found in this reconnection loop that WebRTC does not connect: the loop uses the comm.
    // Each new connection (start: Reconnect, a model change, Try again) probes WebRTC again.
    this.fellBack = false;
    this.noticeBeforeWait = null; // the notice a "waiting for the kernel" notice replaced
    this.generation = 0; // bumped by stop() and camera failures: stale async work backs off
    this.attempt = 0; // offers made (the kernel's answer names its offer)
    this.retrying = false; // in the reconnection loop (the status may say "paused" meanwhile)
    this.switching = Promise.resolve();
    this.status = "idle";
    this.notice = "";
    this.localError = null; // {name, message} of a camera failure, until the kernel's arrives
    this.lastViewTimer = null;
    this.onVisibility = () => this.visibilityChanged();
    this.onPageHide = () => this.stop("page closed", true);
    this.onDeviceChange = () => this.reportDevices();
  }

  // -- what the parts and the views read -----------------------------------------------------
  get camera() {
    return this.model.get("mode") === "camera";
  }

  get running() {
    return !IDLE_STATUSES.has(this.status);
  }

  get stream() {
    return this.source.stream;
  }

  get paused() {
    return this.source.paused;
  }

  get remote() {
    return this.link?.remote ?? null;
  }

  get pc() {
    return this.link?.pc ?? null;
  }

  // The preview is flipped exactly when the kernel flips the model's input (session.mirror), so
  // the camera and the output always face the same way.
  get selfie() {
    const mirror = this.model.get("mirror");
    return mirror === true || (mirror === "auto" && this.source.facing === "user");
  }

  // -- status ---------------------------------------------------------------------------------
  setStatus(status, notice) {
    if (status !== this.status && !(status in (TRANSITIONS[this.status] || {}))) {
      const why = `decart_nb: refused status transition ${this.status} -> ${status}`;
      if (registry.strict) throw new Error(why);
      console.error(why);
      return false;
    }
    this.status = status;
    this.notice = notice;
    this.render();
    return true;
  }

  // -- lifecycle ------------------------------------------------------------------------------
  listen() {
    this.model.on("msg:custom", (msg, buffers) => this.kernelMessage(msg, buffers));
    for (const name of ["state", "figures", "error", "mirror"]) this.model.on(`change:${name}`, () => this.render());
    this.model.on("change:device_id", () => this.switchCamera());
    this.model.on("change:facing_mode", () => this.switchCamera());
    this.model.on("change:keep_running_hidden", () => this.visibilityChanged());
    this.model.on("change:playout_target_ms", () => this.link?.applyPlayoutTarget?.());
    this.model.on("change:transport", () => this.restart());
    this.model.on("change:kernel_busy", () => this.link?.kernelBusyChanged?.());
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("pagehide", this.onPageHide);
    navigator.mediaDevices?.addEventListener?.("devicechange", this.onDeviceChange);
  }

  destroy() {
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("pagehide", this.onPageHide);
    navigator.mediaDevices?.removeEventListener?.("devicechange", this.onDeviceChange);
    this.stop("widget closed", false);
    this.views.clear();
    this.pipeQueue = []; // the kernel's side is gone with the model
    this.forgetSocket();
    this.iceServerList = null;
  }

  attach(view) {
    clearTimeout(this.lastViewTimer);
    this.views.add(view);
    this.render();
    if (!this.running) this.start();
  }

  detach(view) {
    this.views.delete(view);
    if (this.views.size) return;
    clearTimeout(this.lastViewTimer);
    this.lastViewTimer = setTimeout(() => {
      if (!this.views.size) this.stop("no view left", true);
    }, LAST_VIEW_GRACE_MS);
  }

  async start() {
    this.dropLink(); // a transport left idle by a camera failure
    const gen = ++this.generation;
    this.localError = null;
    this.fellBack = false; // a new connection: "auto" probes WebRTC again
    this.reason = "";
    try {
      if (this.camera) {
        if (document.hidden && !this.model.get("keep_running_hidden")) {
          this.source.paused = true;
          this.setStatus("paused", "Camera paused while the page is hidden.");
        } else {
          this.setStatus("starting", "Asking for the camera…");
          if (!(await this.openCamera(gen))) return;
        }
      }
      const transport = this.model.get("transport");
      if (transport === "comm" || transport === "jpeg") {
        this.reason = `transport='${transport}' was asked for`;
        return await this.useComm(gen);
      }
      this.setStatus("connecting", "Connecting to the kernel…");
      this.link = new RtcLink(this, gen);
      if (transport === "auto") return await this.connectOrFallBack(gen);
      await this.link.start();
    } catch (err) {
      if (gen !== this.generation) return;
      console.warn("decart_nb: connecting failed", err);
      if (err.code === "NOT_CONNECTED") this.notConnected(err);
      else this.reconnect(gen);
    }
  }

  // One connection attempt of the transport; "auto" gives WebRTC AUTO_CONNECT_MS from the kernel's
  // answer before the comm takes over, or AUTO_ICE_MS after it when ICE has found no path by then.
  connectLink() {
    const link = this.link;
    const attempt = link.start();
    if (this.model.get("transport") !== "auto") return attempt;
    const settled = { done: false };
    const done = () => (settled.done = true);
    attempt.then(done, done);
    return Promise.race([attempt, this.autoDeadline(link, settled)]);
  }

  // Rejects when, after the kernel's answer, ICE has no working pair within AUTO_ICE_MS or the peer
  // has not connected within AUTO_CONNECT_MS; otherwise never settles (the attempt itself decides).
  // Before the answer nothing counts here: a slow answer is a busy kernel, not the network.
  async autoDeadline(link, settled) {
    let path = false;
    while (!settled.done) {
      await sleep(50);
      if (settled.done || !link.answeredAt) continue;
      const since = performance.now() - link.answeredAt;
      if (since >= AUTO_CONNECT_MS) {
        const s = AUTO_CONNECT_MS / 1000;
        throw fallbackError(`WebRTC did not connect within ${s} s of the answer`, `WebRTC did not connect within ${s} s`);
      }
      if (path || since < AUTO_ICE_MS) continue;
      path = await link.icePath();
      if (!path && !settled.done) {
        throw fallbackError(`WebRTC found no network path within ${AUTO_ICE_MS / 1000} s of the answer`, "UDP blocked: WebRTC found no network path");
      }
    }
    return new Promise(() => {});
  }

  // "auto": WebRTC when it connects within AUTO_CONNECT_MS, otherwise (UDP blocked, Binder) the comm.
  async connectOrFallBack(gen) {
    try {
      await this.connectLink();
    } catch (err) {
      if (gen !== this.generation || err.code === "NOT_CONNECTED") throw err;
      console.warn("decart_nb: WebRTC failed, frames go over the comm instead", err);
      this.fellBack = true;
      this.reason = fallbackReason(err);
      await this.useComm(gen);
    }
  }

  // Video over the comm: VP8 (CodecLink) where WebCodecs can, else JPEG (CommLink); "jpeg" forces JPEG.
  async useComm(gen) {
    this.dropLink();
    this.setStatus("connecting", "Sending frames over the comm…");
    const m = this.model;
    const vp8 = m.get("transport") !== "jpeg" && (await vp8Supported(m.get("width"), m.get("height")));
    if (gen !== this.generation) return;
    if (!vp8 && m.get("transport") !== "jpeg") this.reason = [this.reason, "no WebCodecs VP8 in this browser"].filter(Boolean).join("; ");
    this.link = vp8 ? new CodecLink(this, gen) : new CommLink(this, gen);
    this.link.start();
  }

  dropLink() {
    this.link?.close();
    this.link = null;
  }

  async reconnect(gen) {
    const link = this.link;
    if (this.retrying || gen !== this.generation || !link) return;
    this.retrying = true;
    for (let i = 0; i < BACKOFF_S.length; i++) {
      link.reset();
      this.send({ type: "reconnecting", attempt: i + 1 });
      const why = this.iceMissing ? "No ICE servers from the kernel" : "Connection lost";
      this.setStatus("reconnecting", `${why}: reconnecting (attempt ${i + 1} of ${BACKOFF_S.length})…`);
      await sleep(BACKOFF_S[i] * 1000);
      if (gen !== this.generation) return;
      try {
        await this.connectLink();
        this.retrying = false;
        return;
      } catch (err) {
        if (gen !== this.generation) return;
        console.warn(`decart_nb: reconnection attempt ${i + 1} failed`, err);
        if (err.code === "NOT_CONNECTED") return this.notConnected(err);
        if (this.model.get("transport") === "auto") {
          // WebRTC stopped working here (the network changed): the comm still reaches the kernel.
          this.retrying = false;
          this.fellBack = true;
          this.reason = fallbackReason(err);
          return this.useComm(gen);
        }
      }
    }
    this.send({ type: "gave_up", attempts: BACKOFF_S.length });
    this.stop("could not reconnect to the kernel", false);
    this.setStatus("stopped", "Could not reconnect to the kernel. Run the cell again to restart.");
  }

  // The session is disconnected: nothing to retry until session.connect() sends "restart".
  notConnected(err) {
    this.stop("kernel stopped", false);
    this.setStatus("stopped", err.message);
  }

  stop(reason, tellKernel) {
    const wasRunning = this.running || !!this.link; // a camera failure leaves the peer idle, open
    this.generation += 1;
    this.retrying = false;
    this.source.paused = false;
    this.dropLink();
    this.transport = "";
    this.source.release();
    this.setStatus("stopped", reason === "kernel stopped" ? "" : `Stopped: ${reason}.`);
    if (tellKernel && wasRunning) this.send({ type: "stopped", reason });
  }

  restart() {
    if (!this.views.size) return;
    this.stop("restarting", false);
    this.start();
  }

  // -- the transport's callbacks --------------------------------------------------------------
  nextOffer() {
    return ++this.attempt;
  }

  carrying(link) {
    if (link !== this.link || this.transport === link.kind) return;
    this.transport = link.kind;
    if (link.kind === "webrtc") this.reason = "";
    this.send({ type: "transport", transport: link.kind, codec: link.codec, reason: this.reason });
  }

  // The offer waits (or no longer waits) for a running cell: the notice says so.
  waitingForKernel(waits) {
    if (this.status !== "connecting" && this.status !== "reconnecting") return;
    if (waits && this.notice !== KERNEL_BUSY_NOTICE) {
      this.noticeBeforeWait = this.notice;
      this.setStatus(this.status, KERNEL_BUSY_NOTICE);
    } else if (!waits && this.notice === KERNEL_BUSY_NOTICE) {
      this.setStatus(this.status, this.noticeBeforeWait ?? "Connecting to the kernel…");
    }
  }

  // Frames flow: a connection being made is live (a camera being reopened says so itself).
  linkLive(link) {
    if (link !== this.link || this.paused) return;
    if (this.status === "connecting" || this.status === "reconnecting") this.setStatus("live", "");
  }

  linkLost(link) {
    if (link === this.link) this.reconnect(this.generation);
  }

  outputChanged() {
    this.render();
  }

  showFrame(frame) {
    for (const view of this.views) view.draw(frame);
  }

  // The output <video>'s count of presented frames (one video-frame callback; null when none shows).
  presentedFrames() {
    const video = [...this.views].map((v) => v.output).find((v) => v && !v.hidden && v.srcObject);
    if (!video || !video.requestVideoFrameCallback) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 500); // a paused or hidden video presents nothing
      video.requestVideoFrameCallback((_now, meta) => {
        clearTimeout(timer);
        resolve(meta.presentedFrames);
      });
    });
  }

  // -- camera ---------------------------------------------------------------------------------
  // Returns false (after reporting) when the camera cannot be opened.
  async openCamera(gen) {
    let stream;
    try {
      stream = await this.source.open();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err);
      return false;
    }
    if (gen !== this.generation) {
      stopStream(stream);
      return false;
    }
    this.useStream(stream);
    return true;
  }

  useStream(stream) {
    const info = this.source.use(stream);
    this.localError = null;
    this.send({ type: "camera", ...info });
    this.reportDevices();
    this.render();
  }

  // The transport is left open but idle (generation bumped) until Try again or a new view.
  cameraFailed(err) {
    console.warn("decart_nb: camera failed", err);
    this.generation += 1;
    this.retrying = false;
    this.localError = { name: err.name, message: err.message };
    this.send({ type: "camera_error", name: err.name, message: err.message });
    this.setStatus("camera-error", "");
  }

  // The camera stopped by itself mid-stream: unplugged, or the permission was revoked.
  cameraEnded(track) {
    if (!this.running) return;
    console.warn("decart_nb: the camera stopped", track.label);
    this.generation += 1;
    this.retrying = false;
    this.source.release();
    this.localError = { name: "CameraEnded", message: `${track.label || "the camera"} ended` };
    this.send({ type: "camera_ended", label: track.label });
    this.setStatus("camera-error", "The camera stopped. Plug it in or allow it again, then press Try again.");
  }

  async reportDevices() {
    try {
      const devices = await this.source.devices();
      if (devices) this.send({ type: "devices", devices });
    } catch (err) {
      console.warn("decart_nb: could not list cameras", err);
    }
  }

  // Another camera (device_id or facing_mode changed): same transport, the sent track is replaced.
  // Switches run one after the other, each with the constraints of its own start.
  switchCamera() {
    this.switching = this.switching.then(() => this.switchNow());
    return this.switching;
  }

  async switchNow() {
    if (!this.camera || !this.running || this.paused || !this.stream) return;
    const gen = this.generation;
    let stream;
    try {
      stream = await this.source.reopen();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err);
      return;
    }
    if (gen !== this.generation) return stopStream(stream);
    await this.replaceTrack(stream);
  }

  async replaceTrack(stream) {
    if (this.link) await this.link.setTrack(stream.getVideoTracks()[0]);
    this.useStream(stream);
  }

  visibilityChanged() {
    if (!this.camera || !this.running) return;
    const hide = document.hidden && !this.model.get("keep_running_hidden");
    if (hide && !this.paused) this.pause();
    else if (!hide && this.paused) this.resume();
  }

  pause() {
    this.source.paused = true;
    this.link?.setTrack(null).catch((err) => console.warn("decart_nb: pause", err));
    this.source.release(); // the camera light goes off
    this.setStatus("paused", "Camera paused while the page is hidden.");
  }

  async resume() {
    const gen = this.generation;
    this.source.paused = false;
    this.setStatus("starting", "Resuming the camera…");
    let stream;
    try {
      stream = await this.source.open();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err);
      return;
    }
    if (gen !== this.generation) return stopStream(stream);
    if (this.link) {
      await this.replaceTrack(stream);
      this.setStatus(this.link.up ? "live" : "connecting", "");
    } else {
      this.useStream(stream); // paused before the first connection: connect now
      this.start();
    }
  }

  // -- kernel ---------------------------------------------------------------------------------
  // A page message: over the page socket while it is live (the kernel reads it while a cell runs),
  // held while the socket opens (so nothing sent before it can arrive after something sent on
  // it), else over the comm; a frame's buffer always over the comm. Returns where it went:
  // "socket", "queued", "comm", or false when the kernel is gone.
  send(msg, buffers) {
    const odd = schemaMismatch(PAGE_MESSAGES, msg);
    if (odd) console.error(`decart_nb: a message off the schema (${odd})`);
    if (!buffers && this.pipe && !this.pipe.live && !this.pipe.late) return this.hold(msg);
    return this.deliver(msg, buffers);
  }

  // While the socket opens: in order, the newest page_stats replacing an older one; past
  // PIPE_QUEUE_MAX the socket is given up and the comm takes them all.
  hold(msg) {
    if (msg.type === "page_stats") this.pipeQueue = this.pipeQueue.filter((m) => m.type !== "page_stats");
    this.pipeQueue.push(msg);
    if (this.pipeQueue.length <= PIPE_QUEUE_MAX) return "queued";
    console.warn("decart_nb: the page socket takes too long to open: the comm carries everything");
    this.dropPipe();
    return "comm";
  }

  // A send over the comm that throws means the comm is gone for good (the kernel restarted or shut
  // down): turn the camera off rather than offer to nobody.
  deliver(msg, buffers) {
    if (!buffers && this.pipe?.sendMessage(msg)) return "socket";
    try {
      if (buffers) this.model.send(msg, undefined, buffers);
      else this.model.send(msg);
      return "comm";
    } catch (err) {
      console.warn("decart_nb: the kernel is gone, stopping the camera", err);
      if (this.running) {
        this.stop("kernel gone", false);
        this.setStatus("stopped", "The kernel restarted or shut down: run the cell again to restart the camera.");
      }
      return false;
    }
  }

  kernelMessage(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    if (!(msg.type in KERNEL_MESSAGES)) return console.warn("decart_nb: an unknown kernel message", msg.type);
    if (msg.type === "media_socket") return this.socketOffered(msg);
    if (msg.type === "ice_servers") return this.iceServersSent(msg);
    if (this.link?.message(msg, buffers)) return;
    if (msg.type === "restart") {
      this.restart();
    } else if (msg.type === "stop") {
      this.forgetSocket(); // the session's connection ended: the kernel closes its listener
      this.stop("kernel stopped", false);
      this.render();
    }
  }

  // -- ICE servers: by a kernel message only (a TURN credential in the state would be saved) --------
  // The servers for a new peer: [] when the session has none, null while the kernel's are awaited.
  iceServers() {
    if (!(Number(this.model.get("ice_server_count")) > 0)) return [];
    return this.iceServerList;
  }

  iceServersSent(msg) {
    const servers = Array.isArray(msg.servers) ? msg.servers.filter((s) => s && typeof s === "object" && s.urls) : [];
    this.iceServerList = servers.map((s) => ({ ...s }));
    this.iceMissing = false;
  }

  // Ask the kernel for its servers and wait ICE_SERVERS_WAIT_MS for them. A request over the comm
  // waits for a running cell (the kernel reads the comm between cells): that time does not count.
  async waitIceServers(gen) {
    this.send({ type: "want_ice_servers" });
    let start = performance.now();
    while (this.iceServers() === null) {
      if (gen !== this.generation) throw new Error("superseded");
      const held = Boolean(this.model.get("kernel_busy")) && !this.pipeLive;
      this.waitingForKernel(held);
      if (held) start = performance.now();
      else if (performance.now() - start >= ICE_SERVERS_WAIT_MS) {
        this.iceMissing = true;
        const s = ICE_SERVERS_WAIT_MS / 1000;
        throw fallbackError(`the kernel sent no ICE servers within ${s} s`, "no ICE servers from the kernel: its TURN relay is unknown here");
      }
      await sleep(50);
    }
    this.waitingForKernel(false);
    return this.iceServers();
  }

  // -- the page socket (PagePipe) --------------------------------------------------------------
  get pipeLive() {
    return Boolean(this.pipe?.live);
  }

  // The kernel offered its socket: open it, unless it is the one open, one that never opened
  // here (no relay: the comm carries everything), or one forgotten (an earlier connection's, a
  // late resend: its port may be someone else's now). A live one that closed opens again on the
  // kernel's next offer (it offers again when its connection goes).
  socketOffered(msg) {
    const key = `${msg.port} ${msg.token}`;
    if (this.spentSockets.includes(key)) return;
    const same = this.mediaSocket?.key === key;
    if (!same) this.forgetSocket(); // a newer offer: the kernel's listener changed
    this.mediaSocket = { port: msg.port, token: String(msg.token), key };
    if (same && (this.pipe || this.pipeRefused === key)) return;
    this.dropPipe();
    const url = mediaSocketUrl(msg.port);
    if (!url) {
      this.pipeRefused = key;
      return;
    }
    try {
      this.pipe = new PagePipe(url, msg.port, this.mediaSocket.token, this);
    } catch (err) {
      console.warn("decart_nb: no page socket; the comm carries everything", err);
      this.pipeRefused = key;
    }
  }

  pipeReady(pipe) {
    if (pipe !== this.pipe) return;
    this.pipeRefused = "";
    this.flushQueue();
    this.link?.pipeChanged?.();
    this.link?.kernelBusyChanged?.(); // an offer held for the socket waits for no cell
    this.render();
  }

  // The socket is slow to open: what waited goes over the comm, and so does everything until it is
  // live (the kernel reads both; nothing waits longer than PIPE_OPEN_TIMEOUT_MS for it).
  pipeLate(pipe) {
    if (pipe !== this.pipe) return;
    this.flushQueue();
    this.link?.kernelBusyChanged?.();
  }

  pipeEnded(pipe, wasLive) {
    if (pipe !== this.pipe) return;
    this.pipe = null;
    if (!wasLive) this.pipeRefused = this.mediaSocket?.key ?? "";
    this.flushQueue(); // over the comm now
    if (wasLive) this.link?.pipeChanged?.();
    this.link?.kernelBusyChanged?.();
    this.render();
  }

  pipeMedia(msg, buffers) {
    this.link?.message(msg, buffers);
  }

  // The kernel's link ended (its session disconnected, the widget closed, a newer listener): close
  // the socket and never open this offer again.
  forgetSocket() {
    if (this.mediaSocket) this.spentSockets = [...this.spentSockets.slice(-(SPENT_SOCKETS_MAX - 1)), this.mediaSocket.key];
    this.mediaSocket = null;
    this.pipeRefused = "";
    this.dropPipe();
  }

  // Close the socket (what it held goes over the comm).
  dropPipe() {
    const pipe = this.pipe;
    if (!pipe) return;
    const wasLive = pipe.live;
    this.pipe = null;
    pipe.close();
    this.flushQueue();
    if (wasLive) this.link?.pipeChanged?.();
  }

  // What waited for the socket, in order: over it once live, else over the comm.
  flushQueue() {
    const queue = this.pipeQueue;
    this.pipeQueue = [];
    for (const msg of queue) this.deliver(msg);
  }

  // -- views ----------------------------------------------------------------------------------
  render() {
    for (const view of this.views) view.update(this);
  }
}

class View {
  constructor(el, controller) {
    this.el = el;
    const root = document.createElement("div");
    root.className = "decart-camera";
    root.innerHTML = `
      <div class="decart-videos">
        <figure class="decart-pane decart-input">
          <video class="decart-preview" autoplay muted playsinline></video>
          <figcaption>Camera</figcaption>
        </figure>
        <figure class="decart-pane decart-out">
          <video class="decart-output" autoplay muted playsinline></video>
          <canvas class="decart-output-frames" hidden></canvas>
          <figcaption>Output</figcaption>
        </figure>
      </div>
      <div class="decart-bar">
        <span class="decart-state"><i></i><b></b></span>
        <span class="decart-transport"></span>
        <span class="decart-stats"></span>
      </div>
      <div class="decart-notice"></div>
      <div class="decart-error" role="alert">
        <div><code class="decart-error-code"></code> <span class="decart-error-message"></span></div>
        <button type="button" class="decart-retry">Try again</button>
      </div>`;
    el.appendChild(root);
    this.root = root;
    this.preview = root.querySelector(".decart-preview");
    this.output = root.querySelector(".decart-output");
    this.frames = root.querySelector(".decart-output-frames"); // the output over the comm
    this.drawn = null;
    this.inputCaption = root.querySelector(".decart-input figcaption");
    root.querySelector(".decart-retry").addEventListener("click", () => {
      controller.stop("retrying", false);
      controller.start();
    });
  }

  setSource(video, stream) {
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    if (stream) video.play().catch((err) => console.warn("decart_nb: video did not start", err));
  }

  // An ImageBitmap (JPEG) or a VideoFrame (VP8), at its own size: CSS scales the canvas.
  draw(bitmap) {
    if (this.drawn === bitmap) return;
    const canvas = this.frames;
    const [width, height] = [bitmap.displayWidth ?? bitmap.width, bitmap.displayHeight ?? bitmap.height];
    if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.drawn = bitmap;
    if (this.frames.parentElement.dataset.empty) this.frames.parentElement.dataset.empty = "";
  }

  update(c) {
    const m = c.model;
    const root = this.root;
    const state = m.get("state");
    const comm = !!c.link?.drawsFrames;
    root.classList.toggle("decart-receive", !c.camera);
    root.dataset.state = state;
    root.dataset.status = c.status;
    root.dataset.transport = c.transport;
    this.setSource(this.preview, c.camera ? c.stream : null);
    this.setSource(this.output, comm ? null : c.remote);
    this.output.hidden = comm;
    this.frames.hidden = !comm;
    if (comm && c.link.output) this.draw(c.link.output);
    const hasOutput = comm ? !!this.drawn && !!c.link.received : !!c.remote;
    this.preview.parentElement.dataset.empty = c.stream ? "" : PREVIEW_EMPTY[c.status] || "No camera";
    this.output.parentElement.dataset.empty = hasOutput ? "" : c.running ? "Waiting for the model…" : "No output";
    const pipe = c.link?.pipeLive ? "socket" : c.transport; // VP8 over the page socket, or the comm
    root.dataset.pipe = pipe ?? "";
    const reason = c.transport && c.transport !== "webrtc" ? c.reason : "";
    root.dataset.reason = reason;
    root.dataset.socket = c.pipeLive ? "live" : ""; // the page socket carries the page's messages
    const transport = root.querySelector(".decart-transport");
    transport.textContent = c.transport ? `via ${TRANSPORT_TEXT[pipe]}${reason ? ` · ${shortReason(reason)}` : ""}` : "";
    transport.title = [TRANSPORT_TITLE[pipe], reason && `Why: ${reason}.`].filter(Boolean).join(". ");
    this.preview.classList.toggle("decart-selfie", c.selfie);
    this.inputCaption.textContent = "Camera" + (c.selfie ? " (mirrored, as the model sees it)" : "");

    root.querySelector(".decart-state b").textContent = STATE_TEXT[state] || state;
    root.querySelector(".decart-state").className = `decart-state decart-state-${state}`;
    showFigures(root.querySelector(".decart-stats"), m.get("figures") || []);
    const notice = root.querySelector(".decart-notice");
    notice.textContent = c.notice;
    notice.hidden = !c.notice;

    const error = m.get("error") || {};
    const local = c.localError;
    const box = root.querySelector(".decart-error");
    // The kernel's message says what to do; the page's own hint shows until it arrives.
    const code = error.code || (local ? local.name : "");
    const message = error.code ? error.message : local ? `${CAMERA_HINTS[local.name] || "The camera failed."} (${local.message})` : "";
    box.hidden = !code;
    root.dataset.errorCode = error.code || "";
    root.querySelector(".decart-error-code").textContent = code;
    root.querySelector(".decart-error-message").textContent = message;
    root.querySelector(".decart-retry").hidden = !(c.camera && c.status === "camera-error");
  }
}

// The kernel's figures (decart_nb/figures.py, the panel's too), as it names and formats them:
// "camera 1280×720 · output 640×360 · fps in 30.0 · ...", each with its meaning on hover.
function showFigures(el, figures) {
  const key = JSON.stringify(figures);
  if (el.dataset.figures === key) return; // unchanged: keep the nodes (and an open tooltip)
  el.dataset.figures = key;
  el.replaceChildren();
  figures.forEach(([name, value, title], i) => {
    if (i) el.append(" · ");
    const figure = document.createElement("span");
    figure.dataset.figure = name;
    figure.title = title;
    const number = document.createElement("b");
    number.textContent = value;
    figure.append(`${name} `, number);
    el.append(figure);
  });
}

// anywidget passes initialize and render different proxies of one model: key by a synced id.
const controllers = new Map();

export default {
  // Only synchronous setup here: anywidget drops every kernel message for a model whose
  // initialize takes over 2 s. The camera is opened by the first render, unawaited.
  initialize({ model }) {
    const controller = new Controller(model);
    controllers.set(model.get("_key"), controller);
    registry.controllers.add(controller);
    controller.listen();
    return () => {
      controller.destroy();
      controllers.delete(model.get("_key"));
      registry.controllers.delete(controller);
    };
  },
  render({ model, el }) {
    const controller = controllers.get(model.get("_key"));
    const view = new View(el, controller);
    controller.attach(view);
    return () => {
      controller.detach(view);
      view.root.remove();
    };
  },
};
