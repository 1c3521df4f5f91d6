// The widget model as the page sees it: decart_nb/widgets/camera.py's synced traits, and the
// part of anywidget's model object the page uses.

// "codec": VP8 over the comm (or the page socket), JPEG where WebCodecs has no VP8. "comm" is the
// older spelling of "codec", still accepted.
export type TransportChoice = "auto" | "webrtc" | "codec" | "jpeg" | "comm";

// One of the kernel's figures: [name, value, title] (decart_nb/figures.py).
export type Figure = [name: string, value: string, title: string];

export interface KernelError {
  code?: string;
  message?: string;
}

export interface CameraTraits {
  _key: string;
  mode: string; // "camera" | "receive"
  transport: TransportChoice;
  width: number;
  height: number;
  fps: number;
  facing_mode: string;
  device_id: string;
  mirror: boolean | string; // true, false or "auto"
  codec: string;
  ice_server_count: number;
  keep_running_hidden: boolean;
  playout_target_ms: number;
  state: string;
  kernel_busy: boolean;
  figures: Figure[];
  error: KernelError;
}

// What anywidget hands us (initialize's and render's `model`): typed by the traits above.
export interface WidgetModel {
  get<K extends keyof CameraTraits>(key: K): CameraTraits[K];
  on(event: "msg:custom", callback: (msg: unknown, buffers?: readonly ArrayBufferView[]) => void): void;
  on(event: `change:${keyof CameraTraits}`, callback: () => void): void;
  send(content: object, callbacks?: undefined, buffers?: ArrayBuffer[]): void;
}

// The model's transport, with the older "comm" read as "codec".
export function transportChoice(model: WidgetModel): Exclude<TransportChoice, "comm"> {
  const t = model.get("transport");
  return t === "comm" ? "codec" : t;
}
