// The camera's key frames are encoded at KEY_BITRATE_SHARE of the bitrate (Chromium's VP8 puts no
// cap on a key frame), and the next frame goes back to the bitrate without a new encoder.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CodecLink, KEY_BITRATE_SHARE } from "../src/codec_link.ts";
import type { LinkHost } from "../src/link.ts";

type Output = (chunk: EncodedVideoChunk) => void;

class FakeEncoder {
  static made: FakeEncoder[] = [];
  readonly configs: VideoEncoderConfig[] = [];
  readonly keys: boolean[] = [];
  state = "unconfigured";
  constructor(private readonly init: { output: Output }) {
    FakeEncoder.made.push(this);
  }
  configure(config: VideoEncoderConfig): void {
    this.configs.push(config);
    this.state = "configured";
  }
  encode(_frame: VideoFrame, options: { keyFrame: boolean }): void {
    this.keys.push(options.keyFrame);
    const chunk = { type: options.keyFrame ? "key" : "delta", byteLength: 100 };
    this.init.output(chunk as unknown as EncodedVideoChunk);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

const settings: Record<string, number> = { width: 1280, height: 720, fps: 30 };
const host = { model: { get: (name: string) => settings[name] } } as unknown as LinkHost;
const frame = (): VideoFrame => ({ close: () => {} }) as unknown as VideoFrame;

test("a key frame is encoded at a tenth of the bitrate, the next frame at the bitrate, one encoder", async () => {
  (globalThis as unknown as { VideoEncoder: unknown }).VideoEncoder = FakeEncoder;
  FakeEncoder.made = [];
  const link = new CodecLink(host, 0);
  const kbps = link.rate.kbps;
  assert.equal((await link.encode(frame()))?.type, "key"); // the first frame is a key frame
  assert.equal((await link.encode(frame()))?.type, "delta");
  link.wantKey = true; // the kernel asked for one
  assert.equal((await link.encode(frame()))?.type, "key");
  assert.equal((await link.encode(frame()))?.type, "delta");
  assert.equal(FakeEncoder.made.length, 1, "a bitrate change keeps the encoder");
  const [encoder] = FakeEncoder.made;
  const bitrates = encoder?.configs.map((c) => c.bitrate) ?? [];
  const low = Math.round(kbps * KEY_BITRATE_SHARE * 1000);
  assert.deepEqual(bitrates, [low, Math.round(kbps * 1000), low, Math.round(kbps * 1000)]);
  assert.deepEqual(encoder?.keys, [true, false, true, false]);
});
