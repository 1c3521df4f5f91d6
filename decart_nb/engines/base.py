"""The model seam. An engine turns an input track into an output track and applies a state."""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import av
from aiortc.mediastreams import MediaStreamTrack

from ..errors import DecartNBError, ErrorCode
from ..media.frames import FrameMeta, carry, luma_view, meta_of
from ..media.mailbox import ThreadMailbox
from ..media.relay import InputSlot, MailboxTrack
from ..media.stamp import copy_stamp
from ..media.stats import StreamStats
from ..models import ModelSpec
from ..state import GenerationState

__all__ = ["Control", "Engine", "FrameEngine"]

logger = logging.getLogger("decart_nb")
_ERROR_REPEAT_S = 5.0  # the same per-frame failure is reported at most this often
_worker = threading.local()  # .engine: the FrameEngine whose worker thread this is


@dataclass(frozen=True)
class Control:
    """A numeric knob an engine declares; the panel renders one slider per control."""

    name: str
    label: str
    min: float
    max: float
    step: float
    default: float
    help: str = ""

    def check(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"{self.name} must be a number")
        if not self.min <= float(value) <= self.max:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT,
                f"{self.name} must be within [{self.min}, {self.max}], got {value}",
            )
        return float(value)


class Engine(abc.ABC):
    """An engine: `start` wires the input track to an output track; `apply` takes a whole state
    and returns when it is acknowledged, or raises a DecartNBError with a code."""

    name: str = "engine"
    controls: tuple[Control, ...] = ()
    #: True for an engine whose service reports connection states and billed ticks (Decart's
    #: cloud); the Session then takes them from `on_connection_change` / `on_generation_tick`.
    owns_connection_state = False
    #: Called with asynchronous failures (shown as `error` events); set by the Session.
    on_error: Callable[[DecartNBError], None] = staticmethod(lambda error: None)  # type: ignore[assignment]
    on_connection_change: Callable[[str], None] = staticmethod(lambda state: None)  # type: ignore[assignment]
    on_generation_tick: Callable[[float], None] = staticmethod(lambda seconds: None)  # type: ignore[assignment]

    def bind(self, spec: ModelSpec) -> None:  # noqa: B027 - optional hook
        """Learn the model before start() (engines that connect to a named model use it)."""

    def default_controls(self) -> dict[str, float]:
        return {c.name: c.default for c in self.controls}

    def check_controls(self, controls: dict[str, float]) -> dict[str, float]:
        known = {c.name: c for c in self.controls}
        checked = {}
        for name, value in controls.items():
            if name not in known:
                raise DecartNBError(
                    ErrorCode.INVALID_INPUT,
                    f"{self.name} engine has no control {name!r}; controls: {', '.join(known) or 'none'}",
                )
            checked[name] = known[name].check(value)
        return checked

    @abc.abstractmethod
    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack: ...

    @abc.abstractmethod
    async def apply(self, state: GenerationState) -> None: ...

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what start() took."""


class FrameEngine(Engine):
    """An engine that transforms one frame at a time in a worker thread, newest frame first.

    The input is a newest-frame-wins slot, so a model slower than the source processes the most
    recent frame and the rest are dropped (counted by the slot) instead of queueing up.
    """

    preserve_stamp = False  # copy the input's frame stamp onto the output (measurement)
    skip_passthrough = True  # no prompt and no image: hand the input on untouched

    def __init__(self) -> None:
        self._state = GenerationState()
        self._executor: ThreadPoolExecutor | None = None
        self._inbox: ThreadMailbox[av.VideoFrame] | None = None
        self._own_slot: InputSlot | None = None
        self._last_error: tuple[str, float] = ("", 0.0)

    @abc.abstractmethod
    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        """Transform one frame (runs in the worker thread)."""

    def validate(self, state: GenerationState) -> None:
        """Reject a state before it is applied (raise DecartNBError)."""

    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack:
        if not isinstance(source, InputSlot):  # any other track: put a newest-frame slot in front
            slot = InputSlot(StreamStats())
            slot.attach(source)
            self._own_slot, source = slot, slot
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix=f"decart_nb-{self.name}", initializer=self._mark_worker
            )
        self._inbox = source.hand_to_thread()
        output = MailboxTrack()
        work = self._executor.submit(self._work, self._inbox, output, asyncio.get_running_loop())
        work.add_done_callback(_log_failure)
        return output

    def _work(
        self, inbox: ThreadMailbox[av.VideoFrame], output: MailboxTrack, loop: asyncio.AbstractEventLoop
    ) -> None:
        """The worker thread's loop: take the newest frame, transform it, hand it to the loop."""
        try:
            while True:
                try:
                    frame = inbox.get()
                except EOFError:
                    return
                loop.call_soon_threadsafe(output.box.put, self.run_one(frame, self._state))
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(output.stop)

    def _mark_worker(self) -> None:
        _worker.engine = self

    def in_worker(self) -> bool:
        """True on this engine's worker thread (where stop() would wait for the caller itself)."""
        return getattr(_worker, "engine", None) is self

    async def apply(self, state: GenerationState) -> None:
        self.validate(state)
        self._state = state  # one reference swap: the worker sees the old or the new, never a mix

    async def stop(self) -> None:
        if self._own_slot is not None:
            self._own_slot.stop()
            self._own_slot = None
        if self._inbox is not None:
            self._inbox.close()  # ends the worker's loop
            self._inbox = None
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    def run_one(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        """process() plus bookkeeping; a failing frame passes through and is reported."""
        meta = meta_of(frame)
        t0 = time.perf_counter()
        out = frame
        if not (self.skip_passthrough and state.is_passthrough):
            try:
                out = self.process(frame, state)
                if not isinstance(out, av.VideoFrame):
                    raise DecartNBError(
                        ErrorCode.ENGINE_ERROR,
                        f"{self.name}: process() must return an av.VideoFrame, not {type(out).__name__}",
                    )
            except Exception as exc:  # noqa: BLE001 - reported as an error event, stream goes on
                self._report(exc)
                out = frame
        if self.preserve_stamp and out is not frame and out.format.name == "yuv420p":
            copy_stamp(luma_view(frame), luma_view(out))
        model_ms = (time.perf_counter() - t0) * 1000.0
        if out is not frame:
            carry(frame, out)
        out.opaque = FrameMeta(t_in=meta.t_in, version=state.version, model_ms=model_ms)
        return out

    def _report(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if text == self._last_error[0] and now - self._last_error[1] < _ERROR_REPEAT_S:
            return
        self._last_error = (text, now)
        error = (
            exc
            if isinstance(exc, DecartNBError)
            else DecartNBError(
                ErrorCode.ENGINE_ERROR,
                f"The {self.name} engine failed on a frame (the input was passed through): {text}",
                data={"traceback": traceback.format_exc()},
                cause=exc,
            )
        )
        logger.error("decart_nb: %s", error)
        self.on_error(error)


def _log_failure(work: Future[None]) -> None:
    if not work.cancelled() and work.exception() is not None:
        logger.error("decart_nb: the model worker stopped", exc_info=work.exception())
