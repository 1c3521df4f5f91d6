"""The custom messages between the page (static/camera.js) and the kernel: the kernel's side.

Every message is a JSON object with a `type`; a frame's JPEG travels as the message's one buffer.
State the page renders (connection state, size, mirror, stats, last error) travels as synced traits
of the CameraWidget instead. The page's side of this schema is camera.js's PAGE_MESSAGES and
KERNEL_MESSAGES tables; tests/test_messages.py checks that both sides name the same messages with
the same fields (PAGE_MESSAGES and KERNEL_MESSAGES here).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "KERNEL_MESSAGES",
    "KERNEL_TYPES",
    "PAGE_MESSAGES",
    "PAGE_TYPES",
    "Answer",
    "AnswerError",
    "CameraEnded",
    "CameraError",
    "CameraInfo",
    "Devices",
    "Frame",
    "FrameAck",
    "GaveUp",
    "KernelMessage",
    "Offer",
    "OutputFrame",
    "PageStats",
    "Reconnecting",
    "Restart",
    "Stop",
    "Stopped",
    "Transport",
    "answer",
    "answer_error",
    "frame_ack",
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
    """The transport the page uses now."""

    type: Literal["transport"]
    transport: Literal["webrtc", "comm"]


class Frame(TypedDict):
    """A camera frame over the comm (buffer: JPEG)."""

    type: Literal["frame"]
    seq: int


class FrameAck(TypedDict):
    """Either way: the frame `seq` arrived; the other side may send its next one."""

    type: Literal["frame_ack"]
    seq: Any


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


#: Every message the page sends, by type (frame, frame_ack and transport belong to the comm transport).
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
    "page_stats": PageStats,
}
PAGE_TYPES = tuple(PAGE_MESSAGES)


# -- kernel -> page -----------------------------------------------------------------------------
class Answer(TypedDict):
    type: Literal["answer"]
    attempt: Any
    sdp: str


class AnswerError(TypedDict):
    type: Literal["answer_error"]
    attempt: Any
    error: dict[str, Any]  # DecartNBError.to_dict()


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


KernelMessage = Answer | AnswerError | Restart | Stop | OutputFrame | FrameAck

#: Every message the kernel sends, by type.
KERNEL_MESSAGES: dict[str, type] = {
    "answer": Answer,
    "answer_error": AnswerError,
    "restart": Restart,
    "stop": Stop,
    "frame": OutputFrame,
    "frame_ack": FrameAck,
}
KERNEL_TYPES = tuple(KERNEL_MESSAGES)


def answer(attempt: Any, sdp: str) -> Answer:
    return {"type": "answer", "attempt": attempt, "sdp": sdp}


def answer_error(attempt: Any, error: dict[str, Any]) -> AnswerError:
    return {"type": "answer_error", "attempt": attempt, "error": error}


def restart() -> Restart:
    return {"type": "restart"}


def stop() -> Stop:
    return {"type": "stop"}


def output_frame(seq: int, width: int, height: int) -> OutputFrame:
    return {"type": "frame", "seq": seq, "width": width, "height": height}


def frame_ack(seq: Any) -> FrameAck:
    return {"type": "frame_ack", "seq": seq}
