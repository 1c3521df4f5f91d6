// Video over the comm: the camera leaves as VP8 chunks (WebCodecs), the output comes back as VP8
// chunks, over the page socket while it is live, else the comm. At most the RateController's
// `window` chunks in flight each way (the bandwidth-delay product in chunks, rule 5 of
// decart_nb/media/rate.py: 2 to 10), each acked once decoded, so send->ack is the time the far end needs for a
// chunk; the RateController turns it into bitrate, frame rate and size. A VP8 delta frame can
// never be dropped, so we encode only what we send: once the window has room (and a frame period
// has passed), the newest camera frame is encoded and sent.
import { FrameTap } from "./frame_tap.ts";
import type { Delivery, Link, LinkHost } from "./link.ts";
import { RateController } from "./rate.ts";
import type { KernelMessage, MediaMessage } from "./schema.ts";
import { countPerSecond } from "./stats.ts";
import { CAMERA_JITTER_MS, FRAME_ACK_TIMEOUT_MS, PAGE_STATS_MS } from "./timing.ts";
import { sleep } from "./util.ts";

// Can this browser encode and decode VP8 with WebCodecs? Asked once per page.
let vp8Check: Promise<boolean> | null = null;
export function vp8Supported(width: number, height: number): Promise<boolean> {
  vp8Check ??= (async () => {
    const g = globalThis as { VideoEncoder?: unknown; VideoDecoder?: unknown; EncodedVideoChunk?: unknown };
    if (![g.VideoEncoder, g.VideoDecoder, g.EncodedVideoChunk].every((f) => typeof f === "function")) return false;
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

// A camera chunk in flight.
interface InFlight {
  seq: number;
  bytes: number;
  sentAt: number; // the bench reads send->ack
  done: Promise<void>;
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
}

interface EncoderSettings {
  width: number;
  height: number;
  kbps: number;
  fps: number;
}

type Counts = { t: number; sent: number; received: number; decoded: number };

// Chromium's VP8 encoder puts no cap on a key frame: at the target bitrate a fresh encoder's
// first key frame took 14-23 periods' bits (142 KB at 640x360, 226 KB at 960x540 at 2.4 Mbit/s, a
// detailed camera picture), which holds a 5 Mbit/s link for a fraction of a second and starves
// the deltas after it; at a tenth, 32-79 KB with the deltas after it at their size
// (bench/webcodecs_keys.py). The kernel's libvpx caps its own (max-intra-rate, media/vp8.py).
export const KEY_BITRATE_SHARE = 0.1;

export class CodecLink implements Link {
  readonly kind = "codec";
  readonly codec = "vp8";
  readonly drawsFrames = true;
  readonly remote = null;
  closed = false;
  sent = 0; // camera chunks sent
  received = 0; // output chunks received
  decoded = 0;
  output: VideoFrame | null = null; // the newest decoded output frame, drawn by the views
  // camera -> kernel
  seq = 0;
  tap: FrameTap | null = null;
  encoder: VideoEncoder | null = null;
  encoding: { resolve: (chunk: EncodedVideoChunk | null) => void } | null = null; // the encode in progress
  configured: EncoderSettings | null = null; // what the encoder runs with
  wantKey = true;
  waiting = new Map<number, InFlight>(); // the chunks in flight, oldest first
  readonly rate: RateController;
  // kernel -> page
  decoder: VideoDecoder | null = null;
  needKey = true;
  decoding: number[] = []; // seqs of the output chunks given to the decoder, not yet acked
  statsTimer: ReturnType<typeof setInterval> | undefined = undefined;
  lastStats: Counts | null = null;

  constructor(
    readonly host: LinkHost,
    readonly gen: number,
  ) {
    const m = host.model;
    this.rate = new RateController(m.get("width"), m.get("height"), m.get("fps"));
  }

  get live(): boolean {
    return !this.closed && this.gen === this.host.generation;
  }

  get up(): boolean {
    return this.sent > 0 || this.received > 0;
  }

  get pipeLive(): boolean {
    return this.host.pipeLive;
  }

  // Chunks, acks and key-frame requests: over the page socket while it is live, else the comm.
  sendMedia(msg: MediaMessage, chunk?: EncodedVideoChunk): Delivery | boolean {
    if (this.host.pipe?.sendMedia(msg, chunk)) return true;
    if (!chunk) return this.host.send(msg);
    const data = new ArrayBuffer(chunk.byteLength);
    chunk.copyTo(data);
    return this.host.send(msg, [data]);
  }

  // The page socket went live or away. Away: what was in flight on it is gone, so nothing waits
  // for its acks and the next chunk is a key frame (the kernel does the same with its output).
  pipeChanged(): void {
    if (!this.live) return;
    if (!this.pipeLive) {
      for (const w of [...this.waiting.values()]) this.finish(w);
      this.wantKey = true;
    }
    this.host.render();
  }

  async start(): Promise<void> {
    this.host.carrying(this);
    this.sendMedia({ type: "keyframe" }); // our decoder starts from nothing
    this.statsTimer = setInterval(() => this.sendPageStats(), PAGE_STATS_MS);
    if (this.host.camera) this.sendCamera().catch((err) => console.warn("decart_nb: codec camera loop stopped", err));
  }

  reset(): void {}

  async setTrack(): Promise<void> {
    this.wantKey = true; // the camera loop taps the new track
  }

  message(msg: KernelMessage, buffers?: readonly ArrayBufferView[]): boolean {
    if (msg.type === "chunk") this.chunk(msg, buffers);
    else if (msg.type === "chunk_ack") this.acked(msg.seq);
    else if (msg.type === "keyframe") this.wantKey = true;
    else return false;
    return true;
  }

  // -- camera -> kernel -------------------------------------------------------------------------
  async sendCamera(): Promise<void> {
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
        const tap = this.tap;
        const frame = await tap.take(last + 1000 / this.rate.fps - CAMERA_JITTER_MS);
        if (!frame) continue;
        if (!this.live) return frame.close();
        last = tap.takenAt; // the period counts from the frame's arrival, not from our turn
        let chunk: EncodedVideoChunk | null = null;
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

  closeTap(): void {
    this.tap?.close();
    this.tap = null;
  }

  // Encodes `frame` (and closes it) at the rate controller's rung, bitrate and fps; a new size,
  // or a bitrate or fps well off the encoder's, reconfigures it first. null: libvpx skipped it.
  async encode(frame: VideoFrame): Promise<EncodedVideoChunk | null> {
    try {
      const { width, height } = this.rate.rung;
      const [kbps, fps, c] = [this.rate.kbps, this.rate.fps, this.configured];
      const resize = !c || c.width !== width || c.height !== height;
      const key = this.wantKey || resize;
      // A key frame at KEY_BITRATE_SHARE of the bitrate; the next frame's check puts it back (a
      // configure() that keeps the size keeps the encoder's state: no key frame).
      const target = key ? kbps * KEY_BITRATE_SHARE : kbps;
      if (resize || Math.abs(target - c.kbps) > 0.1 * c.kbps || Math.abs(fps - c.fps) > 1) {
        this.configureEncoder(width, height, target, fps);
      }
      const encoder = this.encoder;
      if (!encoder) throw new Error("no VP8 encoder");
      this.wantKey = false;
      const out = new Promise<EncodedVideoChunk | null>((resolve) => (this.encoding = { resolve }));
      const started = performance.now();
      encoder.encode(frame, { keyFrame: key });
      // flush() resolves after every output: an encode that yields nothing cannot hang us.
      const chunk = await Promise.race([out, encoder.flush().then(() => null)]);
      if (!chunk && key) this.wantKey = true;
      if (chunk && !resize) this.rate.onEncoded((performance.now() - started) / 1000); // rule 4
      return chunk;
    } finally {
      this.encoding = null;
      frame.close();
    }
  }

  configureEncoder(width: number, height: number, kbps: number, fps: number): void {
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

  // Sends the chunk, then waits until fewer than the rate's window of chunks are unacked.
  async sendChunk(chunk: EncodedVideoChunk): Promise<void> {
    const seq = ++this.seq;
    const { width, height } = this.configured ?? this.rate.rung;
    let resolve: () => void = () => {};
    const done = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => this.lost(seq), FRAME_ACK_TIMEOUT_MS);
    this.waiting.set(seq, { seq, bytes: chunk.byteLength, sentAt: performance.now(), done, resolve, timer });
    if (this.sendMedia({ type: "chunk", seq, key: chunk.type === "key", width, height }, chunk)) this.sent += 1;
    else this.lost(seq);
    while (this.live && !this.rate.room(this.waiting.size)) {
      const oldest = this.waiting.values().next().value;
      if (!oldest) break;
      await oldest.done;
    }
  }

  acked(seq: number): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.finish(w);
    const now = performance.now();
    if (this.rate.onAck(w.bytes, (now - w.sentAt) / 1000, now / 1000)) this.wantKey = true;
    if (this.live) this.host.linkLive(this);
  }

  // No ack within FRAME_ACK_TIMEOUT_MS: the chunk is lost, and with it the chain of delta frames.
  lost(seq: number): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    this.finish(w);
    this.rate.onLost(performance.now() / 1000);
    this.wantKey = true;
  }

  finish(w: InFlight): void {
    this.waiting.delete(w.seq);
    clearTimeout(w.timer);
    w.resolve();
  }

  // -- kernel -> page ---------------------------------------------------------------------------
  // An output chunk is acked once decoded, not on receipt (as the kernel does with the camera's):
  // a page too busy to decode at the kernel's rate then reads as a slow link to the kernel's
  // RateController, and the decoder's queue cannot grow without bound.
  chunk(msg: { seq: number; key: boolean }, buffers?: readonly ArrayBufferView[]): void {
    const data = buffers?.[0];
    if (!this.live || !data) return;
    this.received += 1;
    if (this.needKey && !msg.key) {
      this.sendMedia({ type: "chunk_ack", seq: msg.seq }); // no reference: a key frame is coming
      return;
    }
    try {
      if (!this.decoder || this.decoder.state === "closed") this.openDecoder();
      const type = msg.key ? "key" : "delta";
      this.decoding.push(msg.seq);
      this.decoder?.decode(new EncodedVideoChunk({ type, timestamp: msg.seq, data: data as ArrayBufferView<ArrayBuffer> }));
      this.needKey = false;
    } catch (err) {
      this.decodeFailed(err);
    }
  }

  // Acks the chunks given to the decoder up to `seq` (a VP8 chunk gives one frame, or none).
  ackDecoded(seq: number): void {
    while (this.decoding.length && (this.decoding[0] ?? Infinity) <= seq) {
      const acked = this.decoding.shift() ?? seq;
      this.sendMedia({ type: "chunk_ack", seq: acked });
    }
  }

  openDecoder(): void {
    this.decoder = new VideoDecoder({
      output: (frame) => this.show(frame),
      error: (err) => this.decodeFailed(err),
    });
    this.decoder.configure({ codec: "vp8", optimizeForLatency: true });
  }

  decodeFailed(err: unknown): void {
    if (!this.live) return;
    console.warn("decart_nb: an output chunk did not decode: asking for a key frame", err);
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.needKey = true;
    for (const seq of this.decoding.splice(0)) this.sendMedia({ type: "chunk_ack", seq }); // nothing will come of them
    this.sendMedia({ type: "keyframe" });
  }

  show(frame: VideoFrame): void {
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
  sendPageStats(): void {
    if (!this.live) return;
    const sample: Counts = { t: performance.now(), sent: this.sent, received: this.received, decoded: this.decoded };
    const last = this.lastStats;
    this.lastStats = sample;
    if (!last) return;
    const rate = (key: "sent" | "received" | "decoded"): number => countPerSecond(sample, last, key);
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

  close(): void {
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
