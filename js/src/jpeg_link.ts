// Frames over the comm as JPEG, where WebCodecs cannot do VP8 (or transport "jpeg"): the camera
// goes to the kernel as JPEG drawn at the model's size, the output comes back as JPEG. One frame
// in flight each way: the next camera frame leaves after the kernel's ack, and we ack each output
// frame once it is decoded, so the newest frame always wins.
import type { Link, LinkHost } from "./link.ts";
import type { KernelMessage } from "./schema.ts";
import { FRAME_ACK_TIMEOUT_MS, JPEG_QUALITY } from "./timing.ts";
import { sleep } from "./util.ts";

interface InFlight {
  seq: number;
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
  sentAt: number; // the bench reads send->ack
}

export class JpegLink implements Link {
  readonly kind = "jpeg";
  readonly codec = "jpeg";
  readonly drawsFrames = true;
  readonly remote = null;
  seq = 0;
  waiting: InFlight | null = null; // the camera frame in flight
  output: ImageBitmap | null = null; // the newest output frame
  closed = false;
  sent = 0; // camera frames sent
  received = 0; // output frames received

  constructor(
    readonly host: LinkHost,
    readonly gen: number,
  ) {}

  get live(): boolean {
    return !this.closed && this.gen === this.host.generation;
  }

  get up(): boolean {
    return this.sent > 0;
  }

  async start(): Promise<void> {
    this.host.carrying(this);
    if (this.host.camera) this.sendCamera().catch((err) => console.warn("decart_nb: comm camera loop stopped", err));
  }

  reset(): void {}

  async setTrack(): Promise<void> {} // the camera loop reads host.stream for each frame

  message(msg: KernelMessage, buffers?: readonly ArrayBufferView[]): boolean {
    if (msg.type === "frame") void this.frame(msg.seq, buffers);
    else if (msg.type === "frame_ack") this.acked(msg.seq);
    else return false;
    return true;
  }

  async sendCamera(): Promise<void> {
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
        ctx?.drawImage(video, 0, 0, w, h);
        const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
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

  sendFrame(buffer: ArrayBuffer): Promise<void> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.acked(seq, false), FRAME_ACK_TIMEOUT_MS);
      this.waiting = { seq, resolve, timer, sentAt: performance.now() };
      if (this.host.send({ type: "frame", seq }, [buffer])) this.sent += 1;
      else this.acked(seq, false);
    });
  }

  // `byKernel` false: given up waiting (a lost ack, or closing), not a sign of life.
  acked(seq: number, byKernel = true): void {
    const waiting = this.waiting;
    if (!waiting || waiting.seq !== seq) return;
    this.waiting = null;
    clearTimeout(waiting.timer);
    waiting.resolve();
    if (byKernel && this.live) this.host.linkLive(this);
  }

  async frame(seq: number, buffers?: readonly ArrayBufferView[]): Promise<void> {
    const jpeg = buffers?.[0];
    if (!this.live || !jpeg) return;
    let bitmap: ImageBitmap | null = null;
    try {
      bitmap = await createImageBitmap(new Blob([jpeg as ArrayBufferView<ArrayBuffer>], { type: "image/jpeg" }));
    } catch (err) {
      console.warn("decart_nb: an output frame did not decode", err);
    }
    if (!this.live) return bitmap?.close();
    this.host.send({ type: "frame_ack", seq });
    if (!bitmap) return;
    this.output?.close();
    this.output = bitmap;
    this.received += 1;
    this.host.linkLive(this);
    this.host.showFrame(bitmap);
  }

  close(): void {
    this.closed = true;
    if (this.waiting) this.acked(this.waiting.seq, false);
    this.output?.close();
    this.output = null;
  }
}
