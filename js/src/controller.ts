// One Controller per widget model; every view of the model shows the same streams, so displaying
// the widget twice never opens the camera twice. It owns the status (transitions.ts), the camera
// (camera_source.ts) and the transport (one link: rtc_link.ts, codec_link.ts, jpeg_link.ts), picks
// the transport, retries, handles the kernel's messages (schema.ts; its own go out through
// kernel_channel.ts) and renders the views.
import { CameraSource } from "./camera_source.ts";
import { CodecLink, vp8Supported } from "./codec_link.ts";
import { registry } from "./debug.ts";
import { JpegLink } from "./jpeg_link.ts";
import type { Delivery, DrawnFrame, Link, LinkHost } from "./link.ts";
import { transportChoice, type WidgetModel } from "./model.ts";
import { KernelChannel, type ChannelHost } from "./kernel_channel.ts";
import type { PagePipe } from "./page_pipe.ts";
import { RtcLink } from "./rtc_link.ts";
import { asKernelMessage, type IceServer, type KernelMessage, type PageMessage } from "./schema.ts";
import {
  AUTO_CONNECT_MS,
  AUTO_ICE_MS,
  BACKOFF_S,
  ICE_SERVERS_WAIT_MS,
  LAST_VIEW_GRACE_MS,
  PRESENTED_WAIT_MS,
} from "./timing.ts";
import { allowed, IDLE_STATUSES, type Status } from "./transitions.ts";
import { errorCode, fallbackError, fallbackReason, sleep, stopStream } from "./util.ts";

export const KERNEL_BUSY_NOTICE = "Waiting for the kernel (a cell is running)…";

// What the Controller asks of a view (view.ts).
export interface ControllerView {
  readonly output: HTMLVideoElement; // the output <video>: its presented frames are page stats
  update(controller: Controller): void;
  draw(frame: DrawnFrame): void;
}

// What "auto" needs of a WebRTC link to decide it found no path.
interface AutoProbe {
  answeredAt: number;
  icePath(): Promise<boolean>;
}

export class Controller implements LinkHost, ChannelHost {
  readonly views = new Set<ControllerView>();
  readonly source: CameraSource;
  link: Link | null = null; // the transport of this generation
  readonly channel: KernelChannel = new KernelChannel(this); // the page's messages to the kernel
  iceServerList: IceServer[] | null = null; // the kernel's ICE servers (its `ice_servers` message), once sent
  iceMissing = false; // the last wait for them ran out: the reconnection notice says so
  transport: Link["kind"] | "" = ""; // what carries the frames now
  reason = ""; // why the frames do not take WebRTC ("" on WebRTC): the transport message's
  // "auto" found in this reconnection loop that WebRTC does not connect: the loop uses the comm.
  // Each new connection (start: Reconnect, a model change, Try again) probes WebRTC again.
  fellBack = false;
  noticeBeforeWait: string | null = null; // the notice a "waiting for the kernel" notice replaced
  generation = 0; // bumped by stop() and camera failures: stale async work backs off
  attempt = 0; // offers made (the kernel's answer names its offer)
  retrying = false; // in the reconnection loop (the status may say "paused" meanwhile)
  switching: Promise<void> = Promise.resolve();
  status: Status = "idle";
  notice = "";
  localError: { name: string; message: string } | null = null; // a camera failure, until the kernel's arrives
  lastViewTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private readonly onVisibility = (): void => this.visibilityChanged();
  private readonly onPageHide = (): void => this.stop("page closed", true);
  private readonly onDeviceChange = (): void => void this.reportDevices();

  constructor(readonly model: WidgetModel) {
    this.source = new CameraSource(model, (track) => this.cameraEnded(track));
  }

  // -- what the parts and the views read -----------------------------------------------------
  get camera(): boolean {
    return this.model.get("mode") === "camera";
  }

  get running(): boolean {
    return !IDLE_STATUSES.has(this.status);
  }

  get stream(): MediaStream | null {
    return this.source.stream;
  }

  get paused(): boolean {
    return this.source.paused;
  }

  get remote(): MediaStream | null {
    return this.link?.remote ?? null;
  }

  get pc(): RTCPeerConnection | null {
    return this.link?.pc ?? null;
  }

  // The preview is flipped exactly when the kernel flips the model's input (session.mirror), so
  // the camera and the output always face the same way.
  get selfie(): boolean {
    const mirror = this.model.get("mirror");
    return mirror === true || (mirror === "auto" && this.source.facing === "user");
  }

  // -- status ---------------------------------------------------------------------------------
  setStatus(status: Status, notice: string): boolean {
    if (!allowed(this.status, status)) {
      const why = `decart_nb: refused status transition ${this.status} -> ${status}`;
      if (registry?.strict) throw new Error(why);
      console.error(why);
      return false;
    }
    this.status = status;
    this.notice = notice;
    this.render();
    return true;
  }

  // -- lifecycle ------------------------------------------------------------------------------
  listen(): void {
    this.model.on("msg:custom", (msg, buffers) => this.kernelMessage(msg, buffers));
    for (const name of ["state", "figures", "error", "mirror"] as const) this.model.on(`change:${name}`, () => this.render());
    this.model.on("change:device_id", () => void this.switchCamera());
    this.model.on("change:facing_mode", () => void this.switchCamera());
    this.model.on("change:keep_running_hidden", () => this.visibilityChanged());
    this.model.on("change:playout_target_ms", () => this.link?.applyPlayoutTarget?.());
    this.model.on("change:transport", () => this.restart());
    this.model.on("change:kernel_busy", () => this.link?.kernelBusyChanged?.());
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("pagehide", this.onPageHide);
    navigator.mediaDevices?.addEventListener?.("devicechange", this.onDeviceChange);
  }

  destroy(): void {
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("pagehide", this.onPageHide);
    navigator.mediaDevices?.removeEventListener?.("devicechange", this.onDeviceChange);
    this.stop("widget closed", false);
    this.views.clear();
    this.channel.close(); // the kernel's side is gone with the model
    this.iceServerList = null;
  }

  attach(view: ControllerView): void {
    clearTimeout(this.lastViewTimer);
    this.views.add(view);
    this.render();
    if (!this.running) void this.start();
  }

  detach(view: ControllerView): void {
    this.views.delete(view);
    if (this.views.size) return;
    clearTimeout(this.lastViewTimer);
    this.lastViewTimer = setTimeout(() => {
      if (!this.views.size) this.stop("no view left", true);
    }, LAST_VIEW_GRACE_MS);
  }

  async start(): Promise<void> {
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
      const transport = transportChoice(this.model);
      if (transport === "codec" || transport === "jpeg") {
        this.reason = `transport='${this.model.get("transport")}' was asked for`;
        return await this.useComm(gen);
      }
      this.setStatus("connecting", "Connecting to the kernel…");
      this.link = new RtcLink(this, gen);
      if (transport === "auto") return await this.connectOrFallBack(gen);
      await this.link.start();
    } catch (err) {
      if (gen !== this.generation) return;
      console.warn("decart_nb: connecting failed", err);
      if (errorCode(err) === "NOT_CONNECTED") this.notConnected(err as Error);
      else void this.reconnect(gen);
    }
  }

  // One connection attempt of the transport; "auto" gives WebRTC AUTO_CONNECT_MS from the kernel's
  // answer before the comm takes over, or AUTO_ICE_MS after it when ICE has found no path by then.
  connectLink(): Promise<void> {
    const link = this.link;
    if (!link) return Promise.reject(new Error("no transport"));
    const attempt = link.start();
    if (this.model.get("transport") !== "auto" || !(link instanceof RtcLink)) return attempt;
    const settled = { done: false };
    const done = (): void => {
      settled.done = true;
    };
    attempt.then(done, done);
    return Promise.race([attempt, this.autoDeadline(link, settled)]);
  }

  // Rejects when, after the kernel's answer, ICE has no working pair within AUTO_ICE_MS or the peer
  // has not connected within AUTO_CONNECT_MS; otherwise never settles (the attempt itself decides).
  // Before the answer nothing counts here: a slow answer is a busy kernel, not the network.
  async autoDeadline(link: AutoProbe, settled: { done: boolean }): Promise<never> {
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
    return new Promise<never>(() => {});
  }

  // "auto": WebRTC when it connects within AUTO_CONNECT_MS, otherwise (UDP blocked, Binder) the comm.
  async connectOrFallBack(gen: number): Promise<void> {
    try {
      await this.connectLink();
    } catch (err) {
      if (gen !== this.generation || errorCode(err) === "NOT_CONNECTED") throw err;
      console.warn("decart_nb: WebRTC failed, frames go over the comm instead", err);
      this.fellBack = true;
      this.reason = fallbackReason(err);
      await this.useComm(gen);
    }
  }

  // Video over the comm: VP8 (CodecLink) where WebCodecs can, else JPEG (JpegLink); "jpeg" forces JPEG.
  async useComm(gen: number): Promise<void> {
    this.dropLink();
    this.setStatus("connecting", "Sending frames over the comm…");
    const m = this.model;
    const jpeg = transportChoice(m) === "jpeg";
    const vp8 = !jpeg && (await vp8Supported(m.get("width"), m.get("height")));
    if (gen !== this.generation) return;
    if (!vp8 && !jpeg) this.reason = [this.reason, "no WebCodecs VP8 in this browser"].filter(Boolean).join("; ");
    this.link = vp8 ? new CodecLink(this, gen) : new JpegLink(this, gen);
    void this.link.start();
  }

  dropLink(): void {
    this.link?.close();
    this.link = null;
  }

  async reconnect(gen: number): Promise<void> {
    const link = this.link;
    if (this.retrying || gen !== this.generation || !link) return;
    this.retrying = true;
    for (const [i, backoff] of BACKOFF_S.entries()) {
      link.reset();
      this.send({ type: "reconnecting", attempt: i + 1 });
      const why = this.iceMissing ? "No ICE servers from the kernel" : "Connection lost";
      this.setStatus("reconnecting", `${why}: reconnecting (attempt ${i + 1} of ${BACKOFF_S.length})…`);
      await sleep(backoff * 1000);
      if (gen !== this.generation) return;
      try {
        await this.connectLink();
        this.retrying = false;
        return;
      } catch (err) {
        if (gen !== this.generation) return;
        console.warn(`decart_nb: reconnection attempt ${i + 1} failed`, err);
        if (errorCode(err) === "NOT_CONNECTED") return this.notConnected(err as Error);
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
  notConnected(err: Error): void {
    this.stop("kernel stopped", false);
    this.setStatus("stopped", err.message);
  }

  stop(reason: string, tellKernel: boolean): void {
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

  restart(): void {
    if (!this.views.size) return;
    this.stop("restarting", false);
    void this.start();
  }

  // -- the transport's callbacks --------------------------------------------------------------
  nextOffer(): number {
    return ++this.attempt;
  }

  carrying(link: Link): void {
    if (link !== this.link || this.transport === link.kind) return;
    this.transport = link.kind;
    if (link.kind === "webrtc") this.reason = "";
    this.send({ type: "transport", transport: link.kind, codec: link.codec, reason: this.reason });
  }

  // The offer waits (or no longer waits) for a running cell: the notice says so.
  waitingForKernel(waits: boolean): void {
    if (this.status !== "connecting" && this.status !== "reconnecting") return;
    if (waits && this.notice !== KERNEL_BUSY_NOTICE) {
      this.noticeBeforeWait = this.notice;
      this.setStatus(this.status, KERNEL_BUSY_NOTICE);
    } else if (!waits && this.notice === KERNEL_BUSY_NOTICE) {
      this.setStatus(this.status, this.noticeBeforeWait ?? "Connecting to the kernel…");
    }
  }

  // Frames flow: a connection being made is live (a camera being reopened says so itself).
  linkLive(link: Link): void {
    if (link !== this.link || this.paused) return;
    if (this.status === "connecting" || this.status === "reconnecting") this.setStatus("live", "");
  }

  linkLost(link: Link): void {
    if (link === this.link) void this.reconnect(this.generation);
  }

  outputChanged(): void {
    this.render();
  }

  showFrame(frame: DrawnFrame): void {
    for (const view of this.views) view.draw(frame);
  }

  // The output <video>'s count of presented frames (one video-frame callback; null when none shows).
  presentedFrames(): Promise<number | null> {
    const video = [...this.views].map((v) => v.output).find((v) => v && !v.hidden && v.srcObject);
    if (!video || !video.requestVideoFrameCallback) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), PRESENTED_WAIT_MS);
      video.requestVideoFrameCallback((_now, meta) => {
        clearTimeout(timer);
        resolve(meta.presentedFrames);
      });
    });
  }

  // -- camera ---------------------------------------------------------------------------------
  // Returns false (after reporting) when the camera cannot be opened.
  async openCamera(gen: number): Promise<boolean> {
    let stream: MediaStream;
    try {
      stream = await this.source.open();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err as Error);
      return false;
    }
    if (gen !== this.generation) {
      stopStream(stream);
      return false;
    }
    this.useStream(stream);
    return true;
  }

  useStream(stream: MediaStream): void {
    const info = this.source.use(stream);
    this.localError = null;
    this.send({ type: "camera", ...info });
    void this.reportDevices();
    this.render();
  }

  // The transport is left open but idle (generation bumped) until Try again or a new view.
  cameraFailed(err: Error): void {
    console.warn("decart_nb: camera failed", err);
    this.generation += 1;
    this.retrying = false;
    this.localError = { name: err.name, message: err.message };
    this.send({ type: "camera_error", name: err.name, message: err.message });
    this.setStatus("camera-error", "");
  }

  // The camera stopped by itself mid-stream: unplugged, or the permission was revoked.
  cameraEnded(track: MediaStreamTrack): void {
    if (!this.running) return;
    console.warn("decart_nb: the camera stopped", track.label);
    this.generation += 1;
    this.retrying = false;
    this.source.release();
    this.localError = { name: "CameraEnded", message: `${track.label || "the camera"} ended` };
    this.send({ type: "camera_ended", label: track.label });
    this.setStatus("camera-error", "The camera stopped. Plug it in or allow it again, then press Try again.");
  }

  async reportDevices(): Promise<void> {
    try {
      const devices = await this.source.devices();
      if (devices) this.send({ type: "devices", devices });
    } catch (err) {
      console.warn("decart_nb: could not list cameras", err);
    }
  }

  // Another camera (device_id or facing_mode changed): same transport, the sent track is replaced.
  // Switches run one after the other, each with the constraints of its own start.
  switchCamera(): Promise<void> {
    this.switching = this.switching.then(() => this.switchNow());
    return this.switching;
  }

  async switchNow(): Promise<void> {
    if (!this.camera || !this.running || this.paused || !this.stream) return;
    const gen = this.generation;
    let stream: MediaStream;
    try {
      stream = await this.source.reopen();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err as Error);
      return;
    }
    if (gen !== this.generation) return stopStream(stream);
    await this.replaceTrack(stream);
  }

  async replaceTrack(stream: MediaStream): Promise<void> {
    if (this.link) await this.link.setTrack(stream.getVideoTracks()[0] ?? null);
    this.useStream(stream);
  }

  visibilityChanged(): void {
    if (!this.camera || !this.running) return;
    const hide = document.hidden && !this.model.get("keep_running_hidden");
    if (hide && !this.paused) this.pause();
    else if (!hide && this.paused) void this.resume();
  }

  pause(): void {
    this.source.paused = true;
    this.link?.setTrack(null).catch((err) => console.warn("decart_nb: pause", err));
    this.source.release(); // the camera light goes off
    this.setStatus("paused", "Camera paused while the page is hidden.");
  }

  async resume(): Promise<void> {
    const gen = this.generation;
    this.source.paused = false;
    this.setStatus("starting", "Resuming the camera…");
    let stream: MediaStream;
    try {
      stream = await this.source.open();
    } catch (err) {
      if (gen === this.generation) this.cameraFailed(err as Error);
      return;
    }
    if (gen !== this.generation) return stopStream(stream);
    if (this.link) {
      await this.replaceTrack(stream);
      this.setStatus(this.link.up ? "live" : "connecting", "");
    } else {
      this.useStream(stream); // paused before the first connection: connect now
      void this.start();
    }
  }

  // -- kernel ---------------------------------------------------------------------------------
  // A page message, over the page socket or the comm (kernel_channel.ts); returns where it went.
  send(msg: PageMessage, buffers?: ArrayBuffer[]): Delivery {
    return this.channel.send(msg, buffers);
  }

  // The comm is gone for good (the kernel restarted or shut down): the camera goes off.
  kernelGone(err: unknown): void {
    console.warn("decart_nb: the kernel is gone, stopping the camera", err);
    if (this.running) {
      this.stop("kernel gone", false);
      this.setStatus("stopped", "The kernel restarted or shut down: run the cell again to restart the camera.");
    }
  }

  kernelMessage(raw: unknown, buffers?: readonly ArrayBufferView[]): void {
    if (!raw || typeof raw !== "object") return;
    const msg = asKernelMessage(raw);
    if (!msg) return console.warn("decart_nb: an unknown kernel message", (raw as { type?: unknown }).type);
    if (msg.type === "media_socket") return this.socketOffered(msg);
    if (msg.type === "ice_servers") return this.iceServersSent(msg);
    if (this.link?.message(msg, buffers)) return;
    if (msg.type === "restart") {
      this.restart();
    } else if (msg.type === "stop") {
      this.channel.forgetSocket(); // the session's connection ended: the kernel closes its listener
      this.stop("kernel stopped", false);
      this.render();
    }
  }

  // -- ICE servers: by a kernel message only (a TURN credential in the state would be saved) --------
  // The servers for a new peer: [] when the session has none, null while the kernel's are awaited.
  iceServers(): IceServer[] | null {
    if (!(Number(this.model.get("ice_server_count")) > 0)) return [];
    return this.iceServerList;
  }

  iceServersSent(msg: Extract<KernelMessage, { type: "ice_servers" }>): void {
    const servers: unknown[] = Array.isArray(msg.servers) ? msg.servers : [];
    const valid = servers.filter((s): s is IceServer => !!s && typeof s === "object" && !!(s as Partial<IceServer>).urls);
    this.iceServerList = valid.map((s) => ({ ...s }));
    this.iceMissing = false;
  }

  // Ask the kernel for its servers and wait ICE_SERVERS_WAIT_MS for them. A request over the comm
  // waits for a running cell (the kernel reads the comm between cells): that time does not count.
  async waitIceServers(gen: number): Promise<IceServer[] | null> {
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

  // -- the page socket (kernel_channel.ts) ----------------------------------------------------------
  get pipe(): PagePipe | null {
    return this.channel.pipe;
  }

  get pipeLive(): boolean {
    return this.channel.live;
  }

  get pipeQueue(): readonly PageMessage[] {
    return this.channel.queue;
  }

  socketOffered(msg: { port: number; token: string }): void {
    this.channel.socketOffered(msg);
  }

  // -- views ----------------------------------------------------------------------------------
  render(): void {
    for (const view of this.views) view.update(this);
  }
}

