// The page socket (decart_nb_server relays it to the kernel's media loop), the widget's for as
// long as it lives: the page's messages, which the kernel reads there while a cell runs, and the
// codec transport's VP8 chunks, acks and key-frame requests without Jupyter's per-message headers
// and status messages (media_frames.ts has the frames, proof.ts the handshake). Kernel messages,
// frames with a buffer, and everything where there is no relay go over the comm.
import { decodeMedia, encodeMedia, encodeMessage, field, MEDIA, type ChunkBytes } from "./media_frames.ts";
import { NONCE_SIZE, sameBytes, socketProof } from "./proof.ts";
import type { MediaMessage, PageMessage } from "./schema.ts";
import { PIPE_MESSAGE_MAX, PIPE_OPEN_TIMEOUT_MS } from "./timing.ts";

// What the pipe tells its host (the Controller).
export interface PipeHost {
  pipeReady(pipe: PagePipe): void; // the kernel proved it holds the token and said READY
  pipeLate(pipe: PagePipe): void; // not ready after PIPE_OPEN_TIMEOUT_MS (it goes on opening)
  pipeEnded(pipe: PagePipe, wasLive: boolean): void; // gone
  pipeMedia(msg: MediaMessage, buffers?: readonly ArrayBufferView[]): void; // the kernel's chunks, acks and requests
}

// The server's websocket URL for the kernel's media port, from the page's Jupyter config; null
// where there is none (Colab, VS Code: the comm carries everything there).
export function mediaSocketUrl(port: unknown): string | null {
  const config = document.getElementById("jupyter-config-data");
  if (!config || !Number.isInteger(port)) return null;
  let data: { wsUrl?: string; baseUrl?: string; token?: string };
  try {
    data = JSON.parse(config.textContent ?? "") as typeof data;
  } catch {
    return null;
  }
  const base = new URL(data.wsUrl || data.baseUrl || "/", location.href);
  if (base.protocol === "http:" || base.protocol === "https:") base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const url = new URL(`decart_nb/media/${port as number}`, base);
  if (data.token) url.searchParams.set("token", data.token);
  return url.href;
}

// One connection of the page socket. It never sends the token, nor anything but its nonce before
// the kernel's proof.
export class PagePipe {
  live = false;
  closed = false;
  readonly nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(NONCE_SIZE)); // nonce_p
  kernelNonce: Uint8Array | null = null; // nonce_k, once it came
  proven = false; // the kernel's proof checked: our proof went out, READY is next
  late = false; // past PIPE_OPEN_TIMEOUT_MS and not live yet: nothing waits for it
  readonly ws: WebSocket;
  private readonly openTimer: ReturnType<typeof setTimeout>;

  constructor(
    url: string,
    readonly port: number,
    readonly token: string,
    readonly host: PipeHost,
  ) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.ws.send(field(MEDIA.NONCE, this.nonce));
    this.ws.onmessage = (event: MessageEvent) => this.received(event.data);
    this.ws.onclose = () => this.ended();
    this.ws.onerror = () => {}; // a close follows, and ended() says what it means
    this.openTimer = setTimeout(() => {
      if (this.live || this.closed) return;
      console.info(`decart_nb: the page socket is not ready after ${PIPE_OPEN_TIMEOUT_MS / 1000} s: the comm carries the page's messages meanwhile`);
      this.late = true;
      this.host.pipeLate(this);
    }, PIPE_OPEN_TIMEOUT_MS);
  }

  received(data: unknown): void {
    if (this.closed) return;
    if (!this.live) return this.handshake(data);
    if (!(data instanceof ArrayBuffer) || data.byteLength < 1) return;
    const media = decodeMedia(data);
    if (media) this.host.pipeMedia(media.msg, media.bytes ? [media.bytes] : undefined);
    else console.warn("decart_nb: an odd page socket message", new Uint8Array(data)[0], data.byteLength);
  }

  // Before READY: the kernel's NONCE, its PROOF (checked: then ours goes out), READY, in that
  // order and nothing else; anything else closes the socket (the comm carries everything).
  handshake(data: unknown): void {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(0);
    const value = bytes.length === 1 + NONCE_SIZE ? bytes.subarray(1) : null;
    if (!this.kernelNonce && value && bytes[0] === MEDIA.NONCE) {
      this.kernelNonce = value.slice();
    } else if (this.kernelNonce && !this.proven && value && bytes[0] === MEDIA.PROOF) {
      const expected = socketProof(this.token, "kernel", this.port, this.nonce, this.kernelNonce);
      if (!sameBytes(value, expected)) return this.refuse("its proof of the token is wrong");
      this.proven = true;
      this.ws.send(field(MEDIA.PROOF, socketProof(this.token, "page", this.port, this.kernelNonce, this.nonce)));
    } else if (this.proven && bytes.length === 1 && bytes[0] === MEDIA.READY) {
      clearTimeout(this.openTimer);
      this.live = true;
      this.host.pipeReady(this);
    } else {
      this.refuse(`an unexpected message in the handshake: kind ${bytes[0]}, ${bytes.length} bytes`);
    }
  }

  refuse(why: string): void {
    console.warn(`decart_nb: the page socket is not the kernel's (${why}): the comm carries everything`);
    this.ws.close();
    this.ended();
  }

  get open(): boolean {
    return this.live && !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  // One page message as JSON; false when the socket cannot take it (the caller uses the comm).
  sendMessage(msg: PageMessage): boolean {
    if (!this.open) return false;
    const json = new TextEncoder().encode(JSON.stringify(msg));
    if (json.byteLength > PIPE_MESSAGE_MAX) return false;
    this.ws.send(encodeMessage(json));
    return true;
  }

  // Sends a chunk, chunk_ack or keyframe message (a chunk's bytes in `chunk`, an EncodedVideoChunk).
  sendMedia(msg: MediaMessage, chunk?: ChunkBytes): boolean {
    if (!this.open) return false;
    this.ws.send(encodeMedia(msg, chunk));
    return true;
  }

  ended(): void {
    if (this.closed) return;
    const was = this.live;
    this.live = false;
    this.closed = true;
    clearTimeout(this.openTimer);
    if (!was && !this.late) console.info("decart_nb: no page socket here (the server lacks decart_nb_server?): the comm carries everything");
    else if (!was) console.info("decart_nb: the page socket closed before it was ready: the comm carries everything");
    this.host.pipeEnded(this, was);
  }

  close(): void {
    this.closed = true;
    this.live = false;
    clearTimeout(this.openTimer);
    this.ws.close();
  }
}
