// The page's side of the message schema; the kernel's side is decart_nb/widgets/messages.py, and
// tests/test_messages.py checks that both name the same messages with the same fields. Each
// message is a JSON object with a `type` and these fields; a frame's JPEG (a chunk's VP8) travels
// as its one buffer.

export type MessageTable = Readonly<Record<string, readonly string[]>>;

const schema = <T extends Record<string, readonly string[]>>(table: T): Readonly<T> =>
  Object.freeze(Object.fromEntries(Object.entries(table).map(([k, v]) => [k, Object.freeze(v)]))) as Readonly<T>;

// Each message the page sends: its fields besides `type`.
export const PAGE_MESSAGES = schema({
  offer: ["sdp", "attempt"],
  camera: ["facingMode", "label", "deviceId", "width", "height", "frameRate"],
  devices: ["devices"],
  camera_error: ["name", "message"],
  camera_ended: ["label"],
  reconnecting: ["attempt"],
  gave_up: ["attempts"],
  stopped: ["reason"],
  transport: ["transport", "codec", "reason"],
  frame: ["seq"],
  frame_ack: ["seq"],
  chunk: ["seq", "key", "width", "height"],
  chunk_ack: ["seq"],
  keyframe: [],
  page_stats: ["fps_sent", "fps_received", "fps_decoded", "fps_presented", "frames_dropped", "freezes", "width", "height", "rtt_ms", "kbps_sent", "kbps_received"],
  want_ice_servers: [],
});

// Each message the page handles: its fields besides `type`.
export const KERNEL_MESSAGES = schema({
  answer: ["attempt", "sdp"],
  answer_error: ["attempt", "error"],
  restart: [],
  stop: [],
  frame: ["seq", "width", "height"],
  frame_ack: ["seq"],
  chunk: ["seq", "key", "width", "height"],
  chunk_ack: ["seq"],
  keyframe: [],
  media_socket: ["port", "token"],
  ice_servers: ["servers"],
});

// -- page -> kernel -------------------------------------------------------------------------------
// What carries the frames: "webrtc", "codec" (VP8 over the comm or the page socket), "jpeg".
export type TransportKind = "webrtc" | "codec" | "jpeg";

export interface CameraInfo {
  facingMode: string;
  label: string;
  deviceId: string;
  width: number;
  height: number;
  frameRate: number;
}
export interface DeviceInfo {
  deviceId: string;
  label: string;
}
// Either way: one VP8 frame (buffer: the EncodedVideoChunk's bytes).
export interface ChunkMessage {
  type: "chunk";
  seq: number;
  key: boolean;
  width: number;
  height: number;
}
export interface ChunkAckMessage {
  type: "chunk_ack";
  seq: number;
}
export interface KeyframeMessage {
  type: "keyframe";
}
// The page socket's media messages, either way.
export type MediaMessage = ChunkMessage | ChunkAckMessage | KeyframeMessage;

// rtt_ms, kbps_*: WebRTC's (null over the comm).
export interface PageStatsMessage {
  type: "page_stats";
  fps_sent: number | null;
  fps_received: number | null;
  fps_decoded: number | null;
  fps_presented: number | null;
  frames_dropped: number | null;
  freezes: number | null;
  width: number | null;
  height: number | null;
  rtt_ms: number | null;
  kbps_sent: number | null;
  kbps_received: number | null;
}

export type PageMessage =
  | { type: "offer"; sdp: string; attempt: number }
  | ({ type: "camera" } & CameraInfo)
  | { type: "devices"; devices: DeviceInfo[] }
  | { type: "camera_error"; name: string; message: string } // getUserMedia failed
  | { type: "camera_ended"; label: string } // the track ended mid-stream
  | { type: "reconnecting"; attempt: number }
  | { type: "gave_up"; attempts: number }
  | { type: "stopped"; reason: string }
  // codec: "vp8"/"h264" (WebRTC), "vp8" (codec), "jpeg"; reason: why not WebRTC ("" on WebRTC)
  | { type: "transport"; transport: TransportKind; codec: string; reason: string }
  | { type: "frame"; seq: number } // a camera frame over the comm (buffer: JPEG)
  | { type: "frame_ack"; seq: number } // either way: frame `seq` arrived
  | MediaMessage
  | { type: "want_ice_servers" } // send me the ICE servers (the model counts them)
  | PageStatsMessage;

// -- kernel -> page -------------------------------------------------------------------------------
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export type KernelMessage =
  | { type: "answer"; attempt: number; sdp: string }
  | { type: "answer_error"; attempt: number; error?: KernelErrorInfo }
  | { type: "restart" } // re-request the camera and renegotiate
  | { type: "stop" } // the session disconnected
  | { type: "frame"; seq: number; width: number; height: number } // buffer: JPEG
  | { type: "frame_ack"; seq: number }
  | MediaMessage
  | { type: "media_socket"; port: number; token: string }
  | { type: "ice_servers"; servers: IceServer[] }; // the RTCPeerConnection's iceServers

export interface KernelErrorInfo {
  code?: string;
  message?: string;
}

// The fields `msg` lacks or has beyond its schema entry ("" when it matches).
export function schemaMismatch(table: MessageTable, msg: { type: string }): string {
  const fields = table[msg.type];
  if (!fields) return `unknown type ${JSON.stringify(msg.type)}`;
  const keys = Object.keys(msg).filter((k) => k !== "type");
  const odd = [...fields.filter((f) => !keys.includes(f)), ...keys.filter((k) => !fields.includes(k))];
  return odd.length ? `${msg.type}: fields ${odd.join(", ")} differ from the schema` : "";
}

// A kernel message of a known type (its fields are the kernel's to get right), or null.
export function asKernelMessage(msg: unknown): KernelMessage | null {
  if (!msg || typeof msg !== "object") return null;
  const type = (msg as { type?: unknown }).type;
  if (typeof type !== "string" || !Object.hasOwn(KERNEL_MESSAGES, type)) return null;
  return msg as KernelMessage;
}
