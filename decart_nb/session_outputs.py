"""What a Session gives back: the newest output frame (snapshot), a recording, and the waits and
hints around them (wait_until, and what to try when nothing comes out)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path

import av
from PIL import Image

from . import _loop, ui_pump
from .checks import check_number
from .errors import DecartNBError, ErrorCode
from .media.frames import to_rgb
from .media.recorder import RecordWhat, Tappable, check_clip_path, check_what, clip_description, clip_suffix
from .media.recorder import record as record_clip
from .outputs import mp4_tags, reserve
from .session_core import STATES, ConnectionState, SessionCore, refuse_on_loop
from .timeouts import MAX_WAIT_S

__all__ = ["Outputs"]


class Outputs:
    """Snapshots, recordings and waits of one Session (the Session documents each)."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core

    def snapshot(self, timeout: float) -> Image.Image:
        core = self._core
        timeout = check_number("timeout", timeout, 0, MAX_WAIT_S, low_inclusive=False)
        core.refuse_in_model("snapshot")
        pipeline = core.require_pipeline()
        version = core.state.version

        async def grab() -> av.VideoFrame:
            try:
                return await asyncio.wait_for(pipeline.broadcast.next_frame(version), timeout)
            except TimeoutError:
                raise DecartNBError(
                    ErrorCode.FRAME_TIMEOUT,
                    f"No output frame within {timeout} s (state: {core.conn}).{self.not_live_hint()}",
                ) from None

        try:
            frame = _loop.run(grab(), timeout=timeout + 5, pump=True)
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        return Image.fromarray(to_rgb(frame))

    def record(self, path: str | os.PathLike[str] | None, seconds: float, what: RecordWhat) -> Path:
        core = self._core
        seconds = check_number("seconds", seconds, 0, MAX_WAIT_S, low_inclusive=False)
        clip = None if path is None else check_clip_path(path)
        what = check_what(what)
        core.refuse_in_model("record")
        pipeline = core.require_pipeline()
        label = core.label("clip")
        target = reserve(core.out_dir, label, clip_suffix(what)) if clip is None else clip
        ends: dict[str, Tappable] = {}
        if what in ("input", "both"):
            ends["input"] = pipeline.slot
        if what in ("output", "both"):
            ends["output"] = pipeline.broadcast
        tags = mp4_tags(label) | {"description": clip_description(what)}
        try:
            written = _loop.run(
                record_clip(ends, target, seconds, core.spec.fps, tags),
                timeout=seconds + 60,
                pump=True,
            )
        except BaseException as exc:
            if clip is None:  # the name this call took: no empty or broken file left behind
                target.unlink(missing_ok=True)
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            raise
        if written.absolute().is_relative_to(core.out_dir):  # not a file kept elsewhere (a sweep's)
            core.events.emit("output_saved", written)
        return written

    def wait_until(self, state: ConnectionState, timeout: float) -> None:
        core = self._core
        if not isinstance(state, str) or state not in STATES:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"state must be one of {', '.join(STATES)}, not {state!r:.40}"
            )
        timeout = check_number("timeout", timeout, 0, MAX_WAIT_S, low_inclusive=False)
        refuse_on_loop("wait_until")
        core.refuse_in_model("wait_until")
        reached: concurrent.futures.Future[None] = concurrent.futures.Future()
        accepted = ("connected", "generating") if state == "connected" else (state,)

        def watch(event: str, now: object) -> None:
            if event != "connection_change" or reached.done():
                return
            if now in accepted:
                reached.set_result(None)
            elif now == "disconnected":
                reached.set_exception(self._gone_while_waiting(state))

        core.events.watch(watch)
        try:
            if core.conn not in accepted:
                ui_pump.wait(reached, timeout)
        except concurrent.futures.TimeoutError:
            raise DecartNBError(
                ErrorCode.WAIT_TIMEOUT,
                f"The session was not {state} within {timeout} s (state: {core.conn})."
                + self.not_live_hint(),
            ) from None
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        finally:
            core.events.unwatch(watch)

    def _gone_while_waiting(self, state: str) -> DecartNBError:
        errors = self._core.errors
        last = errors[-1] if errors else None
        why = f": {last}" if last is not None else ""
        return DecartNBError(
            ErrorCode.NOT_CONNECTED,
            f"The session was disconnected while waiting for {state!r}{why}",
            cause=last,
        )

    def not_live_hint(self) -> str:
        """What to try when nothing comes out, for the state the session is in."""
        conn = self._core.conn
        if conn in ("connecting", "reconnecting") and self._core.is_camera():
            return (
                " The page has not connected its camera: is the session displayed (display(s), or s"
                " as a cell's last line), and did the browser allow the camera? Did code that does"
                " not call decart_nb (time.sleep, a long loop) keep the kernel busy? Without"
                " decart_nb_server (Colab, VS Code, a server from another environment) the page's"
                " messages reach the kernel only between cells or while a decart_nb call waits. In a"
                ' notebook run top to bottom, call s.wait_until("generating") before snapshot().'
            )
        if conn in ("connecting", "reconnecting"):
            return f" The {self._core.engine.name} engine is still connecting to its model."
        if conn == "connected":
            return " The model has produced no frame yet: is a frame coming in (s.stats: fps_in)?"
        if conn == "disconnected":
            return " The session is disconnected: call s.connect() (or display it) first."
        return ""
