// decart_nb camera widget: the page's camera goes to the kernel over WebRTC (or VP8/JPEG over the
// comm and the page socket), the model's output comes back into a <video> or a canvas. esbuild
// bundles these modules into the one self-contained ES module anywidget loads from a Blob URL
// (decart_nb/widgets/static/camera.js): no imports, nothing fetched from a CDN.
//
// The parts, one concern each:
//   controller.ts     the Controller: status (transitions.ts), transport choice, retries, the kernel
//   camera_source.ts  getUserMedia, switching, pause, the track's `ended`
//   rtc_link.ts       transport "webrtc": RTCPeerConnection, offer/answer, codec, playout, stats
//   codec_link.ts     transport "codec": VP8 over the comm or the page socket through WebCodecs,
//                     sized by the RateController (rate.ts), frames from frame_tap.ts
//   jpeg_link.ts      transport "jpeg": JPEG frames over the comm, where WebCodecs has no VP8
//   page_pipe.ts      the page socket: media_frames.ts (its frames), proof.ts + sha256.ts (handshake)
//   schema.ts         the messages both ways; view.ts + figures.ts, one rendering of the widget
import { Controller } from "./controller.ts";
import { registry } from "./debug.ts";
import type { WidgetModel } from "./model.ts";
import { View } from "./view.ts";

// anywidget passes initialize and render different proxies of one model: key by a synced id.
const controllers = new Map<string, Controller>();

export default {
  // Only synchronous setup here: anywidget drops every kernel message for a model whose
  // initialize takes over 2 s. The camera is opened by the first render, unawaited.
  initialize({ model }: { model: WidgetModel }): () => void {
    const controller = new Controller(model);
    controllers.set(model.get("_key"), controller);
    registry?.controllers.add(controller);
    controller.listen();
    return () => {
      controller.destroy();
      controllers.delete(model.get("_key"));
      registry?.controllers.delete(controller);
    };
  },
  render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
    const controller = controllers.get(model.get("_key"));
    if (!controller) throw new Error("decart_nb: render before initialize");
    const view = new View(el, controller);
    controller.attach(view);
    return () => {
      controller.detach(view);
      view.root.remove();
    };
  },
};
