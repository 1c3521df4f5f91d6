"""The custom messages between the page (js/src) and the kernel: the kernel's side.

Every message is a JSON object with a `type`; a frame's JPEG or VP8 chunk travels as its one buffer.
State the page renders (connection state, size, mirror, stats, last error) travels as synced traits
of the CameraWidget instead. The page's side of this schema is js/src/schema.ts's PAGE_MESSAGES and
KERNEL_MESSAGES tables; tests/test_messages.py checks that both sides name the same messages with
the same fields (PAGE_MESSAGES and KERNEL_MESSAGES here).

Page messages travel over the page socket (media_socket.py, SOCKET_TYPES: all but the ones with
a buffer) where the server relays it, else over the comm; kernel messages over the comm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NotRequired, TypeAlias, TypedDict

#: A JSON value as a page message carries it: parsed, not yet checked.
JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
#: A frame's number as the page sent it: its ack echoes it unchanged, whatever it is.
Seq: TypeAlias = JsonValue
#: A page message as it arrived (comm or page socket): a JSON object, its fields not yet checked.
PageMessage: TypeAlias = Mapping[str, JsonValue]
#: An ICE server as the browser's RTCPeerConnection takes it: urls, username?, credential?.
BrowserIceServer: TypeAlias = dict[str, str | list[str]]

__all__ = [
    "KERNEL_MESSAGES",
    "KERNEL_TYPES",
    "PAGE_MESSAGES",
    "PAGE_TYPES",
    "SOCKET_TYPES",
    "Answer",
    "AnswerError",
    "BrowserIceServer",
    "CameraEnded",
    "CameraError",
    "CameraInfo",
    "Chunk",
    "ChunkAck",
    "Devices",
    "Frame",
    "FrameAck",
    "GaveUp",
    "IceServers",
    "JsonValue",
    "KernelMessage",
    "Keyframe",
    "MediaSocketAddress",
    "Offer",
    "OutputChunk",
    "OutputFrame",
    "PageMessage",
    "PageStats",
    "Reconnecting",
    "Restart",
    "Seq",
    "Stop",
    "Stopped",
    "Transport",
    "WantIceServers",
    "answer",
    "answer_error",
    "chunk_ack",
    "frame_ack",
    "ice_servers",
    "keyframe",
    "media_socket",
    "output_chunk",
    "output_frame",
    "restart",
    "stop",
]


# -- page -> kernel -----------------------------------------------------------------------------
class Offer(TypedDict):
    type: Literal["offer"]
    sdp: str
    attempt: int


class CameraInfo(TypedDict):
    """The camera the page opened (facingMode "" when the browser cannot say)."""

    type: Literal["camera"]
    facingMode: str
    label: str
    deviceId: str
    width: int
    height: int
    frameRate: float


class Devices(TypedDict):
    type: Literal["devices"]
    devices: list[dict[str, str]]  # {deviceId, label}


class CameraError(TypedDict):
    """getUserMedia failed: the DOMException's name and message."""

    type: Literal["camera_error"]
    name: str
    message: str


class CameraEnded(TypedDict):
    """The camera's track ended mid-stream (unplugged, or the browser's permission revoked)."""

    type: Literal["camera_ended"]
    label: str


class Reconnecting(TypedDict):
    type: Literal["reconnecting"]
    attempt: int


class GaveUp(TypedDict):
    type: Literal["gave_up"]
    attempts: int


class Stopped(TypedDict):
    """The page stopped its camera and closed its peer (its last view went away)."""

    type: Literal["stopped"]
    reason: str


class Transport(TypedDict):
    """The transport the page uses now ("webrtc"; "codec": VP8 chunks of `codec`; "jpeg": JPEG
    frames; "comm", an older page's name for "jpeg", is read as "jpeg"), and `reason`: why not
    WebRTC ("" on WebRTC), e.g. "UDP blocked: WebRTC found no network path" (the part before a
    colon is the short form the status line shows)."""

    type: Literal["transport"]
    transport: Literal["webrtc", "codec", "jpeg", "comm"]
    codec: NotRequired[str]
    reason: NotRequired[str]


class Frame(TypedDict):
    """A camera frame over the comm (buffer: JPEG)."""

    type: Literal["frame"]
    seq: int


class FrameAck(TypedDict):
    """Either way: the frame `seq` arrived; the other side may send its next one."""

    type: Literal["frame_ack"]
    seq: Seq


class Chunk(TypedDict):
    """A camera frame over the comm as VP8 (buffer: one EncodedVideoChunk's bytes)."""

    type: Literal["chunk"]
    seq: int
    key: bool
    width: int
    height: int


class ChunkAck(TypedDict):
    """Either way: the chunk `seq` arrived (acked once decoded)."""

    type: Literal["chunk_ack"]
    seq: Seq


class Keyframe(TypedDict):
    """Either way: my decoder needs a key frame (start, a decode error, a gap): send one next."""

    type: Literal["keyframe"]


class WantIceServers(TypedDict):
    """The page is about to make a peer and has not got the kernel's ICE servers (the widget's
    `ice_server_count` says how many there are): send them."""

    type: Literal["want_ice_servers"]


class PageStats(TypedDict, total=False):
    """What the browser sends, receives and presents (media/stats.py PAGE_STATS), every 2 s."""

    type: Literal["page_stats"]
    fps_sent: float | None
    fps_received: float | None
    fps_decoded: float | None
    fps_presented: float | None
    frames_dropped: float | None
    freezes: float | None
    width: float | None
    height: float | None
    rtt_ms: float | None  # WebRTC's network round trip; null over the comm
    kbps_sent: float | None  # WebRTC: the camera's bitrate; null over the comm (the kernel meters it)
    kbps_received: float | None  # WebRTC: the output's bitrate; null over the comm


#: Every message the page sends, by type (transport, frame, frame_ack, chunk, chunk_ack, keyframe: comm).
PAGE_MESSAGES: dict[str, type] = {
    "offer": Offer,
    "camera": CameraInfo,
    "devices": Devices,
    "camera_error": CameraError,
    "camera_ended": CameraEnded,
    "reconnecting": Reconnecting,
    "gave_up": GaveUp,
    "stopped": Stopped,
    "transport": Transport,
    "frame": Frame,
    "frame_ack": FrameAck,
    "chunk": Chunk,
    "chunk_ack": ChunkAck,
    "keyframe": Keyframe,
    "page_stats": PageStats,
    "want_ice_servers": WantIceServers,
}
PAGE_TYPES = tuple(PAGE_MESSAGES)
#: What the page socket carries as JSON: every page message but the ones with a buffer.
SOCKET_TYPES = frozenset(PAGE_MESSAGES) - {"frame", "chunk"}


# -- kernel -> page -----------------------------------------------------------------------------
class Answer(TypedDict):
    type: Literal["answer"]
    attempt: JsonValue
    sdp: str


class AnswerError(TypedDict):
    type: Literal["answer_error"]
    attempt: JsonValue
    error: dict[str, object]  # DecartNBError.to_dict()


class Restart(TypedDict):
    """Re-request the camera and renegotiate (a reconnect, or a model switch's new size)."""

    type: Literal["restart"]


class Stop(TypedDict):
    """The session disconnected: stop the camera and close the peer."""

    type: Literal["stop"]


class OutputFrame(TypedDict):
    """An output frame over the comm (buffer: JPEG)."""

    type: Literal["frame"]
    seq: int
    width: int
    height: int


class OutputChunk(TypedDict):
    """An output frame over the comm as VP8 (buffer: one VP8 frame, libvpx realtime)."""

    type: Literal["chunk"]
    seq: int
    key: bool
    width: int
    height: int


class MediaSocketAddress(TypedDict):
    """The widget's page socket (media_socket.py): open the relay's websocket to `port`
    (`decart_nb/media/<port>` under the server's base URL) and send `token` as its first message.
    Sent when the widget is made, again while no connection is live (timeouts.py
    PAGE_SOCKET_OFFER_AFTER_S, and on a page message over the comm); the token travels in this
    message only, never in the widget's state."""

    type: Literal["media_socket"]
    port: int
    token: str


class IceServers(TypedDict):
    """The ICE servers for the page's RTCPeerConnection, in the browser's shape ({urls, username?,
    credential?}): TURN credentials travel in this message only, never in the widget's state
    (JupyterLab's "save widget state" writes that into the notebook). Sent with each offer of the
    page socket, at a reconnect, and when the page asks (`want_ice_servers`)."""

    type: Literal["ice_servers"]
    servers: list[BrowserIceServer]


KernelMessage = (
    Answer
    | AnswerError
    | Restart
    | Stop
    | OutputFrame
    | FrameAck
    | OutputChunk
    | ChunkAck
    | Keyframe
    | MediaSocketAddress
    | IceServers
)

#: Every message the kernel sends, by type.
KERNEL_MESSAGES: dict[str, type] = {
    "answer": Answer,
    "answer_error": AnswerError,
    "restart": Restart,
    "stop": Stop,
    "frame": OutputFrame,
    "frame_ack": FrameAck,
    "chunk": OutputChunk,
    "chunk_ack": ChunkAck,
    "keyframe": Keyframe,
    "media_socket": MediaSocketAddress,
    "ice_servers": IceServers,
}
KERNEL_TYPES = tuple(KERNEL_MESSAGES)


def answer(attempt: JsonValue, sdp: str) -> Answer:
    return {"type": "answer", "attempt": attempt, "sdp": sdp}


def answer_error(attempt: JsonValue, error: dict[str, object]) -> AnswerError:
    return {"type": "answer_error", "attempt": attempt, "error": error}


def restart() -> Restart:
    return {"type": "restart"}


def stop() -> Stop:
    return {"type": "stop"}


def output_frame(seq: int, width: int, height: int) -> OutputFrame:
    return {"type": "frame", "seq": seq, "width": width, "height": height}


def frame_ack(seq: Seq) -> FrameAck:
    return {"type": "frame_ack", "seq": seq}


def output_chunk(seq: int, key: bool, width: int, height: int) -> OutputChunk:
    return {"type": "chunk", "seq": seq, "key": key, "width": width, "height": height}


def chunk_ack(seq: Seq) -> ChunkAck:
    return {"type": "chunk_ack", "seq": seq}


def keyframe() -> Keyframe:
    return {"type": "keyframe"}


def media_socket(port: int, token: str) -> MediaSocketAddress:
    return {"type": "media_socket", "port": port, "token": token}


def ice_servers(servers: list[BrowserIceServer]) -> IceServers:
    return {"type": "ice_servers", "servers": servers}
