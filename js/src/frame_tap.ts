// The camera's newest frame. MediaStreamTrackProcessor (Chromium) hands us every camera frame:
// we keep only the newest and close the others at once (the camera's frame pool must not run
// dry). Without it, a <video> of the track is read into a VideoFrame when one is wanted.
import { sleep } from "./util.ts";

// Chromium's MediaStreamTrackProcessor (not in TypeScript's DOM library).
interface TrackProcessor {
  readonly readable: ReadableStream<VideoFrame>;
}
type TrackProcessorClass = new (init: { track: MediaStreamTrack }) => TrackProcessor;

function trackProcessor(): TrackProcessorClass | null {
  const found = (globalThis as { MediaStreamTrackProcessor?: unknown }).MediaStreamTrackProcessor;
  return typeof found === "function" ? (found as TrackProcessorClass) : null;
}

export class FrameTap {
  latest: VideoFrame | null = null;
  latestAt = 0; // when the newest frame came (performance.now() ms)
  takenAt = 0; // when the frame take() returned last came
  closed = false;
  private wake: (() => void) | null = null;
  private reader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  private video: HTMLVideoElement | null = null;

  constructor(readonly track: MediaStreamTrack) {
    const Processor = trackProcessor();
    if (Processor) {
      this.reader = new Processor({ track }).readable.getReader();
      this.pump().catch((err) => this.closed || console.warn("decart_nb: camera frames stopped", err));
    } else {
      this.video = document.createElement("video");
      this.video.muted = true;
      this.video.playsInline = true;
      this.video.srcObject = new MediaStream([track]);
      this.video.play().catch((err) => console.warn("decart_nb: camera video did not start", err));
    }
  }

  private async pump(): Promise<void> {
    const reader = this.reader;
    while (reader && !this.closed) {
      const { value, done } = await reader.read();
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
  async take(notBefore = 0): Promise<VideoFrame | null> {
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
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.video ? 20 : 200);
      });
      this.wake = null;
    }
    return null;
  }

  close(): void {
    this.closed = true;
    this.reader?.cancel().catch((err) => console.warn("decart_nb: closing the camera frames", err));
    this.latest?.close();
    this.latest = null;
    this.wake?.();
    if (this.video) this.video.srcObject = null;
  }
}
