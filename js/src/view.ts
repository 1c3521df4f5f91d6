// One rendering of the widget: the camera's preview, the output (a <video> of WebRTC's stream, or
// a canvas the comm's frames are drawn on), the status bar, the notice and the error box.
import type { Controller, ControllerView } from "./controller.ts";
import { showFigures } from "./figures.ts";
import type { DrawnFrame } from "./link.ts";
import type { Status } from "./transitions.ts";
import { shortReason } from "./util.ts";

// What the status bar says carries the video (keyed by the pipe: the transport, or "socket" for
// VP8 over the page socket). The texts users see; "comm (JPEG)" for the JPEG link as before.
const TRANSPORT_TEXT: Readonly<Record<string, string>> = { webrtc: "WebRTC", codec: "comm (VP8)", socket: "media socket (VP8)", jpeg: "comm (JPEG)" };
const TRANSPORT_TITLE: Readonly<Record<string, string>> = {
  codec: "WebRTC is not used: the video travels over the notebook's comm as VP8",
  socket: "WebRTC is not used: the video travels as VP8 over a websocket of its own, relayed by the Jupyter server",
  jpeg: "WebRTC is not used: frames travel over the notebook's comm as JPEG (slower)",
};

const STATE_TEXT: Readonly<Record<string, string>> = {
  disconnected: "disconnected",
  connecting: "connecting",
  connected: "connected",
  generating: "generating",
  reconnecting: "reconnecting",
};

// Shown at once, before the kernel's message (which says what to do) arrives.
const CAMERA_HINTS: Readonly<Record<string, string>> = {
  NotAllowedError: "The browser blocked the camera.",
  SecurityError: "The browser blocked the camera.",
  NotFoundError: "No camera was found.",
  NotReadableError: "The camera is busy or failed to start.",
  AbortError: "The camera is busy or failed to start.",
  OverconstrainedError: "The camera cannot deliver the model's size or frame rate.",
  CameraEnded: "The camera stopped: it was unplugged, or the browser's permission was revoked.",
};

const PREVIEW_EMPTY: Readonly<Partial<Record<Status, string>>> = {
  starting: "Asking for the camera…",
  paused: "Camera paused",
  "camera-error": "Camera unavailable",
  stopped: "Camera off",
};

const TEMPLATE = `
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

// The element of `root` that `selector` names (the template above has each one).
function part<T extends Element = HTMLElement>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T & Element>(selector);
  if (!found) throw new Error(`decart_nb: the widget has no ${selector}`);
  return found;
}

// Where a pane's "nothing to show" text goes (its <figure>'s data-empty).
function pane(el: Element): HTMLElement {
  return el.parentElement ?? (el as HTMLElement);
}

export class View implements ControllerView {
  readonly root: HTMLDivElement;
  readonly preview: HTMLVideoElement;
  readonly output: HTMLVideoElement;
  readonly frames: HTMLCanvasElement; // the output over the comm
  drawn: DrawnFrame | null = null;
  readonly inputCaption: HTMLElement;

  constructor(
    readonly el: HTMLElement,
    controller: Controller,
  ) {
    const root = document.createElement("div");
    root.className = "decart-camera";
    root.innerHTML = TEMPLATE;
    el.appendChild(root);
    this.root = root;
    this.preview = part<HTMLVideoElement>(root, ".decart-preview");
    this.output = part<HTMLVideoElement>(root, ".decart-output");
    this.frames = part<HTMLCanvasElement>(root, ".decart-output-frames");
    this.inputCaption = part(root, ".decart-input figcaption");
    part(root, ".decart-retry").addEventListener("click", () => {
      controller.stop("retrying", false);
      void controller.start();
    });
  }

  setSource(video: HTMLVideoElement, stream: MediaStream | null): void {
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    if (stream) video.play().catch((err) => console.warn("decart_nb: video did not start", err));
  }

  // An ImageBitmap (JPEG) or a VideoFrame (VP8), at its own size: CSS scales the canvas.
  draw(frame: DrawnFrame): void {
    if (this.drawn === frame) return;
    const canvas = this.frames;
    const [width, height] = "displayWidth" in frame ? [frame.displayWidth, frame.displayHeight] : [frame.width, frame.height];
    if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
    canvas.getContext("2d")?.drawImage(frame, 0, 0);
    this.drawn = frame;
    if (pane(this.frames).dataset.empty) pane(this.frames).dataset.empty = "";
  }

  update(c: Controller): void {
    const m = c.model;
    const root = this.root;
    const state = m.get("state");
    const link = c.link;
    const comm = !!link?.drawsFrames;
    root.classList.toggle("decart-receive", !c.camera);
    root.dataset.state = state;
    root.dataset.status = c.status;
    root.dataset.transport = c.transport;
    this.setSource(this.preview, c.camera ? c.stream : null);
    this.setSource(this.output, comm ? null : c.remote);
    this.output.hidden = comm;
    this.frames.hidden = !comm;
    if (comm && link.output) this.draw(link.output);
    const hasOutput = comm ? !!this.drawn && !!link.received : !!c.remote;
    pane(this.preview).dataset.empty = c.stream ? "" : PREVIEW_EMPTY[c.status] || "No camera";
    pane(this.output).dataset.empty = hasOutput ? "" : c.running ? "Waiting for the model…" : "No output";
    const pipe = link?.pipeLive ? "socket" : c.transport; // VP8 over the page socket, or the comm
    root.dataset.pipe = pipe;
    const reason = c.transport && c.transport !== "webrtc" ? c.reason : "";
    root.dataset.reason = reason;
    root.dataset.socket = c.pipeLive ? "live" : ""; // the page socket carries the page's messages
    const transport = part(root, ".decart-transport");
    transport.textContent = c.transport ? `via ${TRANSPORT_TEXT[pipe]}${reason ? ` · ${shortReason(reason)}` : ""}` : "";
    transport.title = [TRANSPORT_TITLE[pipe], reason && `Why: ${reason}.`].filter(Boolean).join(". ");
    this.preview.classList.toggle("decart-selfie", c.selfie);
    this.inputCaption.textContent = "Camera" + (c.selfie ? " (mirrored, as the model sees it)" : "");

    part(root, ".decart-state b").textContent = STATE_TEXT[state] || state;
    part(root, ".decart-state").className = `decart-state decart-state-${state}`;
    showFigures(part(root, ".decart-stats"), m.get("figures") || []);
    const notice = part(root, ".decart-notice");
    notice.textContent = c.notice;
    notice.hidden = !c.notice;

    const error = m.get("error") || {};
    const local = c.localError;
    const box = part(root, ".decart-error");
    // The kernel's message says what to do; the page's own hint shows until it arrives.
    const code = error.code || (local ? local.name : "");
    const message = error.code ? error.message : local ? `${CAMERA_HINTS[local.name] || "The camera failed."} (${local.message})` : "";
    box.hidden = !code;
    root.dataset.errorCode = error.code || "";
    part(root, ".decart-error-code").textContent = code;
    part(root, ".decart-error-message").textContent = message ?? "";
    part(root, ".decart-retry").hidden = !(c.camera && c.status === "camera-error");
  }
}
