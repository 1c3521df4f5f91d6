import subprocess
import sys
import traceback

import pytest

from decart_nb import DecartNBError, ErrorCode, _loop
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


SHELL_CELLS = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance(colors="nocolor")
shell.run_cell("from decart_nb import Session\\ns = Session(source='camera')\\ns.connect()", silent=True)
shell.run_cell("x = 1\\ns.snapshot(timeout=0.2)  # the user's line")
shell.run_cell("s.disconnect()", silent=True)
"""


def test_a_session_error_in_ipython_shows_the_users_call_not_the_loop() -> None:
    """In a real IPython shell: the FRAME_TIMEOUT traceback names the user's line and the error,
    with no frame of the media loop's plumbing (_loop.py, concurrent.futures)."""
    done = subprocess.run(
        [sys.executable, "-c", SHELL_CELLS], capture_output=True, text=True, timeout=120, check=True
    )
    printed = done.stdout
    assert "s.snapshot(timeout=0.2)  # the user's line" in printed, printed
    assert "DecartNBError: [FRAME_TIMEOUT]" in printed, printed
    assert "_loop.py" not in printed and "concurrent/futures" not in printed, printed
    assert "has not connected" in printed, printed


def test_an_error_from_the_loop_keeps_its_cause_and_drops_the_loops_frames() -> None:
    cause = ValueError("the engine's own reason")

    async def fails() -> None:
        raise DecartNBError(ErrorCode.ENGINE_ERROR, "the engine failed", cause=cause)

    _loop.acquire()
    try:
        with pytest.raises(DecartNBError) as info:
            _loop.run(fails(), timeout=5, pump=True)
    finally:
        _loop.release()
    assert info.value.__cause__ is cause
    files = [entry.filename for entry in traceback.extract_tb(info.value.__traceback__)]
    assert not any("concurrent" in f for f in files), files
    assert not any(f.endswith("_loop.py") for f in files[:-1]), files  # only run()'s raise remains
