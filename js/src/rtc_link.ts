// WebRTC: one RTCPeerConnection at a time, its offer answered by the kernel (no trickle: we wait
// for ICE gathering), the codec preference, the playout target, and the page's stats.
import type { Delivery, Link, LinkHost } from "./link.ts";
import type { KernelMessage } from "./schema.ts";
import { kbps, perSecond, roundTripMs, type Sample, type StatsEntry, type StatsReport } from "./stats.ts";
import { ANSWER_TIMEOUT_MS, CONNECT_TIMEOUT_MS, DISCONNECTED_GRACE_MS, ICE_GATHER_TIMEOUT_MS, PAGE_STATS_MS } from "./timing.ts";
import { fallbackError, type FallbackError } from "./util.ts";

// The offer waiting for its answer.
interface PendingOffer {
  attempt: number;
  resolve: (sdp: string) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  sent: Delivery; // "socket", "queued", "comm"
}

type StatsKey = "sent" | "received" | "decoded" | "presented" | "bytesSent" | "bytesReceived";

// The RTCRtpReceiver's playout knobs (newer and older Chromium; not in every DOM library).
interface PlayoutReceiver {
  jitterBufferTarget?: number | null;
  playoutDelayHint?: number;
}

export function iceGathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = (): void => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = (): void => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms); // send what we have: host candidates come first
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class RtcLink implements Link {
  readonly kind = "webrtc";
  readonly codec: string;
  readonly drawsFrames = false;
  readonly output = null;
  readonly received = 0;
  answeredAt = 0; // when the kernel's answer was applied (ICE checks start then)
  pc: RTCPeerConnection | null = null;
  sender: RTCRtpSender | null = null; // the camera's (null: receive only)
  receiver: RTCRtpReceiver | null = null; // the output's
  remote: MediaStream | null = null; // the output; kept while reconnecting, replaced by the next track
  pending: PendingOffer | null = null; // the offer waiting for its answer
  closed = false;
  disconnectTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  statsTimer: ReturnType<typeof setInterval> | null = null;
  lastStats: Sample<StatsKey> | null = null; // the previous sample: rates are differences between samples

  constructor(
    readonly host: LinkHost,
    readonly gen: number,
  ) {
    this.codec = host.model.get("codec") || "vp8";
  }

  get live(): boolean {
    return !this.closed && this.gen === this.host.generation;
  }

  get up(): boolean {
    return this.pc?.connectionState === "connected";
  }

  // One attempt: a new peer, our offer, the kernel's answer, then until the peer connects.
  async start(): Promise<void> {
    this.reset();
    const iceServers = this.host.iceServers() ?? (await this.host.waitIceServers(this.gen)) ?? [];
    if (!this.live) throw new Error("superseded");
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    const camera = this.host.camera;
    const stream = this.host.stream;
    const track = stream?.getVideoTracks()[0];
    let transceiver: RTCRtpTransceiver;
    if (camera && stream && track) {
      transceiver = pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
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
    const sdp = await this.offer(pc.localDescription?.sdp ?? "");
    if (!this.live || pc !== this.pc) throw new Error("superseded");
    await pc.setRemoteDescription({ type: "answer", sdp });
    this.answeredAt = performance.now();
    await this.connected(pc);
  }

  preferCodec(transceiver: RTCRtpTransceiver): void {
    const receiverClass = (window as { RTCRtpReceiver?: typeof RTCRtpReceiver }).RTCRtpReceiver;
    if (!transceiver.setCodecPreferences || !receiverClass?.getCapabilities) return;
    const want = this.host.model.get("codec") === "h264" ? "video/h264" : "video/vp8";
    const codecs = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === want);
    if (!first.length) return;
    try {
      transceiver.setCodecPreferences([...first, ...codecs.filter((c) => c.mimeType.toLowerCase() !== want)]);
    } catch (err) {
      console.warn("decart_nb: codec preference not applied", err);
    }
  }

  offer(sdp: string): Promise<string> {
    this.rejectPending(new Error("superseded"));
    const attempt = this.host.nextOffer();
    return new Promise((resolve, reject) => {
      const pending: PendingOffer = { attempt, resolve, reject, timer: undefined, sent: false };
      this.pending = pending;
      pending.sent = this.host.send({ type: "offer", sdp, attempt });
      this.armAnswerTimer(pending);
      this.host.waitingForKernel(this.waitsForKernel(pending));
    });
  }

  // Does the offer wait for a running cell? It went over the comm (the kernel reads it between
  // cells) while the kernel is busy; over the page socket it is answered at once.
  waitsForKernel(pending: PendingOffer): boolean {
    const viaSocket = pending.sent === "socket" || (pending.sent === "queued" && this.host.pipeLive);
    return !viaSocket && Boolean(this.host.model.get("kernel_busy"));
  }

  // ANSWER_TIMEOUT_MS, which starts again while the offer waits for a running cell.
  armAnswerTimer(pending: PendingOffer): void {
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
  kernelBusyChanged(): void {
    const pending = this.pending;
    if (!pending || !this.live) return;
    const waits = this.waitsForKernel(pending);
    if (!waits) this.armAnswerTimer(pending);
    this.host.waitingForKernel(waits);
  }

  message(msg: KernelMessage): boolean {
    if (msg.type !== "answer" && msg.type !== "answer_error") return false;
    const pending = this.pending;
    if (!pending || pending.attempt !== msg.attempt) return true; // an answer to a superseded offer
    this.pending = null;
    clearTimeout(pending.timer);
    this.host.waitingForKernel(false);
    if (msg.type === "answer") pending.resolve(msg.sdp);
    else {
      const err: FallbackError = new Error(msg.error?.message || "the kernel could not answer");
      pending.reject(Object.assign(err, { code: msg.error?.code }));
    }
    return true;
  }

  rejectPending(err: Error): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    clearTimeout(pending.timer);
    this.host.waitingForKernel(false);
    pending.reject(err);
  }

  connected(pc: RTCPeerConnection): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.live || pc !== this.pc) return done(new Error("superseded"));
        if (pc.connectionState === "connected") return done(null);
        if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          return done(fallbackError(`connection ${pc.connectionState}`, `WebRTC failed: the connection ${pc.connectionState}`));
        }
      };
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(new Error("connection timed out")), CONNECT_TIMEOUT_MS);
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  gotTrack(event: RTCTrackEvent): void {
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
  applyPlayoutTarget(): void {
    const receiver: PlayoutReceiver | null = this.receiver;
    if (!receiver) return;
    const ms = Number(this.host.model.get("playout_target_ms")) || 0;
    try {
      if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = ms;
      else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = ms / 1000;
    } catch (err) {
      console.warn("decart_nb: playout target not set", err);
    }
  }

  async setTrack(track: MediaStreamTrack | null): Promise<void> {
    if (this.sender) await this.sender.replaceTrack(track);
  }

  peerState(pc: RTCPeerConnection): void {
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
  async icePath(): Promise<boolean> {
    const pc = this.pc;
    if (!pc) return false;
    if (pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed") return true;
    let found = false;
    ((await pc.getStats()) as StatsReport).forEach((r) => {
      if (r.type === "candidate-pair" && r.state === "succeeded") found = true;
    });
    return found;
  }

  reset(): void {
    const pc = this.pc;
    this.pc = null;
    this.answeredAt = 0;
    this.sender = null;
    this.receiver = null;
    clearTimeout(this.disconnectTimer);
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.lastStats = null;
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
  }

  close(): void {
    this.closed = true;
    this.rejectPending(new Error("transport closed"));
    this.reset();
    this.remote = null;
  }

  // -- page stats: what the browser sends, receives and presents, for session.stats -------------
  startPageStats(pc: RTCPeerConnection): void {
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.lastStats = null;
    this.statsTimer = setInterval(() => {
      if (pc !== this.pc || !this.live) return;
      this.samplePageStats(pc).catch((err) => console.warn("decart_nb: page stats failed", err));
    }, PAGE_STATS_MS);
  }

  async samplePageStats(pc: RTCPeerConnection): Promise<void> {
    const [stats, presented] = await Promise.all([pc.getStats(), this.host.presentedFrames()]);
    const report = stats as StatsReport;
    if (pc !== this.pc) return;
    let inbound: StatsEntry | null = null;
    let outbound: StatsEntry | null = null;
    report.forEach((r) => {
      if (r.kind !== "video") return;
      if (r.type === "inbound-rtp") inbound = r;
      else if (r.type === "outbound-rtp" && (!outbound || (r.framesSent || 0) > ((outbound as StatsEntry).framesSent || 0))) outbound = r;
    });
    const [inb, outb] = [inbound as StatsEntry | null, outbound as StatsEntry | null]; // assigned in the callback
    const sample: Sample<StatsKey> = {
      t: performance.now(),
      sent: outb?.framesSent,
      received: inb?.framesReceived,
      decoded: inb?.framesDecoded,
      presented,
      bytesSent: outb?.bytesSent,
      bytesReceived: inb?.bytesReceived,
    };
    const last = this.lastStats;
    this.lastStats = sample;
    if (!last) return;
    const rate = (key: StatsKey): number | null => perSecond(sample, last, key);
    this.host.send({
      type: "page_stats",
      fps_sent: rate("sent"),
      fps_received: rate("received"),
      fps_decoded: rate("decoded"),
      fps_presented: rate("presented"),
      frames_dropped: inb?.framesDropped ?? null,
      freezes: inb?.freezeCount ?? null,
      width: inb?.frameWidth ?? null,
      height: inb?.frameHeight ?? null,
      rtt_ms: roundTripMs(report),
      kbps_sent: kbps(rate("bytesSent")),
      kbps_received: kbps(rate("bytesReceived")),
    });
  }
}
