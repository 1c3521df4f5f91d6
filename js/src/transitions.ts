// The page's state diagram. Each status, the statuses it may go to, and what makes it go there.
// The Controller's setStatus() refuses any other move (console.error, the status stays; it throws
// when the debug registry's `strict` is set); staying in a status with a new notice is always
// allowed. "stopped" is reachable from every status.
//
//                start (camera)            camera open           peer connected / first comm frame
// idle, stopped ---------------> starting -------------> connecting -------------------------------> live
//    |    \____ start (no camera) ____________________^  ^    |  attempt fails                        |
//    | start (hidden)            ^ visible   "auto" falls |    v                 peer failed / lost   |
//    +----------------> paused --+              back  reconnecting <----------------------------------+
//                                                        |  peer connected again --> live
// page hidden:                       starting, connecting, live, reconnecting --> paused
// getUserMedia or a switch fails, the track ends:
//                                    starting, connecting, live, reconnecting --> camera-error
// camera-error --start (Try again, a new view)--> starting | paused           any --stop--> stopped

export type Status =
  | "idle"
  | "starting"
  | "paused"
  | "connecting"
  | "live"
  | "reconnecting"
  | "camera-error"
  | "stopped";

export const TRANSITIONS: Readonly<Record<Status, Readonly<Partial<Record<Status, string>>>>> = Object.freeze({
  idle: Object.freeze({
    starting: "start: ask for the camera",
    paused: "start while the page is hidden",
    connecting: "start without a camera (mode receive)",
    stopped: "stop",
  }),
  starting: Object.freeze({
    connecting: "the camera opened: connect",
    live: "resumed with the transport up",
    reconnecting: "the peer was lost while the camera reopens",
    paused: "the page was hidden",
    "camera-error": "getUserMedia failed",
    stopped: "stop",
  }),
  paused: Object.freeze({
    starting: "the page is visible again: reopen the camera",
    connecting: "started while hidden: connect anyway",
    reconnecting: "the peer was lost while hidden",
    stopped: "stop",
  }),
  connecting: Object.freeze({
    live: "the peer connected, or the first frame crossed the comm",
    reconnecting: "the attempt failed or the peer was lost",
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "stop, or the kernel is disconnected",
  }),
  live: Object.freeze({
    reconnecting: "the peer failed, or stayed disconnected",
    connecting: '"auto" fell back to the comm',
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "stop",
  }),
  reconnecting: Object.freeze({
    live: "the peer connected again",
    connecting: '"auto" fell back to the comm',
    paused: "the page was hidden",
    "camera-error": "the camera ended, or a switch failed",
    stopped: "gave up, or stop",
  }),
  "camera-error": Object.freeze({
    starting: "start again (a new view)",
    paused: "start again while the page is hidden",
    stopped: "stop, or Try again (which then starts)",
  }),
  stopped: Object.freeze({
    starting: "start: ask for the camera",
    paused: "start while the page is hidden",
    connecting: "start without a camera",
  }),
});

// Statuses in which the page has not started, or has stopped trying (Try again starts it).
export const IDLE_STATUSES: ReadonlySet<Status> = new Set<Status>(["idle", "stopped", "camera-error"]);

// May the status go from `from` to `to`? Staying (a new notice) always may.
export function allowed(from: Status, to: Status): boolean {
  return to === from || Object.hasOwn(TRANSITIONS[from], to);
}
