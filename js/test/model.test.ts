// The model's transport as the page reads it: "comm", the older spelling, means "codec".
import assert from "node:assert/strict";
import { test } from "node:test";
import { transportChoice, type CameraTraits, type WidgetModel } from "../src/model.ts";

function model(transport: CameraTraits["transport"]): WidgetModel {
  const traits = { transport } as CameraTraits;
  return { get: (key) => traits[key], on: () => {}, send: () => {} } as WidgetModel;
}

test("the transport choices pass through; 'comm' is read as 'codec'", () => {
  for (const t of ["auto", "webrtc", "codec", "jpeg"] as const) assert.equal(transportChoice(model(t)), t);
  assert.equal(transportChoice(model("comm")), "codec");
});
