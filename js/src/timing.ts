// Every duration and size limit of the page, in one place (the kernel's are in
// decart_nb/timeouts.py).

export const BACKOFF_S = [1, 2, 4, 8, 8]; // five reconnection attempts
// The kernel's answer to an offer. An offer over the comm waits for a running cell (the kernel
// reads the comm between cells): while the model says `kernel_busy`, this does not run out.
export const ANSWER_TIMEOUT_MS = 15000;
export const CONNECT_TIMEOUT_MS = 10000;
export const ICE_GATHER_TIMEOUT_MS = 5000;
export const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often recovers by itself; "failed" does not
export const LAST_VIEW_GRACE_MS = 1000; // a view re-rendered at once (cell moved) keeps the camera
// "auto": WebRTC gets this long from the kernel's answer to connect, then the comm takes over (a
// slow answer is a busy kernel, not the network).
export const AUTO_CONNECT_MS = 6000;
// "auto" also gives up on WebRTC when ICE has found no working candidate pair this long after the
// kernel's answer: where UDP is blocked no pair ever works, and the comm takes over within ~1.5 s
// of the offer instead of 6 (issue 12). On a network that passes UDP (or relays it) the first
// pair succeeds within a few round trips, and DTLS then gets the rest of AUTO_CONNECT_MS. We do
// not start the comm at once and upgrade later: the kernel keeps one transport per page (a comm
// transport drops the page's peer), and the camera would be encoded twice meanwhile.
export const AUTO_ICE_MS = 1000;
export const FRAME_ACK_TIMEOUT_MS = 3000; // a lost ack must not stall the camera for good
export const JPEG_QUALITY = 0.7;
export const PAGE_STATS_MS = 2000; // how often the page tells the kernel what it sends, receives and shows
export const CAMERA_JITTER_MS = 10; // a camera frame this much early still counts as the next period's
// The page socket: messages wait for READY at most this long, then the comm carries them while the
// socket goes on opening (on a slow link busy with the video's first seconds, the upgrade and the
// handshake's two round trips can take longer; the video moves to the socket once it is live).
export const PIPE_OPEN_TIMEOUT_MS = 5000;
export const PIPE_QUEUE_MAX = 64; // messages held while the socket opens; more: the comm takes them all
export const PIPE_MESSAGE_MAX = 256 * 1024; // the kernel's MAX_MESSAGE (media_socket.py): larger goes by the comm
// The kernel's ICE servers (TURN credentials among them) come in an `ice_servers` message, never in
// the widget's state (a saved notebook keeps that). A peer waits this long for them (not counting
// a running cell that holds the page's request), then the attempt fails and says so.
export const ICE_SERVERS_WAIT_MS = 5000;
export const SPENT_SOCKETS_MAX = 16; // forgotten offers remembered (a late resend comes within seconds)
export const PRESENTED_WAIT_MS = 500; // a paused or hidden video presents nothing
