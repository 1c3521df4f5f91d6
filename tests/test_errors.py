import pytest

from decart_nb import DecartNBError, ErrorCode
from decart_nb.errors import camera_error_code, classify_realtime_error


@pytest.mark.parametrize(
    ("text", "server", "code"),
    [
        ("anything at all", True, ErrorCode.WEBRTC_SERVER_ERROR),
        ("WebSocket closed; ice connection failed", False, ErrorCode.WEBRTC_WEBSOCKET_ERROR),
        ("ICE connection failed after timeout", False, ErrorCode.WEBRTC_ICE_ERROR),
        ("request timed out", False, ErrorCode.WEBRTC_TIMEOUT_ERROR),
        ("Timeout waiting", False, ErrorCode.WEBRTC_TIMEOUT_ERROR),
        ("bad sdp", False, ErrorCode.WEBRTC_SIGNALING_ERROR),
    ],
)
def test_realtime_errors_are_classified_in_decarts_order(text: str, server: bool, code: str) -> None:
    assert classify_realtime_error(text, from_server=server) == code


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("NotAllowedError", ErrorCode.CAMERA_PERMISSION_DENIED),
        ("NotFoundError", ErrorCode.CAMERA_NOT_FOUND),
        ("NotReadableError", ErrorCode.CAMERA_BUSY),
        ("OverconstrainedError", ErrorCode.CAMERA_OVERCONSTRAINED),
        ("WeirdError", ErrorCode.CAMERA_ERROR),
    ],
)
def test_each_camera_failure_has_its_own_code(name: str, code: str) -> None:
    assert camera_error_code(name) == code


def test_error_carries_code_message_data_cause_and_legacy_alias() -> None:
    cause = ValueError("boom")
    err = DecartNBError(ErrorCode.WEBRTC_ICE_ERROR, "lost", data={"n": 1, "obj": object()}, cause=cause)
    assert (err.code, err.message, err.data["n"], err.cause) == ("WEBRTC_ICE_ERROR", "lost", 1, cause)
    assert err.__cause__ is cause
    assert str(err) == "[WEBRTC_ICE_ERROR] lost"
    assert err.matches("WEB_RTC_ERROR") and err.matches("WEBRTC_ICE_ERROR")
    assert not DecartNBError(ErrorCode.INVALID_INPUT, "x").matches("WEB_RTC_ERROR")
    as_dict = err.to_dict()
    assert as_dict["code"] == "WEBRTC_ICE_ERROR" and isinstance(as_dict["data"]["obj"], str)
