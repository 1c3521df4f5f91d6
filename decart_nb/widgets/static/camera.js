// decart_nb camera widget: the page's camera goes to the kernel over WebRTC, the model's output
// comes back into a <video>. One self-contained ES module: anywidget loads it from a Blob URL, so
// there are no imports and nothing is fetched from a CDN.
//
// One Controller per widget model owns the camera and the RTCPeerConnection; every view of the
// model shows the same streams, so displaying the widget twice never opens the camera twice.
// The kernel answers our offers (no trickle: we wait for ICE gathering to complete).
// Where WebRTC cannot connect (transport "comm", or "auto" after AUTO_CONNECT_MS) frames travel
// over the comm itself as JPEG, one in flight each way (CommLink).

const BACKOFF_S = [1, 2, 4, 8, 8]; // five reconnection attempts
const ANSWER_TIMEOUT_MS = 15000;
const CONNECT_TIMEOUT_MS = 10000;
const ICE_GATHER_TIMEOUT_MS = 5000;
const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often recovers by itself; "failed" does not
const LAST_VIEW_GRACE_MS = 1000; // a view re-rendered at once (cell moved) keeps the camera
const AUTO_CONNECT_MS = 6000; // "auto": WebRTC gets this long to connect, then the comm takes over
const FRAME_ACK_TIMEOUT_MS = 3000; // a lost ack must not stall the camera for good
const JPEG_QUALITY = 0.7;
const PAGE_STATS_MS = 2000; // how often the page tells the kernel what it sends, receives and shows
const TRANSPORT_TEXT = { webrtc: "WebRTC", comm: "comm (JPEG)" };

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
};

// Test and debugging hook: the live controllers of this page.
const registry = (globalThis.__decartNB ??= { controllers: new Set() });

const PREVIEW_EMPTY = {
  starting: "Asking for the camera…",
  paused: "Camera paused",
  "camera-error": "Camera unavailable",
  stopped: "Camera off",
};

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

function deadline(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Frames over the comm: the camera goes to the kernel as JPEG drawn at the model's size, the
// output comes back as JPEG. One frame in flight each way: the next camera frame leaves after the
// kernel's ack, and we ack each output frame once it is decoded, so the newest frame always wins.
class CommLink {
  constructor(controller, gen) {
    this.c = controller;
    this.gen = gen;
    this.seq = 0;
    this.waiting = null; // the camera frame in flight: {seq, resolve, timer}
    this.output = null; // the newest output frame, an ImageBitmap
    this.closed = false;
    this.sent = 0; // camera frames sent
    this.received = 0; // output frames received
  }

  get live() {
    return !this.closed && this.gen === this.c.generation;
  }

  start() {
    this.c.send({ type: "transport", transport: "comm" });
    if (this.c.camera) this.sendCamera().catch((err) => console.warn("decart_nb: comm camera loop stopped", err));
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
        const stream = this.c.stream;
        if (!stream || this.c.paused) {
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
        const m = this.c.model;
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
      this.waiting = { seq, resolve, timer };
      if (this.c.send({ type: "frame", seq }, [buffer])) this.sent += 1;
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
    if (byKernel && this.live) this.c.commLive();
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
    this.c.send({ type: "frame_ack", seq: msg.seq });
    if (!bitmap) return;
    this.output?.close();
    this.output = bitmap;
    this.received += 1;
    this.c.commFrame(bitmap);
  }

  close() {
    this.closed = true;
    if (this.waiting) this.acked(this.waiting.seq, false);
    this.output?.close();
    this.output = null;
  }
}

class Controller {
  constructor(model) {
    this.model = model;
    this.views = new Set();
    this.stream = null; // the camera
    this.remote = null; // the model's output
    this.pc = null;
    this.sender = null;
    this.receiver = null; // the output's RTCRtpReceiver
    this.link = null; // frames over the comm (CommLink), when WebRTC is not used
    this.transport = ""; // what carries the frames now: "webrtc", "comm" or ""
    this.fellBack = false; // "auto" found that WebRTC does not connect here: use the comm directly
    this.generation = 0; // bumped by stop(): stale async work sees it and backs off
    this.attempt = 0;
    this.pending = null; // the offer waiting for its answer
    this.running = false;
    this.paused = false;
    this.reconnecting = false;
    this.switching = Promise.resolve();
    this.status = "idle";
    this.notice = "";
    this.localError = null; // {name, message} of a camera failure, until the kernel's arrives
    this.facing = ""; // the camera's own facingMode ("" when it does not say)
    this.lastViewTimer = null;
    this.disconnectTimer = null;
    this.pageStatsTimer = null;
    this.lastPageStats = null; // the previous sample: rates are differences between samples
    this.onVisibility = () => this.visibilityChanged();
    this.onPageHide = () => this.stop("page closed", true);
    this.onDeviceChange = () => this.reportDevices();
  }

  get camera() {
    return this.model.get("mode") === "camera";
  }

  // The preview is flipped exactly when the kernel flips the model's input (session.mirror), so
  // the camera and the output always face the same way.
  get selfie() {
    const mirror = this.model.get("mirror");
    return mirror === true || (mirror === "auto" && this.facing === "user");
  }

  // -- lifecycle ----------------------------------------------------------------------------
  listen() {
    this.model.on("msg:custom", (msg, buffers) => this.kernelMessage(msg, buffers));
    for (const name of ["state", "stats", "error", "mirror"]) this.model.on(`change:${name}`, () => this.render());
    this.model.on("change:device_id", () => this.switchCamera());
    this.model.on("change:facing_mode", () => this.switchCamera());
    this.model.on("change:keep_running_hidden", () => this.visibilityChanged());
    this.model.on("change:playout_target_ms", () => this.applyPlayoutTarget());
    this.model.on("change:transport", () => {
      this.fellBack = false;
      this.restart();
    });
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
    const gen = ++this.generation;
    this.running = true;
    this.localError = null;
    try {
      if (this.camera) {
        if (document.hidden && !this.model.get("keep_running_hidden")) {
          this.paused = true;
          this.setStatus("paused", "Camera paused while the page is hidden.");
        } else {
          this.setStatus("starting", "Asking for the camera…");
          if (!(await this.openCamera(gen))) return;
        }
      }
      const transport = this.model.get("transport");
      if (transport === "comm" || (transport === "auto" && this.fellBack)) return this.useComm(gen);
      this.setStatus("connecting", "Connecting to the kernel…");
      if (transport === "auto") return await this.connectOrFallBack(gen);
      await this.connect(gen);
      await this.connected(gen);
    } catch (err) {
      if (gen !== this.generation) return;
      console.warn("decart_nb: connecting failed", err);
      if (err.code === "NOT_CONNECTED") this.notConnected(err);
      else this.reconnect(gen);
    }
  }

  // One WebRTC connection attempt; "auto" gives it AUTO_CONNECT_MS before the comm takes over.
  connectWebRTC(gen) {
    const attempt = this.connect(gen).then(() => this.connected(gen));
    if (this.model.get("transport") !== "auto") return attempt;
    return deadline(attempt, AUTO_CONNECT_MS, "WebRTC did not connect");
  }

  // "auto": WebRTC when it connects within AUTO_CONNECT_MS, otherwise (UDP blocked, Binder) the comm.
  async connectOrFallBack(gen) {
    try {
      await this.connectWebRTC(gen);
    } catch (err) {
      if (gen !== this.generation || err.code === "NOT_CONNECTED") throw err;
      console.warn("decart_nb: WebRTC failed, frames go over the comm instead", err);
      this.fellBack = true;
      this.useComm(gen);
    }
  }

  useComm(gen) {
    this.rejectPending(new Error("superseded"));
    this.closePeer();
    this.remote = null;
    this.transport = "comm";
    this.setStatus("connecting", "Sending frames over the comm…");
    this.link = new CommLink(this, gen);
    this.link.start();
  }

  // The first frame acked or received over the comm: live.
  commLive() {
    if (this.link && this.status === "connecting") this.setStatus("live", "");
  }

  commFrame(bitmap) {
    this.commLive();
    for (const view of this.views) view.draw(bitmap);
  }

  // The session is disconnected: nothing to retry until session.connect() sends "restart".
  notConnected(err) {
    this.stop("kernel stopped", false);
    this.setStatus("stopped", err.message);
  }

  stop(reason, tellKernel) {
    this.generation += 1;
    const wasRunning = this.running;
    this.running = false;
    this.paused = false;
    this.reconnecting = false;
    clearTimeout(this.disconnectTimer);
    this.rejectPending(new Error(reason));
    this.closePeer();
    this.link?.close();
    this.link = null;
    this.transport = "";
    stopStream(this.stream);
    this.stream = null;
    this.remote = null;
    this.setStatus("stopped", reason === "kernel stopped" ? "" : `Stopped: ${reason}.`);
    if (tellKernel && wasRunning) this.send({ type: "stopped", reason });
  }

  restart() {
    if (!this.views.size) return;
    this.stop("restarting", false);
    this.start();
  }

  // A send that throws means the comm is gone for good (the kernel restarted or shut down):
  // turn the camera off rather than offer to nobody.
  send(msg, buffers) {
    try {
      if (buffers) this.model.send(msg, undefined, buffers);
      else this.model.send(msg);
      return true;
    } catch (err) {
      console.warn("decart_nb: the kernel is gone, stopping the camera", err);
      if (this.running) {
        this.stop("kernel gone", false);
        this.setStatus("stopped", "The kernel restarted or shut down: run the cell again to restart the camera.");
      }
      return false;
    }
  }

  // -- camera -------------------------------------------------------------------------------
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

  async getCamera() {
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

  // Returns false (after reporting) when the camera cannot be opened.
  async openCamera(gen) {
    let stream;
    try {
      stream = await this.getCamera();
    } catch (err) {
      if (gen !== this.generation) return false;
      this.cameraFailed(err);
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
    stopStream(this.stream);
    this.stream = stream;
    const track = stream.getVideoTracks()[0];
    const s = track.getSettings();
    const facing = s.facingMode || "";
    this.facing = facing;
    this.localError = null;
    this.send({
      type: "camera",
      facingMode: facing,
      label: track.label,
      deviceId: s.deviceId || "",
      width: s.width || 0,
      height: s.height || 0,
      frameRate: s.frameRate || 0,
    });
    this.reportDevices();
    this.render();
  }

  cameraFailed(err) {
    console.warn("decart_nb: camera failed", err);
    this.running = false;
    this.localError = { name: err.name, message: err.message };
    this.send({ type: "camera_error", name: err.name, message: err.message });
    this.setStatus("camera-error", "");
  }

  async reportDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    try {
      const all = await navigator.mediaDevices.enumerateDevices();
      const devices = all
        .filter((d) => d.kind === "videoinput")
        .map((d) => ({ deviceId: d.deviceId, label: d.label }));
      this.send({ type: "devices", devices });
    } catch (err) {
      console.warn("decart_nb: could not list cameras", err);
    }
  }

  // Another camera (device_id or facing_mode changed): same peer, the sent track is replaced.
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
      stream = await this.getCamera();
    } catch (err) {
      if (gen !== this.generation) return;
      if (err.name !== "NotReadableError") return this.cameraFailed(err);
      // Many phones open one camera at a time: release the old one, then ask again.
      stopStream(this.stream);
      try {
        stream = await this.getCamera();
      } catch (again) {
        if (gen === this.generation) this.cameraFailed(again);
        return;
      }
    }
    if (gen !== this.generation) return stopStream(stream);
    await this.replaceTrack(stream);
  }

  async replaceTrack(stream) {
    const track = stream.getVideoTracks()[0];
    if (this.sender) await this.sender.replaceTrack(track);
    this.useStream(stream);
  }

  visibilityChanged() {
    if (!this.camera || !this.running) return;
    const hide = document.hidden && !this.model.get("keep_running_hidden");
    if (hide && !this.paused) this.pause();
    else if (!hide && this.paused) this.resume();
  }

  pause() {
    this.paused = true;
    if (this.sender) this.sender.replaceTrack(null).catch((err) => console.warn("decart_nb: pause", err));
    stopStream(this.stream); // the camera light goes off
    this.stream = null;
    this.setStatus("paused", "Camera paused while the page is hidden.");
  }

  async resume() {
    const gen = this.generation;
    this.paused = false;
    this.setStatus("starting", "Resuming the camera…");
    let stream;
    try {
      stream = await this.getCamera();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err);
      return;
    }
    if (gen !== this.generation) return stopStream(stream);
    if (this.link) {
      await this.replaceTrack(stream); // the comm loop draws the new stream
      this.setStatus(this.link.sent ? "live" : "connecting", "");
    } else if (this.pc) {
      await this.replaceTrack(stream);
      this.setStatus(this.pc.connectionState === "connected" ? "live" : "connecting", "");
    } else {
      this.useStream(stream); // paused before the first connection: connect now
      this.start();
    }
  }

  // -- peer ---------------------------------------------------------------------------------
  preferCodec(transceiver) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
    const want = this.model.get("codec") === "h264" ? "video/h264" : "video/vp8";
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === want);
    if (!first.length) return;
    try {
      transceiver.setCodecPreferences([...first, ...codecs.filter((c) => c.mimeType.toLowerCase() !== want)]);
    } catch (err) {
      console.warn("decart_nb: codec preference not applied", err);
    }
  }

  async connect(gen) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: this.model.get("ice_servers") || [] });
    this.pc = pc;
    let transceiver;
    if (this.camera && this.stream) {
      transceiver = pc.addTransceiver(this.stream.getVideoTracks()[0], { direction: "sendrecv", streams: [this.stream] });
    } else if (this.camera) {
      transceiver = pc.addTransceiver("video", { direction: "sendrecv" }); // paused: a track comes later
    } else {
      transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    }
    this.sender = this.camera ? transceiver.sender : null;
    this.preferCodec(transceiver);
    pc.ontrack = (event) => this.gotTrack(event);
    pc.onconnectionstatechange = () => this.peerState(pc, gen);
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHER_TIMEOUT_MS);
    if (gen !== this.generation || pc !== this.pc) throw new Error("superseded");
    const sdp = await this.offer(pc.localDescription.sdp);
    if (gen !== this.generation || pc !== this.pc) throw new Error("superseded");
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  offer(sdp) {
    this.rejectPending(new Error("superseded"));
    const attempt = ++this.attempt;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending?.attempt === attempt) this.pending = null;
        reject(new Error(`no answer from the kernel within ${ANSWER_TIMEOUT_MS / 1000} s`));
      }, ANSWER_TIMEOUT_MS);
      this.pending = { attempt, resolve, reject, timer };
      this.send({ type: "offer", sdp, attempt });
    });
  }

  rejectPending(err) {
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  connected(gen) {
    const pc = this.pc;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (gen !== this.generation || pc !== this.pc) return done(new Error("superseded"));
        if (pc.connectionState === "connected") return done(null);
        if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          return done(new Error(`connection ${pc.connectionState}`));
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
    this.render();
  }

  // The kernel is on loopback or a LAN: the default 0 plays each frame as soon as it is decoded.
  // Measured in Chromium (bench scenario 7): 0 presents 26-28 of 30 fps (two frames often land
  // within one display refresh), 40 presents 29.5-30 with the same glass-to-glass p50 on a quiet
  // machine but 17-33 ms more in some runs under load; playout_target_ms lets the user choose.
  applyPlayoutTarget() {
    const receiver = this.receiver;
    if (!receiver) return;
    const ms = Number(this.model.get("playout_target_ms")) || 0;
    try {
      if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = ms;
      else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = ms / 1000;
    } catch (err) {
      console.warn("decart_nb: playout target not set", err);
    }
  }

  peerState(pc, gen) {
    if (pc !== this.pc || gen !== this.generation) return;
    const state = pc.connectionState;
    clearTimeout(this.disconnectTimer);
    if (state === "connected") {
      if (this.transport !== "webrtc") {
        this.transport = "webrtc";
        this.send({ type: "transport", transport: "webrtc" });
      }
      this.startPageStats(pc);
      if (!this.paused) this.setStatus("live", "");
    } else if (state === "failed") {
      this.reconnect(gen);
    } else if (state === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState === "disconnected") this.reconnect(gen);
      }, DISCONNECTED_GRACE_MS);
    }
  }

  async reconnect(gen) {
    if (this.reconnecting || gen !== this.generation) return;
    this.reconnecting = true;
    for (let i = 0; i < BACKOFF_S.length; i++) {
      this.closePeer();
      this.send({ type: "reconnecting", attempt: i + 1 });
      this.setStatus("reconnecting", `Connection lost: reconnecting (attempt ${i + 1} of ${BACKOFF_S.length})…`);
      await sleep(BACKOFF_S[i] * 1000);
      if (gen !== this.generation) return;
      try {
        await this.connectWebRTC(gen);
        this.reconnecting = false;
        return;
      } catch (err) {
        if (gen !== this.generation) return;
        console.warn(`decart_nb: reconnection attempt ${i + 1} failed`, err);
        if (err.code === "NOT_CONNECTED") return this.notConnected(err);
        if (this.model.get("transport") === "auto") {
          // WebRTC stopped working here (the network changed): the comm still reaches the kernel.
          this.reconnecting = false;
          this.fellBack = true;
          return this.useComm(gen);
        }
      }
    }
    this.send({ type: "gave_up", attempts: BACKOFF_S.length });
    this.stop("could not reconnect to the kernel", false);
    this.setStatus("stopped", "Could not reconnect to the kernel. Run the cell again to restart.");
  }

  closePeer() {
    const pc = this.pc;
    this.pc = null;
    this.sender = null;
    this.receiver = null;
    clearInterval(this.pageStatsTimer);
    this.pageStatsTimer = null;
    this.lastPageStats = null;
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
  }

  // -- page stats: what the browser sends, receives and presents, for session.stats -----------
  startPageStats(pc) {
    clearInterval(this.pageStatsTimer);
    this.lastPageStats = null;
    this.pageStatsTimer = setInterval(() => {
      if (pc !== this.pc) return;
      this.samplePageStats(pc).catch((err) => console.warn("decart_nb: page stats failed", err));
    }, PAGE_STATS_MS);
  }

  async samplePageStats(pc) {
    const [report, presented] = await Promise.all([pc.getStats(), this.presentedFrames()]);
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
    };
    const last = this.lastPageStats;
    this.lastPageStats = sample;
    if (!last) return;
    const rate = (key) =>
      typeof sample[key] === "number" && typeof last[key] === "number" && sample.t > last.t
        ? ((sample[key] - last[key]) * 1000) / (sample.t - last.t)
        : null;
    this.send({
      type: "page_stats",
      fps_sent: rate("sent"),
      fps_received: rate("received"),
      fps_decoded: rate("decoded"),
      fps_presented: rate("presented"),
      frames_dropped: inbound?.framesDropped ?? null,
      freezes: inbound?.freezeCount ?? null,
      width: inbound?.frameWidth ?? null,
      height: inbound?.frameHeight ?? null,
    });
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

  // -- kernel messages ----------------------------------------------------------------------
  kernelMessage(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    const pending = this.pending;
    if (msg.type === "frame") {
      this.link?.frame(msg, buffers);
    } else if (msg.type === "frame_ack") {
      this.link?.acked(msg.seq);
    } else if (msg.type === "answer" || msg.type === "answer_error") {
      if (!pending || pending.attempt !== msg.attempt) return; // an answer to a superseded offer
      this.pending = null;
      clearTimeout(pending.timer);
      if (msg.type === "answer") pending.resolve(msg.sdp);
      else pending.reject(Object.assign(new Error(msg.error?.message || "the kernel could not answer"), { code: msg.error?.code }));
    } else if (msg.type === "restart") {
      this.restart();
    } else if (msg.type === "stop") {
      this.stop("kernel stopped", false);
      this.render();
    }
  }

  // -- views --------------------------------------------------------------------------------
  setStatus(status, notice) {
    this.status = status;
    this.notice = notice;
    this.render();
  }

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

  draw(bitmap) {
    if (this.drawn === bitmap) return;
    const canvas = this.frames;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      [canvas.width, canvas.height] = [bitmap.width, bitmap.height];
    }
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.drawn = bitmap;
    if (this.frames.parentElement.dataset.empty) this.frames.parentElement.dataset.empty = "";
  }

  update(c) {
    const m = c.model;
    const root = this.root;
    const state = m.get("state");
    const comm = !!c.link;
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
    const transport = root.querySelector(".decart-transport");
    transport.textContent = c.transport ? `via ${TRANSPORT_TEXT[c.transport]}` : "";
    transport.title = c.transport === "comm" ? "WebRTC is not used: frames travel over the notebook's comm as JPEG (slower)" : "";
    this.preview.classList.toggle("decart-selfie", c.selfie);
    this.inputCaption.textContent = "Camera" + (c.selfie ? " (mirrored, as the model sees it)" : "");

    root.querySelector(".decart-state b").textContent = STATE_TEXT[state] || state;
    root.querySelector(".decart-state").className = `decart-state decart-state-${state}`;
    root.querySelector(".decart-stats").textContent = statsText(m.get("stats") || {});
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

function statsText(s) {
  if (!s || s.fps_in === undefined) return "";
  const parts = [`in ${num(s.fps_in)} fps`, `out ${num(s.fps_out)} fps`];
  if (s.width) parts.push(`${s.width}×${s.height}`);
  if (s.latency_ms_p50 !== null && s.latency_ms_p50 !== undefined) parts.push(`kernel ${num(s.latency_ms_p50)} ms`);
  if (s.frames_dropped) parts.push(`${s.frames_dropped} dropped`);
  if (typeof s.page_fps_presented === "number") parts.push(`shown ${num(s.page_fps_presented)} fps`);
  return parts.join(" · ");
}

function num(x) {
  return typeof x === "number" ? x.toFixed(x >= 100 ? 0 : 1) : "–";
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
