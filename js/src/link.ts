// A transport carries the camera to the kernel and the output back. The Controller holds one at a
// time (`controller.link`) and uses only this interface (RtcLink, CodecLink, JpegLink). A link
// calls back its host (the Controller, through LinkHost) and reads what it needs from it.
import type { WidgetModel } from "./model.ts";
import type { IceServer, KernelMessage, PageMessage, TransportKind } from "./schema.ts";
import type { PagePipe } from "./page_pipe.ts";

// Where a page message went: "socket", "queued" (held while the socket opens), "comm", or false
// when the kernel is gone.
export type Delivery = "socket" | "queued" | "comm" | false;

// A frame the views draw: an ImageBitmap (JPEG) or a VideoFrame (VP8).
export type DrawnFrame = ImageBitmap | VideoFrame;

export interface Link {
  readonly kind: TransportKind; // the "transport" message and the view's label
  readonly codec: string; // what the video is coded as ("vp8", "h264", "jpeg"), for the same message
  // true: the output is drawn frame by frame on a canvas (`output`); false: it plays in a <video>
  // from the MediaStream `remote`
  readonly drawsFrames: boolean;
  readonly remote: MediaStream | null;
  readonly output: DrawnFrame | null; // the newest output frame (drawsFrames only)
  readonly received: number; // how many output frames arrived (drawsFrames only)
  readonly up: boolean; // frames flow now
  readonly pc?: RTCPeerConnection | null; // WebRTC's peer (RtcLink)
  readonly pipeLive?: boolean; // the page socket carries the video (CodecLink)
  start(): Promise<void>; // connect (again); resolves once frames can flow, rejects if they cannot
  reset(): void; // drop the current connection (start() makes a new one)
  close(): void; // for good
  setTrack(track: MediaStreamTrack | null): Promise<void>; // the camera changed (switched, paused, resumed)
  message(msg: KernelMessage, buffers?: readonly ArrayBufferView[]): boolean; // true when it was this link's
  pipeChanged?(): void; // the page socket went live or away (CodecLink)
  kernelBusyChanged?(): void; // the model's kernel_busy, or the socket, changed (RtcLink)
  applyPlayoutTarget?(): void; // the model's playout_target_ms changed (RtcLink)
}

// What a link sees of the Controller.
export interface LinkHost {
  readonly model: WidgetModel;
  readonly stream: MediaStream | null; // the camera
  readonly paused: boolean; // the camera is released while the page is hidden
  readonly camera: boolean; // mode "camera" (else receive only)
  readonly generation: number; // bumped: stale work backs off
  readonly pipe: PagePipe | null; // the page socket while it opens or is live
  readonly pipeLive: boolean;
  send(msg: PageMessage, buffers?: ArrayBuffer[]): Delivery;
  carrying(link: Link): void; // the link carries the frames now
  linkLive(link: Link): void; // frames flow
  linkLost(link: Link): void; // the connection is gone
  outputChanged(): void;
  showFrame(frame: DrawnFrame): void;
  waitingForKernel(waits: boolean): void; // an offer waits for a running cell
  render(): void;
  nextOffer(): number;
  iceServers(): IceServer[] | null;
  waitIceServers(gen: number): Promise<IceServer[] | null>;
  presentedFrames(): Promise<number | null>;
}
