// How the page's messages reach the kernel: over the page socket (PagePipe) while it is live (the
// kernel reads it while a cell runs), held while the socket opens (so nothing sent before it can
// arrive after something sent on it), else over the comm; a frame's buffer always over the comm.
// It opens the socket the kernel offers, and remembers the offers it must not open again.
import type { Delivery, Link } from "./link.ts";
import type { WidgetModel } from "./model.ts";
import { mediaSocketUrl, PagePipe, type PipeHost } from "./page_pipe.ts";
import { PAGE_MESSAGES, schemaMismatch, type MediaMessage, type PageMessage } from "./schema.ts";
import { PIPE_QUEUE_MAX, SPENT_SOCKETS_MAX } from "./timing.ts";

// What the channel needs of the Controller.
export interface ChannelHost {
  readonly model: WidgetModel;
  readonly link: Link | null;
  kernelGone(err: unknown): void; // a send over the comm threw: the comm is gone for good
  render(): void;
}

interface SocketOffer {
  port: number;
  token: string;
  key: string;
}

export class KernelChannel implements PipeHost {
  mediaSocket: SocketOffer | null = null; // the kernel's page socket, once it offered one
  pipe: PagePipe | null = null; // the page socket while it opens or is live
  queue: PageMessage[] = []; // messages sent while the socket opens, in order
  refused = ""; // the key of an offer whose socket never opened here (no relay)
  // The offers of the kernel's earlier connections, forgotten (a few): never opened again. The
  // kernel frees their ports when its connection ends, and another user of the host may take one.
  spent: string[] = [];

  constructor(private readonly host: ChannelHost) {}

  get live(): boolean {
    return Boolean(this.pipe?.live);
  }

  // A page message, where it can go now; returns where it went ("socket", "queued", "comm", or
  // false when the kernel is gone).
  send(msg: PageMessage, buffers?: ArrayBuffer[]): Delivery {
    const odd = schemaMismatch(PAGE_MESSAGES, msg);
    if (odd) console.error(`decart_nb: a message off the schema (${odd})`);
    if (!buffers && this.pipe && !this.pipe.live && !this.pipe.late) return this.hold(msg);
    return this.deliver(msg, buffers);
  }

  // While the socket opens: in order, the newest page_stats replacing an older one; past
  // PIPE_QUEUE_MAX the socket is given up and the comm takes them all.
  hold(msg: PageMessage): Delivery {
    if (msg.type === "page_stats") this.queue = this.queue.filter((m) => m.type !== "page_stats");
    this.queue.push(msg);
    if (this.queue.length <= PIPE_QUEUE_MAX) return "queued";
    console.warn("decart_nb: the page socket takes too long to open: the comm carries everything");
    this.dropPipe();
    return "comm";
  }

  // A send over the comm that throws means the comm is gone for good (the kernel restarted or shut
  // down): the host turns the camera off rather than offer to nobody.
  deliver(msg: PageMessage, buffers?: ArrayBuffer[]): Delivery {
    if (!buffers && this.pipe?.sendMessage(msg)) return "socket";
    try {
      if (buffers) this.host.model.send(msg, undefined, buffers);
      else this.host.model.send(msg);
      return "comm";
    } catch (err) {
      this.host.kernelGone(err);
      return false;
    }
  }

  // The kernel offered its socket: open it, unless it is the one open, one that never opened
  // here (no relay: the comm carries everything), or one forgotten (an earlier connection's, a
  // late resend: its port may be someone else's now). A live one that closed opens again on the
  // kernel's next offer (it offers again when its connection goes).
  socketOffered(msg: { port: number; token: string }): void {
    const key = `${msg.port} ${msg.token}`;
    if (this.spent.includes(key)) return;
    const same = this.mediaSocket?.key === key;
    if (!same) this.forgetSocket(); // a newer offer: the kernel's listener changed
    const offer: SocketOffer = { port: msg.port, token: String(msg.token), key };
    this.mediaSocket = offer;
    if (same && (this.pipe || this.refused === key)) return;
    this.dropPipe();
    const url = mediaSocketUrl(msg.port);
    if (!url) {
      this.refused = key;
      return;
    }
    try {
      this.pipe = new PagePipe(url, msg.port, offer.token, this);
    } catch (err) {
      console.warn("decart_nb: no page socket; the comm carries everything", err);
      this.refused = key;
    }
  }

  pipeReady(pipe: PagePipe): void {
    if (pipe !== this.pipe) return;
    this.refused = "";
    this.flushQueue();
    this.host.link?.pipeChanged?.();
    this.host.link?.kernelBusyChanged?.(); // an offer held for the socket waits for no cell
    this.host.render();
  }

  // The socket is slow to open: what waited goes over the comm, and so does everything until it is
  // live (the kernel reads both; nothing waits longer than PIPE_OPEN_TIMEOUT_MS for it).
  pipeLate(pipe: PagePipe): void {
    if (pipe !== this.pipe) return;
    this.flushQueue();
    this.host.link?.kernelBusyChanged?.();
  }

  pipeEnded(pipe: PagePipe, wasLive: boolean): void {
    if (pipe !== this.pipe) return;
    this.pipe = null;
    if (!wasLive) this.refused = this.mediaSocket?.key ?? "";
    this.flushQueue(); // over the comm now
    if (wasLive) this.host.link?.pipeChanged?.();
    this.host.link?.kernelBusyChanged?.();
    this.host.render();
  }

  pipeMedia(msg: MediaMessage, buffers?: readonly ArrayBufferView[]): void {
    this.host.link?.message(msg, buffers);
  }

  // The kernel's link ended (its session disconnected, the widget closed, a newer listener): close
  // the socket and never open this offer again.
  forgetSocket(): void {
    if (this.mediaSocket) this.spent = [...this.spent.slice(-(SPENT_SOCKETS_MAX - 1)), this.mediaSocket.key];
    this.mediaSocket = null;
    this.refused = "";
    this.dropPipe();
  }

  // Close the socket (what it held goes over the comm).
  dropPipe(): void {
    const pipe = this.pipe;
    if (!pipe) return;
    const wasLive = pipe.live;
    this.pipe = null;
    pipe.close();
    this.flushQueue();
    if (wasLive) this.host.link?.pipeChanged?.();
  }

  // What waited for the socket, in order: over it once live, else over the comm.
  flushQueue(): void {
    const queue = this.queue;
    this.queue = [];
    for (const msg of queue) this.deliver(msg);
  }

  // The model is closing: the kernel's side is gone with it.
  close(): void {
    this.queue = [];
    this.forgetSocket();
  }
}
