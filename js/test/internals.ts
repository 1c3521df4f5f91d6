// The page's internals for the Python tests that drive it in node (tests/test_page_socket_js.py,
// tests/security/test_page_socket_js.py, tests/test_rate_twin.py): `node build.mjs --internals
// OUT` bundles this as a script that puts them on globalThis, after the test's own stubs of the
// browser (WebSocket, document, timers) have run.
import widget from "../src/index.ts";
import { Controller, KERNEL_BUSY_NOTICE } from "../src/controller.ts";
import { CodecLink } from "../src/codec_link.ts";
import { JpegLink } from "../src/jpeg_link.ts";
import { decodeMedia, encodeMedia, MEDIA } from "../src/media_frames.ts";
import { mediaSocketUrl, PagePipe } from "../src/page_pipe.ts";
import { NONCE_SIZE, sameBytes, socketProof } from "../src/proof.ts";
import { RATE, RateController, ladder } from "../src/rate.ts";
import { RtcLink } from "../src/rtc_link.ts";
import { KERNEL_MESSAGES, PAGE_MESSAGES, schemaMismatch } from "../src/schema.ts";
import { hmacSha256, sha256 } from "../src/sha256.ts";
import { roundTripMs } from "../src/stats.ts";
import { showFigures } from "../src/figures.ts";
import * as timing from "../src/timing.ts";
import { TRANSITIONS } from "../src/transitions.ts";

Object.assign(globalThis, timing, {
  widget,
  Controller,
  KERNEL_BUSY_NOTICE,
  CodecLink,
  JpegLink,
  RtcLink,
  PagePipe,
  mediaSocketUrl,
  MEDIA,
  NONCE_SIZE,
  encodeMedia,
  decodeMedia,
  socketProof,
  sameBytes,
  sha256,
  hmacSha256,
  RATE,
  RateController,
  ladder,
  PAGE_MESSAGES,
  KERNEL_MESSAGES,
  schemaMismatch,
  roundTripMs,
  showFigures,
  TRANSITIONS,
});
