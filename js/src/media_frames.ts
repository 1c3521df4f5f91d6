// The page socket's binary frames. Each message is one binary websocket message: u8 kind, then
// (little-endian) CHUNK u32 seq, u8 key, u16 width, u16 height, the chunk's bytes; CHUNK_ACK u32
// seq; KEYFRAME nothing; MESSAGE (page -> kernel) one page message as UTF-8 JSON; NONCE and PROOF
// (the handshake, proof.ts) their 32 bytes; READY nothing. The kernel's side:
// decart_nb/widgets/media_socket.py.
import type { MediaMessage } from "./schema.ts";

export const MEDIA = Object.freeze({ READY: 0, CHUNK: 1, CHUNK_ACK: 2, KEYFRAME: 3, MESSAGE: 4, NONCE: 5, PROOF: 6, HEADER: 10 });

// A chunk's bytes: an EncodedVideoChunk, or anything else that copies itself out the same way.
export interface ChunkBytes {
  readonly byteLength: number;
  copyTo(destination: Uint8Array): void;
}

// kind, then `bytes`.
export function field(kind: number, bytes: Uint8Array): ArrayBuffer {
  const data = new Uint8Array(1 + bytes.length);
  data[0] = kind;
  data.set(bytes, 1);
  return data.buffer;
}

// A chunk, chunk_ack or keyframe message as its frame (a chunk's bytes from `chunk`).
export function encodeMedia(msg: MediaMessage, chunk?: ChunkBytes): ArrayBuffer {
  const size = msg.type === "chunk" ? MEDIA.HEADER + (chunk?.byteLength ?? 0) : msg.type === "chunk_ack" ? 5 : 1;
  const data = new ArrayBuffer(size);
  const view = new DataView(data);
  if (msg.type === "chunk") {
    view.setUint8(0, MEDIA.CHUNK);
    view.setUint32(1, msg.seq, true);
    view.setUint8(5, msg.key ? 1 : 0);
    view.setUint16(6, msg.width, true);
    view.setUint16(8, msg.height, true);
    chunk?.copyTo(new Uint8Array(data, MEDIA.HEADER));
  } else if (msg.type === "chunk_ack") {
    view.setUint8(0, MEDIA.CHUNK_ACK);
    view.setUint32(1, msg.seq, true);
  } else {
    view.setUint8(0, MEDIA.KEYFRAME);
  }
  return data;
}

export interface DecodedMedia {
  msg: MediaMessage;
  bytes?: Uint8Array; // a chunk's
}

// A kernel media frame after the handshake, or null when it is none (too short, another kind).
export function decodeMedia(data: ArrayBuffer): DecodedMedia | null {
  if (data.byteLength < 1) return null;
  const view = new DataView(data);
  const kind = view.getUint8(0);
  if (kind === MEDIA.CHUNK && data.byteLength > MEDIA.HEADER) {
    const msg: MediaMessage = { type: "chunk", seq: view.getUint32(1, true), key: view.getUint8(5) === 1, width: view.getUint16(6, true), height: view.getUint16(8, true) };
    return { msg, bytes: new Uint8Array(data, MEDIA.HEADER) };
  }
  if (kind === MEDIA.CHUNK_ACK && data.byteLength >= 5) return { msg: { type: "chunk_ack", seq: view.getUint32(1, true) } };
  if (kind === MEDIA.KEYFRAME) return { msg: { type: "keyframe" } };
  return null;
}

// One page message as a MESSAGE frame.
export function encodeMessage(json: Uint8Array): ArrayBuffer {
  return field(MEDIA.MESSAGE, json);
}
