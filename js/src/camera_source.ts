// The camera: getUserMedia with the model's size and rate (exact first, then as a preference),
// failures as CameraError (the kernel maps their names to CAMERA_* codes), switching, pause, and
// the track's `ended` (unplugged, permission revoked).
import type { WidgetModel } from "./model.ts";
import type { CameraInfo, DeviceInfo } from "./schema.ts";
import { stopStream } from "./util.ts";

export class CameraError extends Error {
  constructor(err: unknown) {
    const e = err as { name?: unknown; message?: unknown } | null | undefined;
    super(e && e.message ? String(e.message) : String(err));
    this.name = (e && typeof e.name === "string" && e.name) || "Error";
  }
}

export class CameraSource {
  stream: MediaStream | null = null;
  facing = ""; // the camera's own facingMode ("" when it does not say)
  paused = false; // released while the page is hidden
  private unlisten: (() => void) | null = null;

  // onEnded(track): the camera stopped by itself (unplugged, permission revoked).
  constructor(
    private readonly model: WidgetModel,
    private readonly onEnded: (track: MediaStreamTrack) => void,
  ) {}

  get track(): MediaStreamTrack | null {
    return this.stream ? (this.stream.getVideoTracks()[0] ?? null) : null;
  }

  constraints(ideal: boolean): MediaStreamConstraints {
    const m = this.model;
    const [w, h, fps] = [m.get("width"), m.get("height"), m.get("fps")];
    const video: MediaTrackConstraints = ideal
      ? { width: { ideal: w }, height: { ideal: h }, frameRate: { ideal: fps } }
      : { width: { exact: w }, height: { exact: h }, frameRate: { ideal: fps, max: fps } };
    const id = m.get("device_id");
    if (id) video.deviceId = ideal ? { ideal: id } : { exact: id };
    else video.facingMode = { ideal: m.get("facing_mode") };
    return { video, audio: false };
  }

  async open(): Promise<MediaStream> {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new CameraError({ name: "SecurityError", message: "No camera API: open the notebook over https or from localhost." });
    }
    try {
      return await navigator.mediaDevices.getUserMedia(this.constraints(false));
    } catch (err) {
      if ((err as Error).name !== "OverconstrainedError") throw new CameraError(err);
    }
    try {
      return await navigator.mediaDevices.getUserMedia(this.constraints(true));
    } catch (err) {
      throw new CameraError(err);
    }
  }

  // Another camera while this one is open. Many phones open one camera at a time: when the new
  // one is busy, release the old one and ask again.
  async reopen(): Promise<MediaStream> {
    try {
      return await this.open();
    } catch (err) {
      if ((err as Error).name !== "NotReadableError") throw err;
    }
    this.release();
    return await this.open();
  }

  // Makes `stream` the camera (releasing the previous one); returns what the kernel is told.
  use(stream: MediaStream): CameraInfo {
    this.release();
    this.stream = stream;
    const track = this.track;
    if (!track) throw new CameraError({ name: "NotFoundError", message: "the camera's stream has no video track" });
    const ended = (): void => {
      if (this.stream === stream) this.onEnded(track);
    };
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

  release(): void {
    this.unlisten?.();
    this.unlisten = null;
    stopStream(this.stream); // the camera light goes off (stop() itself fires no `ended`)
    this.stream = null;
  }

  async devices(): Promise<DeviceInfo[] | null> {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return null;
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((d) => d.kind === "videoinput").map((d) => ({ deviceId: d.deviceId, label: d.label }));
  }
}
