"""A camera on the kernel's machine (V4L2, through PyAV), for pages that have no camera of their
own: VS Code notebook webviews deny getUserMedia, remote desktops have no browser camera.

`Session(source="device")` takes the first /dev/video* that opens, `source="device:/dev/video2"`
a given one. The device is asked for the model's size and rate; V4L2 drivers round both to the
nearest mode they offer, and when even that fails the device's default mode is used. Frames are
then scaled to the model's size here, as the other sources do. One reader thread per device keeps
only the newest frame; a device that fails mid-stream is reported once and sends nothing more.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVarTuple

import av
from av.container import InputContainer

from ..errors import DecartNBError, ErrorCode
from ..timeouts import CAMERA_STALL_S, DEVICE_STOP_S, WATCH_EVERY_S
from .frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, FrameMeta
from .relay import MailboxTrack

__all__ = [
    "DeviceTrack",
    "check_device",
    "device_error",
    "device_path",
    "devices",
    "open_device",
]

logger = logging.getLogger("decart_nb")
Ts = TypeVarTuple("Ts")

PREFIX = "device"
# Where device paths may live. Tests add their own folder (a FIFO stands in for a camera there).
DEVICE_ROOTS: tuple[str, ...] = ("/dev",)
# Demuxer by kind of file: a V4L2 character device, or a pipe fed with YUV4MPEG (the stand-in).
FORMATS = {"char": "v4l2", "fifo": "yuv4mpegpipe"}

_NOT_FOUND = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
_DENIED = {errno.EACCES, errno.EPERM}
_VIDEO_N = re.compile(r"^video(\d+)$")


def device_path(source: object) -> str | None:
    """The path in "device:PATH", "" for plain "device", None when `source` names no device."""
    if not isinstance(source, str):
        return None
    if source == PREFIX:
        return ""
    return source[len(PREFIX) + 1 :] if source.startswith(PREFIX + ":") else None


def video_nodes() -> list[str]:
    """The /dev/video* paths, in number order (video2 before video10)."""
    found = [(int(m.group(1)), p.name) for p in Path("/dev").glob("video*") if (m := _VIDEO_N.match(p.name))]
    return [f"/dev/{name}" for _, name in sorted(found)]


def devices() -> list[dict[str, str]]:
    """The kernel machine's V4L2 nodes: path, the driver's name for it, and whether this user may
    open it ("ok", or why not). Metadata nodes (a second /dev/video per USB camera) are listed too:
    they fail to open as cameras, and source="device" skips them."""
    listed = []
    for path in video_nodes():
        name_file = Path("/sys/class/video4linux") / Path(path).name / "name"
        try:
            name = name_file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            name = ""
        access = "ok" if os.access(path, os.R_OK | os.W_OK) else "permission denied"
        listed.append({"path": path, "name": name, "access": access})
    return listed


def _missing_message(path: str) -> str:
    nodes = video_nodes()
    present = ", ".join(nodes) if nodes else "none"
    return (
        f"No camera at {path or '/dev/video*'} on the kernel's machine (video devices there: "
        f"{present}). The camera must be on the machine that runs the kernel: with VS Code or a "
        "remote kernel, that is the remote machine, not the one showing the notebook. List them "
        "with decart_nb.devices() or `v4l2-ctl --list-devices`"
    )


def _denied_message(path: str) -> str:
    return (
        f"Permission denied opening the camera {path}: add the user running the kernel to the "
        "'video' group (sudo usermod -aG video $USER), then log in again and restart the kernel"
    )


def _busy_message(path: str) -> str:
    return (
        f"The camera {path} is busy: another program (a video call, another kernel or session, "
        "v4l2-ctl --stream) is using it. Close it, then connect again"
    )


def device_error(exc: BaseException, path: str, *, mid_stream: bool = False) -> DecartNBError:
    """The coded error for an OSError (or PyAV's error) from opening or reading a device."""
    number = getattr(exc, "errno", None)
    text = str(exc)
    if number in _NOT_FOUND or "No such file or directory" in text or "No such device" in text:
        code, message = ErrorCode.CAMERA_NOT_FOUND, _missing_message(path)
        if mid_stream:
            message = f"The camera {path} went away (unplugged?): {text}. Connect again once it is back"
    elif number in _DENIED or "Permission denied" in text:
        code, message = ErrorCode.CAMERA_PERMISSION_DENIED, _denied_message(path)
    elif number == errno.EBUSY or "Device or resource busy" in text:
        code, message = ErrorCode.CAMERA_BUSY, _busy_message(path)
    elif mid_stream:
        code = ErrorCode.CAMERA_ERROR
        message = f"The camera {path} stopped sending frames: {text}. Connect again to reopen it"
    else:
        code = ErrorCode.CAMERA_ERROR
        message = (
            f"Cannot capture from {path}: {text}. Is it a video capture device? List its modes with "
            f"`v4l2-ctl -d {path} --list-formats-ext`"
        )
    return DecartNBError(code, message, data={"path": path, "errno": number}, cause=exc)


def check_device(source: str) -> str:
    """Cheap checks when the Session is built (nothing is opened): the path, or "" for "device"."""
    if source == PREFIX:
        if not video_nodes():
            raise DecartNBError(ErrorCode.CAMERA_NOT_FOUND, _missing_message(""))
        return ""
    path = device_path(source)
    if not path:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{source!r:.60} names no device: use 'device' (the first camera) or 'device:/dev/videoN'",
        )
    _check_path(path)
    return path


def _check_path(path: str) -> None:
    if not os.path.isabs(path):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"source='device:PATH' needs an absolute path like device:/dev/video0, got {path!r:.80}",
        )
    real = os.path.realpath(path)  # /dev/v4l/by-id/... links point into /dev
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in DEVICE_ROOTS):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{path!r:.80} is not a device under /dev: use device:/dev/videoN (a video file is "
            "source=PATH, without 'device:')",
        )
    _format_for(path)  # absent, a folder or a regular file: fail now, not at connect


def _format_for(path: str) -> str:
    """The demuxer for what `path` is: v4l2 for a character device, the stand-in's for a FIFO."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise device_error(exc, path) from exc
    if stat.S_ISCHR(mode):
        return FORMATS["char"]
    if stat.S_ISFIFO(mode):
        return FORMATS["fifo"]
    kind = "a folder" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a device"
    raise DecartNBError(
        ErrorCode.INVALID_INPUT,
        f"{path} is {kind}, not a camera: use device:/dev/videoN (a video file is source=PATH)",
    )


def _attempts(fmt: str, width: int, height: int, fps: float) -> list[dict[str, str]]:
    """Open options, best first. V4L2 rounds an asked size and rate to the nearest it offers;
    MJPEG first, because USB cameras give 720p at 30 fps only compressed (raw YUYV over USB 2
    drops to 10 fps or less), then the raw default format, then the device's own default mode."""
    if fmt != FORMATS["char"]:
        return [{}]  # a stream (the stand-in) carries its own size and rate
    wallclock = {"timestamps": "abs"}  # packet times on the wall clock: stale ones can be told
    asked = wallclock | {"video_size": f"{width}x{height}", "framerate": f"{fps:g}"}
    return [asked | {"input_format": "mjpeg"}, asked, wallclock]


def is_stale(age_s: float | None, period_s: float) -> bool:
    """A frame read more than two frame periods after its capture waited in the driver's queue
    while the reader was behind: skipping it undecoded catches up (newest frame wins there too).
    An age past a second is no lag but a clock the driver stamps differently: never skipped."""
    return age_s is not None and 2 * period_s < age_s < 1.0


def open_device(path: str, width: int, height: int, fps: float) -> tuple[InputContainer, str]:
    """The open container and a description of the mode it got ("1280x720 mjpeg 30 fps")."""
    fmt = _format_for(path)
    failure: DecartNBError | None = None
    for options in _attempts(fmt, width, height, fps):
        try:
            container = av.open(path, format=fmt, options=options)
        except (OSError, av.FFmpegError) as exc:  # PyAV's errors are OSErrors with an errno
            failure = device_error(exc, path)
            if failure.code != ErrorCode.CAMERA_ERROR:
                raise failure from exc  # absent, denied or busy: another mode will not help
            logger.info("decart_nb: %s refused %s (%s); trying the next mode", path, options, exc)
            continue
        if not container.streams.video:
            container.close()
            raise DecartNBError(ErrorCode.CAMERA_ERROR, f"{path} has no video stream", data={"path": path})
        stream = container.streams.video[0]
        rate = f" {float(stream.average_rate):g} fps" if stream.average_rate else ""
        return container, f"{stream.width}x{stream.height} {stream.codec_context.name}{rate}"
    assert failure is not None
    raise failure


def first_device(width: int, height: int, fps: float) -> tuple[str, InputContainer, str]:
    """source="device": the first /dev/video* that opens as a camera (metadata nodes do not)."""
    nodes = video_nodes()
    errors: list[DecartNBError] = []
    for path in nodes:
        try:
            return (path, *open_device(path, width, height, fps))
        except DecartNBError as exc:
            errors.append(exc)
    if not errors:
        raise DecartNBError(ErrorCode.CAMERA_NOT_FOUND, _missing_message(""))
    tried = "; ".join(f"{e.data.get('path')}: {e.code}" for e in errors)
    first = errors[0]  # the likeliest camera (video0); its code says what to do
    raise DecartNBError(first.code, f"{first.message} (tried {tried})", data=first.data, cause=first)


class DeviceTrack(MailboxTrack):
    """Frames from an open device at the model's size. Built on the media loop; a reader thread
    decodes and scales, and hands the loop only the newest frame (at most one waiting: the box)."""

    def __init__(self, path: str, container: InputContainer, mode: str, width: int, height: int) -> None:
        super().__init__()
        self.path, self.mode = path, mode
        self.width, self.height = width, height
        self.dropped = 0  # frames the loop had not taken before the next one came
        self.bad_frames = 0  # frames the decoder rejected (a torn MJPEG frame), skipped
        self.failure: DecartNBError | None = None
        self._container = container
        self._media_loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._latest: av.VideoFrame | None = None
        self._stopping = threading.Event()
        self._on_error: Callable[[DecartNBError], None] | None = None
        self._on_stalled: Callable[[], None] | None = None
        self._t0 = time.perf_counter()
        self._last_frame = time.monotonic()
        self._stalled = False
        self._stall_check = self._media_loop.call_later(WATCH_EVERY_S, self._check_stall)
        self._thread = threading.Thread(target=self._read, name="decart_nb-device", daemon=True)
        self._thread.start()

    def watch(self, on_error: Callable[[DecartNBError], None], on_stalled: Callable[[], None]) -> None:
        """Loop thread: where a failure goes (the session's error event, its `connected` state).
        A failure that came before is delivered now."""
        self._on_error, self._on_stalled = on_error, on_stalled
        if self.failure is not None:
            on_error(self.failure)
            on_stalled()

    def stop(self) -> None:
        self._stopping.set()
        self._stall_check.cancel()
        super().stop()  # closes the box
        if self._thread is not threading.current_thread():
            self._thread.join(DEVICE_STOP_S)
        if self._thread.is_alive():
            logger.warning(
                "decart_nb: the reader of %s is still waiting for a frame; it lets go of the device "
                "with the next frame or error",
                self.path,
            )

    # -- the reader thread ----------------------------------------------------------------
    def _read(self) -> None:
        failure: DecartNBError | None = None
        try:
            failure = self._pump()
        except Exception as exc:  # noqa: BLE001 - a read error: reported once, on the loop
            failure = device_error(exc, self.path, mid_stream=True)
        finally:
            self._container.close()
        if failure is not None and not self._stopping.is_set():
            self._to_loop(self._fail, failure)

    def _pump(self) -> DecartNBError | None:
        stream = self._container.streams.video[0]
        wallclock = "v4l2" in self._container.format.name  # asked with timestamps=abs
        period = 1.0 / float(stream.average_rate or 30)
        for packet in self._container.demux(stream):
            if self._stopping.is_set():
                return None
            if wallclock and packet.pts is not None and packet.time_base is not None:
                if is_stale(time.time() - float(packet.pts * packet.time_base), period):
                    self.dropped += 1
                    continue
            try:
                frames = packet.decode()
            except av.InvalidDataError as exc:
                self.bad_frames += 1
                if self.bad_frames == 1:
                    logger.warning("decart_nb: %s sent a frame that does not decode: %s", self.path, exc)
                continue
            for frame in frames:
                self._offer(self._scaled(frame))
        return DecartNBError(
            ErrorCode.CAMERA_ERROR,
            f"The camera {self.path} stopped sending frames (end of stream). Connect again to reopen it",
            data={"path": self.path},
        )

    def _scaled(self, frame: av.VideoFrame) -> av.VideoFrame:
        now = time.perf_counter()
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        out.pts = int((now - self._t0) * VIDEO_CLOCK_RATE)
        out.time_base = VIDEO_TIME_BASE
        out.opaque = FrameMeta(t_in=now)
        return out

    def _offer(self, frame: av.VideoFrame) -> None:
        with self._lock:
            wake = self._latest is None  # else a wake-up is pending: it will take this frame
            self.dropped += not wake
            self._latest = frame
        if wake:
            self._to_loop(self._deliver)

    def _to_loop(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        try:
            self._media_loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed: the session is gone, nobody waits for frames
            logger.debug("decart_nb: %s: the media loop closed before a frame was handed over", self.path)

    # -- on the loop ------------------------------------------------------------------------
    def _deliver(self) -> None:
        with self._lock:
            frame, self._latest = self._latest, None
        if frame is not None and not self.box.closed:
            self._last_frame, self._stalled = time.monotonic(), False
            self.box.put(frame)

    def _check_stall(self) -> None:
        """A device that stays open but sends nothing (a stuck USB camera) is stalled, as a
        browser camera that stopped is: the session says `connected` until frames come back."""
        if self.readyState != "live":
            return
        quiet = time.monotonic() - self._last_frame >= CAMERA_STALL_S
        if quiet and not self._stalled and self.failure is None:
            self._stalled = True
            logger.info("decart_nb: %s sent no frame for %.1f s", self.path, CAMERA_STALL_S)
            if self._on_stalled is not None:
                self._on_stalled()
        self._stall_check = self._media_loop.call_later(WATCH_EVERY_S, self._check_stall)

    def _fail(self, failure: DecartNBError) -> None:
        if self.failure is not None or self.readyState != "live":
            return
        self.failure = failure
        logger.warning("decart_nb: %s", failure)
        if self._on_error is not None:
            self._on_error(failure)
        if self._on_stalled is not None:
            self._on_stalled()


def open_any(source: str, width: int, height: int, fps: float) -> tuple[str, InputContainer, str]:
    """Path, open container and mode for source="device[:PATH]". Blocking (a camera can take a
    while to start, a FIFO waits for its writer): the pipeline calls it in the loop's executor."""
    path = check_device(source)
    if path == "":
        return first_device(width, height, fps)
    return (path, *open_device(path, width, height, fps))


async def make_device_track(source: str, width: int, height: int, fps: float) -> DeviceTrack:
    """The track for source="device[:PATH]": opened off the loop, built on it."""
    loop = asyncio.get_running_loop()
    path, container, mode = await loop.run_in_executor(None, open_any, source, width, height, fps)
    logger.info("decart_nb: camera %s opened at %s", path, mode)
    return DeviceTrack(path, container, mode, width, height)
