"""Session(source="device[:PATH]"): a camera on the kernel's machine, read with PyAV.

No V4L2 device (nor v4l2loopback) exists here, so a FIFO stands in for one: a writer thread feeds
it a YUV4MPEG stream of a moving pattern at 30 fps, live like a camera (nothing is buffered ahead,
and the stream stops when the writer does). The FIFO goes through the same code as a device: only
the demuxer differs, chosen by what the path is (a character device: v4l2; a FIFO: yuv4mpegpipe).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode, Session, _loop
from decart_nb.media import device
from decart_nb.media.sources import check_source
from tests.helpers import wait_until

W, H, FPS = 320, 240, 30
DARK, BRIGHT = 40, 210  # the pattern's left and right halves (luma)


class FakeCamera:
    """Writes a live y4m stream into a FIFO: left half dark, right half bright, a grey bar moving
    8 px a frame. `frames` bounds the stream (then the "camera" stops mid-stream)."""

    def __init__(self, path: Path, frames: int | None = None) -> None:
        os.mkfifo(path)
        self.path = path
        self.frames = frames
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.paused = threading.Event()  # set: the camera stays open but sends nothing
        self._thread = threading.Thread(target=self._run, name="fake-camera", daemon=True)
        self._thread.start()

    def _open(self) -> int | None:
        """Wait for a reader without blocking forever (a plain open() would, with no reader)."""
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.01)
                continue
            os.set_blocking(fd, True)
            return fd
        return None

    def _run(self) -> None:
        try:
            fd = self._open()
            if fd is None:
                return
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                pipe.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
                start = time.perf_counter()
                tick = 0
                while not self._stop.is_set() and (self.frames is None or self.sent < self.frames):
                    if not self.paused.is_set():
                        pipe.write(b"FRAME\n" + frame_bytes(self.sent))
                        self.sent += 1
                    tick += 1
                    time.sleep(max(0.0, start + tick / FPS - time.perf_counter()))
        except BrokenPipeError:
            pass  # the reader closed the device: the camera stops
        except BaseException as exc:  # noqa: BLE001 - the test checks it
            self.error = exc

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


def frame_bytes(n: int) -> bytes:
    y = np.full((H, W), DARK, np.uint8)
    y[:, W // 2 :] = BRIGHT
    x = (n * 8) % (W - 16)
    y[: H // 4, x : x + 16] = 128
    uv = np.full((H // 2, W // 2), 128, np.uint8)
    return y.tobytes() + uv.tobytes() + uv.tobytes()


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Let device paths live in tmp_path too (the stand-in cannot be made under /dev)."""
    monkeypatch.setattr(device, "DEVICE_ROOTS", ("/dev", str(tmp_path)))
    return tmp_path


@pytest.fixture
def camera(roots: Path) -> Iterator[FakeCamera]:
    cam = FakeCamera(roots / "video0")
    yield cam
    cam.close()


def luma_halves(img: Any) -> tuple[float, float]:
    y = np.asarray(img.convert("L"), dtype=np.float32)
    h, w = y.shape
    body = y[h // 3 :]  # below the moving bar
    return float(np.median(body[:, : w // 2 - 8])), float(np.median(body[:, w // 2 + 8 :]))


# == frames flow =================================================================================
def test_frames_flow_through_the_session_at_the_model_size(
    camera: FakeCamera, no_leaked_threads: None
) -> None:
    s = Session(source=f"device:{camera.path}")
    assert check_source(s.source) == "device"
    with s:
        first = s.snapshot(timeout=10)
        assert first.size == (s.model.width, s.model.height) == (1280, 720)
        left, right = luma_halves(first)
        assert abs(left - DARK) < 20 and abs(right - BRIGHT) < 20, (left, right)
        assert wait_until(lambda: s.state == "generating", timeout=5)
        time.sleep(0.5)
        later = s.snapshot(timeout=5)
        moved = np.abs(np.asarray(first, np.int16) - np.asarray(later, np.int16)).max()
        assert moved > 40  # the bar moved: live frames, not one repeated
        assert s.stats["fps_in"] > 15
    assert s.state == "disconnected"
    assert camera.sent >= 15


def test_source_device_takes_the_first_node_that_opens(
    roots: Path, monkeypatch: pytest.MonkeyPatch, no_leaked_threads: None
) -> None:
    cam = FakeCamera(roots / "video1")
    folder = roots / "video0"
    folder.mkdir()  # a node that cannot be opened as a camera comes first
    monkeypatch.setattr(device, "video_nodes", lambda: [str(folder), str(cam.path)])
    try:
        with Session(source="device") as s:
            assert s.snapshot(timeout=10).size == (1280, 720)
    finally:
        cam.close()


# == the device stops mid-stream ===============================================================
def test_a_device_that_stops_is_reported_once_and_the_track_stays_live(
    camera: FakeCamera, no_leaked_threads: None
) -> None:
    camera.frames = 20

    async def run() -> tuple[list[DecartNBError], int, int, bool]:
        track = await device.make_device_track(f"device:{camera.path}", 160, 96, 30)
        errors: list[DecartNBError] = []
        stalls: list[int] = []
        track.watch(errors.append, lambda: stalls.append(1))
        got = 0
        while not errors:
            try:
                frame = await asyncio.wait_for(track.recv(), 0.5)
            except TimeoutError:
                continue
            assert (frame.width, frame.height, frame.format.name) == (160, 96, "yuv420p")
            got += 1
        await asyncio.sleep(0.3)  # nothing more comes, and nothing is reported twice
        live = track.readyState == "live"
        track.stop()
        return errors, len(stalls), got, live

    errors, stalls, got, live = asyncio.run(asyncio.wait_for(run(), 20))
    assert [e.code for e in errors] == [ErrorCode.CAMERA_ERROR] and stalls == 1
    assert "stopped sending frames" in errors[0].message and str(camera.path) in errors[0].message
    assert 1 <= got <= 20 and live


def test_a_session_whose_device_stops_stays_up(
    camera: FakeCamera, caplog: pytest.LogCaptureFixture, no_leaked_threads: None
) -> None:
    caplog.set_level(logging.WARNING, logger="decart_nb")
    camera.frames = 30
    with Session(source=f"device:{camera.path}") as s:
        assert wait_until(lambda: s.state == "generating", timeout=10)
        assert wait_until(lambda: "stopped sending frames" in caplog.text, timeout=10)
        time.sleep(0.5)
        assert s.state != "disconnected"  # up: a reconnect or a new device can follow
        assert s.snapshot(timeout=1).size == (1280, 720)  # the last frame stays
        assert caplog.text.count("stopped sending frames") == 1


def test_a_device_that_sends_nothing_for_a_while_is_stalled_then_flows_again(
    camera: FakeCamera, no_leaked_threads: None
) -> None:
    async def run() -> tuple[list[DecartNBError], list[float], int]:
        track = await device.make_device_track(f"device:{camera.path}", 160, 96, 30)
        errors: list[DecartNBError] = []
        stalls: list[float] = []
        track.watch(errors.append, lambda: stalls.append(time.monotonic()))
        await asyncio.wait_for(track.recv(), 5)
        camera.paused.set()
        paused_at = time.monotonic()
        while not stalls and time.monotonic() - paused_at < 8:
            await asyncio.sleep(0.1)
        camera.paused.clear()
        frame = await asyncio.wait_for(track.recv(), 5)  # frames come back on the same track
        track.stop()
        return errors, [t - paused_at for t in stalls], frame.width

    errors, stalled_after, width = asyncio.run(asyncio.wait_for(run(), 20))
    assert errors == [] and width == 160
    assert len(stalled_after) == 1 and 1.5 < stalled_after[0] < 6, stalled_after  # CAMERA_STALL_S = 2


def test_a_stopped_device_is_an_error_event_and_the_state_goes_back_to_connected(
    camera: FakeCamera, no_leaked_threads: None
) -> None:
    camera.frames = 30
    errors: list[DecartNBError] = []
    with Session(source=f"device:{camera.path}") as s:
        s.on("error", errors.append)
        assert wait_until(lambda: s.state == "generating", timeout=10)
        assert wait_until(lambda: s.state == "connected", timeout=10)
        time.sleep(0.5)
        assert [e.code for e in errors] == [ErrorCode.CAMERA_ERROR]
        assert s.state == "connected"


# == errors at the call site ====================================================================
def test_a_missing_device_is_camera_not_found_when_built(no_leaked_threads: None) -> None:
    users = _loop._users
    with pytest.raises(DecartNBError) as info:
        Session(source="device:/dev/video-decart-nb-absent")
    assert info.value.code == ErrorCode.CAMERA_NOT_FOUND
    message = info.value.message
    assert "/dev/video-decart-nb-absent" in message and "video devices there: none" in message
    assert "VS Code" in message and "kernel" in message
    assert _loop._users == users


def test_a_device_gone_before_connect_is_camera_not_found_at_connect(
    roots: Path, no_leaked_threads: None
) -> None:
    fifo = roots / "video0"
    os.mkfifo(fifo)
    s = Session(source=f"device:{fifo}")
    fifo.unlink()
    with pytest.raises(DecartNBError) as info:
        s.connect()
    assert info.value.code == ErrorCode.CAMERA_NOT_FOUND
    assert s.state == "disconnected"


def test_no_device_at_all_is_camera_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "video_nodes", lambda: [])
    with pytest.raises(DecartNBError) as info:
        Session(source="device")
    assert info.value.code == ErrorCode.CAMERA_NOT_FOUND
    assert "none" in info.value.message


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("device:", "names no device"),
        ("device:video0", "absolute path"),
        ("device:relative/dev/video0", "absolute path"),
        ("device:/etc/hostname", "not a device under /dev"),
        ("device:/dev/../etc/hostname", "not a device under /dev"),
        (b"device:/dev/video0", "Unsupported source bytes"),
        (Path("device:/dev/video0"), "existing file"),  # a path object is a file, never a device
    ],
)
def test_bad_device_values_are_invalid_input(source: Any, says: str, no_leaked_threads: None) -> None:
    users = _loop._users
    with pytest.raises(DecartNBError) as info:
        Session(source=source)
    assert info.value.code == ErrorCode.INVALID_INPUT, info.value
    assert says in info.value.message
    assert _loop._users == users  # nothing started


def test_a_regular_file_or_folder_is_not_a_device(roots: Path) -> None:
    plain = roots / "video0"
    plain.write_bytes(b"not a camera")
    for path, kind in ((plain, "regular file"), (roots, "folder")):
        with pytest.raises(DecartNBError) as info:
            Session(source=f"device:{path}")
        assert info.value.code == ErrorCode.INVALID_INPUT and kind in info.value.message


def test_a_character_device_that_is_no_camera_is_camera_error_at_connect(
    monkeypatch: pytest.MonkeyPatch, no_leaked_threads: None
) -> None:
    """/dev/null is a character device: the real v4l2 demuxer opens it, and every mode fails."""
    asked: list[dict[str, str]] = []
    real_open = av.open

    def counting(path: str, **kwargs: Any) -> Any:
        asked.append(kwargs["options"])
        return real_open(path, **kwargs)

    monkeypatch.setattr(device.av, "open", counting)
    s = Session(source="device:/dev/null")
    with pytest.raises(DecartNBError) as info:
        s.connect()
    assert info.value.code == ErrorCode.CAMERA_ERROR and "video capture device" in info.value.message
    assert len(asked) == 3 and s.state == "disconnected"


@pytest.mark.parametrize(
    ("exc", "code", "says"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), ErrorCode.CAMERA_PERMISSION_DENIED, "video"),
        (OSError(errno.EPERM, "Operation not permitted"), ErrorCode.CAMERA_PERMISSION_DENIED, "group"),
        (OSError(errno.EBUSY, "Device or resource busy"), ErrorCode.CAMERA_BUSY, "busy"),
        (OSError(None, "ioctl(VIDIOC_STREAMON): Device or resource busy"), ErrorCode.CAMERA_BUSY, "busy"),
        (FileNotFoundError(errno.ENOENT, "No such file"), ErrorCode.CAMERA_NOT_FOUND, "kernel"),
        (OSError(errno.ENODEV, "No such device"), ErrorCode.CAMERA_NOT_FOUND, "VS Code"),
        (OSError(errno.EINVAL, "Invalid argument"), ErrorCode.CAMERA_ERROR, "--list-formats-ext"),
    ],
)
def test_os_errors_map_to_camera_codes(exc: OSError, code: str, says: str) -> None:
    error = device.device_error(exc, "/dev/video7")
    assert error.code == code and says in error.message and error.cause is exc
    assert error.data["path"] == "/dev/video7"


@pytest.mark.parametrize(
    ("number", "code"),
    [(errno.EACCES, ErrorCode.CAMERA_PERMISSION_DENIED), (errno.EBUSY, ErrorCode.CAMERA_BUSY)],
)
def test_pyav_errors_when_opening_map_too_and_are_not_retried(
    number: int, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What PyAV raises for a device that is denied or busy (an OSError subclass with the errno),
    raised at once: another mode would fail the same way."""
    calls: list[dict[str, str]] = []

    def refuse(path: str, **kwargs: Any) -> Any:
        calls.append(kwargs["options"])
        av.error.err_check(-number, path)  # raises PyAV's own error for this errno

    monkeypatch.setattr(device.av, "open", refuse)
    monkeypatch.setattr(device, "_format_for", lambda path: "v4l2")  # no /dev/video7 here
    with pytest.raises(DecartNBError) as info:
        device.open_device("/dev/video7", 1280, 720, 30)
    assert info.value.code == code and isinstance(info.value.cause, av.FFmpegError)
    assert len(calls) == 1


def test_a_refused_mode_falls_back_to_the_default_and_is_scaled(
    camera: FakeCamera, monkeypatch: pytest.MonkeyPatch, no_leaked_threads: None
) -> None:
    """v4l2 is asked for the model's mode (MJPEG first, then raw); when the device refuses both,
    its default mode is opened, and frames are still scaled to the model's size."""
    real_open = av.open
    asked: list[dict[str, str]] = []

    def device_like(path: str, format: str, options: dict[str, str]) -> Any:
        asked.append(options)
        if "video_size" in options:
            av.error.err_check(-errno.EINVAL, path)
        return real_open(path, format="yuv4mpegpipe")

    monkeypatch.setattr(device.av, "open", device_like)
    monkeypatch.setitem(device.FORMATS, "fifo", "v4l2")  # drive the v4l2 path with the stand-in
    with Session(source=f"device:{camera.path}") as s:
        assert s.snapshot(timeout=10).size == (1280, 720)
    wallclock = {"timestamps": "abs"}
    assert asked == [
        wallclock | {"video_size": "1280x720", "framerate": "30", "input_format": "mjpeg"},
        wallclock | {"video_size": "1280x720", "framerate": "30"},
        wallclock,
    ]


@pytest.mark.parametrize(
    ("age", "stale"),
    [(None, False), (0.0, False), (0.05, False), (0.07, True), (0.9, True), (1.5, False), (-3.0, False)],
)
def test_frames_queued_in_the_driver_are_skipped_only_when_plainly_late(
    age: float | None, stale: bool
) -> None:
    assert device.is_stale(age, 1 / 30) is stale


def test_devices_lists_video_nodes_with_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    node = tmp_path / "video0"
    os.mkfifo(node)
    monkeypatch.setattr(device, "video_nodes", lambda: [str(node)])
    assert device.devices() == [{"path": str(node), "name": "", "access": "ok"}]


def test_video_nodes_are_in_number_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("video10", "video2", "video0", "vbi0", "videoX"):
        (tmp_path / name).touch()
    monkeypatch.setattr(device, "Path", lambda p: tmp_path if p == "/dev" else Path(p))
    assert device.video_nodes() == ["/dev/video0", "/dev/video2", "/dev/video10"]
