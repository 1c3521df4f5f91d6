"""The one error type of decart_nb, with Decart's error codes plus camera codes."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DecartNBError", "ErrorCode", "camera_error_code", "classify_realtime_error"]


class ErrorCode:
    """Error codes. Decart's own codes first, then decart_nb's additions."""

    INVALID_API_KEY = "INVALID_API_KEY"
    INVALID_BASE_URL = "INVALID_BASE_URL"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    TOKEN_CREATE_ERROR = "TOKEN_CREATE_ERROR"
    WEBRTC_SERVER_ERROR = "WEBRTC_SERVER_ERROR"
    WEBRTC_WEBSOCKET_ERROR = "WEBRTC_WEBSOCKET_ERROR"
    WEBRTC_ICE_ERROR = "WEBRTC_ICE_ERROR"
    WEBRTC_TIMEOUT_ERROR = "WEBRTC_TIMEOUT_ERROR"
    WEBRTC_SIGNALING_ERROR = "WEBRTC_SIGNALING_ERROR"
    # Browser camera failures, one code per DOMException name.
    CAMERA_PERMISSION_DENIED = "CAMERA_PERMISSION_DENIED"
    CAMERA_NOT_FOUND = "CAMERA_NOT_FOUND"
    CAMERA_BUSY = "CAMERA_BUSY"
    CAMERA_OVERCONSTRAINED = "CAMERA_OVERCONSTRAINED"
    CAMERA_ERROR = "CAMERA_ERROR"
    # decart_nb's own.
    NOT_CONNECTED = "NOT_CONNECTED"
    FRAME_TIMEOUT = "FRAME_TIMEOUT"
    # Session.wait_until(state) timed out: the session did not reach the state in time.
    WAIT_TIMEOUT = "WAIT_TIMEOUT"
    ENGINE_ERROR = "ENGINE_ERROR"
    SOURCE_ERROR = "SOURCE_ERROR"
    CALLBACK_ERROR = "CALLBACK_ERROR"
    SDK_NOT_INSTALLED = "SDK_NOT_INSTALLED"
    # Another sweep holds the run folder's lock (a second run would write the same results).
    FOLDER_BUSY = "FOLDER_BUSY"
    # Decart ended the session for want of credits: not retried (a new session is refused too).
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    # Decart ended the server session (e.g. its time limit, reason "timeout"); data["reason"] says
    # why. No new (billed) session starts unless asked (engine_options restart_billed_session).
    SESSION_ENDED = "SESSION_ENDED"
    # An experiment tracker (MLflow, W&B, a callable) failed to log; the run folder still holds
    # everything, so a sweep goes on and says so at the end.
    TRACKER_ERROR = "TRACKER_ERROR"


# Older SDKs reported every realtime failure as WEB_RTC_ERROR; users may still filter on it.
WEBRTC_CODES = frozenset(
    {
        ErrorCode.WEBRTC_SERVER_ERROR,
        ErrorCode.WEBRTC_WEBSOCKET_ERROR,
        ErrorCode.WEBRTC_ICE_ERROR,
        ErrorCode.WEBRTC_TIMEOUT_ERROR,
        ErrorCode.WEBRTC_SIGNALING_ERROR,
    }
)
LEGACY_WEBRTC_CODE = "WEB_RTC_ERROR"

_CAMERA_CODES = {
    "NotAllowedError": ErrorCode.CAMERA_PERMISSION_DENIED,
    "SecurityError": ErrorCode.CAMERA_PERMISSION_DENIED,
    "NotFoundError": ErrorCode.CAMERA_NOT_FOUND,
    "NotReadableError": ErrorCode.CAMERA_BUSY,
    "AbortError": ErrorCode.CAMERA_BUSY,
    "OverconstrainedError": ErrorCode.CAMERA_OVERCONSTRAINED,
}


class DecartNBError(Exception):
    """An error a person can act on: a stable `code`, a `message`, optional `data` and `cause`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        data: Mapping[str, object] | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: dict[str, object] = dict(data or {})
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause

    def matches(self, code: str) -> bool:
        """True for this error's code, and for the legacy WEB_RTC_ERROR on any WebRTC code."""
        return code == self.code or (code == LEGACY_WEBRTC_CODE and self.code in WEBRTC_CODES)

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe view (for the page and the panel); never holds secrets."""
        return {"code": self.code, "message": self.message, "data": _json_safe(self.data)}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"DecartNBError({self.code!r}, {self.message!r})"


def classify_realtime_error(text: str, *, from_server: bool = False) -> str:
    """Decart's realtime classification, in Decart's order."""
    lowered = text.lower()
    if from_server:
        return ErrorCode.WEBRTC_SERVER_ERROR
    if "websocket" in lowered:
        return ErrorCode.WEBRTC_WEBSOCKET_ERROR
    if "ice connection failed" in lowered:
        return ErrorCode.WEBRTC_ICE_ERROR
    if "timeout" in lowered or "timed out" in lowered:
        return ErrorCode.WEBRTC_TIMEOUT_ERROR
    return ErrorCode.WEBRTC_SIGNALING_ERROR


def camera_error_code(dom_exception_name: str) -> str:
    """The code for a getUserMedia failure, by its DOMException name."""
    return _CAMERA_CODES.get(dom_exception_name, ErrorCode.CAMERA_ERROR)


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
