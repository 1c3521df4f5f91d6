"""Every duration the kernel waits for, in one place (seconds).

Modules import the names they use (`from .timeouts import SET_TIMEOUT_S`), so a test or a notebook
can still shorten one for one module (`decart_nb.session_peers.RECONNECT_GIVE_UP_S = 3`). The page's own
timings (reconnect backoff 1, 2, 4, 8, 8 s; answer 15 s; WebRTC connect 10 s; "auto" falls back to
the codec link when ICE has no working pair 1 s after the answer) are in js/src/timing.ts;
RECONNECT_GIVE_UP_S outlasts them.
The Decart engine's (engines/decart/) mirror the limits of Decart's SDK, which times the calls itself.
"""

from __future__ import annotations

__all__ = [
    "ACK_TIMEOUT_S",
    "ANSWER_TIMEOUT_S",
    "CAMERA_STALL_S",
    "CLOSE_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "DECART_BACKSTOP_S",
    "DECART_CONNECT_TIMEOUT_S",
    "DECART_FRAME_SETTLE_S",
    "DECART_QUEUE_JOIN_MARGIN_S",
    "DECART_QUEUE_TIMEOUT_S",
    "DECART_RESTORE_GRACE_S",
    "GUARD_MARGIN_S",
    "KEYFRAME_REQUEST_EVERY_S",
    "LOOP_CALL_TIMEOUT_S",
    "MAX_WAIT_S",
    "MEDIA_HELLO_TIMEOUT_S",
    "MEDIA_WARNING_EVERY_S",
    "PAGE_SOCKET_OFFER_AFTER_S",
    "PEER_SILENT_S",
    "PROMPT_TIMEOUT_S",
    "RECONNECT_GIVE_UP_S",
    "SET_TIMEOUT_S",
    "STATS_EVERY_S",
    "STATS_TIMEOUT_S",
    "TRACKER_CLOSE_TIMEOUT_S",
    "TRACKER_PUT_POLL_S",
    "UI_POLL_EVERY_S",
    "WAIT_UNTIL_TIMEOUT_S",
    "WATCH_EVERY_S",
]

# -- Session calls (Decart's semantics) ---------------------------------------------------------
# The session's and the Decart engine's: the SDK waits as long for Decart's acknowledgement.
SET_TIMEOUT_S = 30.0  # Decart: set() and set_image() wait 30 s for the acknowledgement
PROMPT_TIMEOUT_S = 15.0  # Decart: set_prompt() waits 15 s for the echo
CONNECT_TIMEOUT_S = 30.0
GUARD_MARGIN_S = 5.0  # beyond an engine's own timeout (see Session._guard)
ANSWER_TIMEOUT_S = 15.0  # Session.answer(): the kernel's answer to an offer
MAX_WAIT_S = 3600.0  # the longest snapshot timeout or recording a call may ask for
CLOSE_TIMEOUT_S = 15.0  # disconnect(): closing the peers and the pipeline on the loop
STATS_TIMEOUT_S = 5.0  # the blocking `stats` property reads the figures on the loop
LOOP_CALL_TIMEOUT_S = 10.0  # a widget's housekeeping on the loop when it closes
WAIT_UNTIL_TIMEOUT_S = 30.0  # Session.wait_until(state): how long it waits by default
# A blocking call on the kernel's main thread (snapshot, set, record, wait_until, ...) handles the
# page's pending widget messages this often while it waits (where no page socket carries them).
UI_POLL_EVERY_S = 0.02

# -- the camera's connection ---------------------------------------------------------------------
# The page retries after 1, 2, 4 and 8 s (5 attempts); past this the kernel gives up.
RECONNECT_GIVE_UP_S = 30.0
WATCH_EVERY_S = 0.5  # how often the camera peer's packets and frames are counted
CAMERA_STALL_S = 2.0  # no camera frame for this long: the model has nothing to transform
# No RTP or RTCP packet at all for this long: the peer is gone. A live peer sends RTCP reports at
# least every 1.5 s (aiortc; Chrome every second), also when its camera is stopped or paused.
PEER_SILENT_S = 3.0
# The comm transport: a page that lost an ack (or went away without saying so) gets the next
# output frame after this long.
ACK_TIMEOUT_S = 5.0
# The codec transport: while it waits for the page's key frame (after a gap or a chunk that did not
# decode), the kernel asks again this often, since a request can be lost with a page restart.
KEYFRAME_REQUEST_EVERY_S = 1.0
# The media socket (widgets/media_socket.py): a connection finishes its handshake (both sides prove
# they hold the token) within this long of being accepted, or is closed. The relay connects once the
# page's websocket is open; the handshake's two round trips then cross the page's link, which at
# 1 Mbit/s, busy with the video's first seconds over the comm, queues a few seconds each way. A
# flood is bounded by the listener's cap on handshakes in progress, not by this.
MEDIA_HELLO_TIMEOUT_S = 10.0
# Refused media socket connections and malformed frames are counted; a warning says how many at
# most this often (a neighbour's flood must not flood the log).
MEDIA_WARNING_EVERY_S = 60.0
# The page socket's offer (port and token) goes to the page when the widget is made, and again
# this long after it while no connection is live (a page still loading the widget can miss one).
PAGE_SOCKET_OFFER_AFTER_S = (0.5, 1.0, 2.0, 4.0, 8.0)

# -- what the session pushes ----------------------------------------------------------------------
STATS_EVERY_S = 1.0  # the `stats` event to listeners (widget, panel), from the loop

# -- the Decart engine (engines/decart/) -----------------------------------------------------------
# A set*() call has one limit in all, the session's PROMPT_TIMEOUT_S or SET_TIMEOUT_S (a wait for
# a restore after a drop included). A restore is no user's call: the SDK times its ack (30 s) and
# this margin only ends an SDK call that never returns at all.
DECART_BACKSTOP_S = 5.0
# Decart's queue: once it reports a queue position, decart_nb waits this long for the room (the
# SDK alone waits 15 s, then retries at the back of the queue); longer ends the connect, not retried.
DECART_QUEUE_TIMEOUT_S = 600.0
# The SDK's own room-info wait, under decart_nb's queue wait, runs this much longer, so the queue
# limit always decides (else the SDK's timer, started first, may win the race and retry).
DECART_QUEUE_JOIN_MARGIN_S = 60.0
# A connect is the SDK's: up to 5 attempts, each waiting up to 15 s for room info (a silent server)
# and 30 s for its initial-state ack, with backoff 1+2+4+8 s between them; plus one queue's wait.
DECART_CONNECT_TIMEOUT_S = 5 * (15.0 + 30.0) + 15.0 + DECART_QUEUE_TIMEOUT_S
# Decart's output frames travel apart from its acks (LiveKit media vs the WebSocket): frames made
# before an ack can come after it, for about a jitter buffer's worth. Frames count as made with the
# new state from this long after its ack on (what snapshot() and the sweeps wait for).
DECART_FRAME_SETTLE_S = 0.25
# A failed restore is reported only if no new drop follows within this time (a drop's reconnect
# restores again; its error would be noise).
DECART_RESTORE_GRACE_S = 1.0

# -- tools and sweeps -----------------------------------------------------------------------------
TOKEN_TIMEOUT_S = 30.0  # decart_nb.tokens.create(): one request to Decart's token endpoint
TURN_TIMEOUT_S = 10.0  # decart_nb.turn: one request to a TURN provider for credentials
# A sweep item waits this long (plus its own seconds) for frames: generous, since the machine may
# be busy; a real stall still shows as FRAME_TIMEOUT.
FRAME_TIMEOUT_S = 15.0
# An experiment tracker's close() waits this long for its thread to log what is queued and end the
# runs (a remote tracker may be slow); past it the thread goes on and close() says what is unlogged.
TRACKER_CLOSE_TIMEOUT_S = 300.0
# How often a log_item waiting on a full tracker queue looks whether the thread is still there.
TRACKER_PUT_POLL_S = 0.5
# A kernel-side camera (source="device:..."): how long stop() waits for its reader thread to let
# go of the device (a reader blocked in a read lets go with the next frame or error).
DEVICE_STOP_S = 1.0
