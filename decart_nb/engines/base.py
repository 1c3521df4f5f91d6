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
from typing import Any, Generic, TypeVar

import av
from aiortc.mediastreams import MediaStreamTrack

from ..checks import check_mapping, check_number
from ..errors import DecartNBError, ErrorCode
from ..media.frames import FrameMeta, carry, luma_view, meta_of
from ..media.mailbox import ThreadMailbox
from ..media.placement import Placement
from ..media.relay import InputSlot, PushTrack
from ..media.stamp import copy_stamp
from ..media.stats import StreamStats
from ..models import ModelSpec
from ..state import GenerationState
from .events import EngineEvents

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
        """A finite number within [min, max] (numpy numbers too; never a bool, str or NaN)."""
        return check_number(self.name, value, self.min, self.max)


class Engine(abc.ABC):
    """An engine: `start` wires the input track to an output track; `apply` takes a whole state
    and returns when it is acknowledged, or raises a DecartNBError with a code."""

    name: str = "engine"
    controls: tuple[Control, ...] = ()
    #: Prompts the panel's presets slider offers when the session names none (the words the
    #: engine knows best); none: no slider.
    prompt_presets: tuple[str, ...] = ()
    #: True for an engine whose service reports connection states and billed ticks (Decart's
    #: cloud); the Session then takes them from its `events` (connection_change, generation_tick).
    owns_connection_state = False
    #: What the engine reports as it happens; the Session listens with its own (`listen`).
    events: EngineEvents = EngineEvents()
    #: Set by an engine that times its own acknowledgements and connects (Decart's SDK): the
    #: longest apply() / start() can take. The session then only guards beyond it, so the
    #: engine's own timeout (and its message) is the one the user sees.
    apply_timeout_s: float | None = None
    connect_timeout_s: float | None = None

    def listen(self, events: EngineEvents) -> None:
        """Report to `events` from now on (the Session calls it once, before start())."""
        self.events = events

    def bind(self, spec: ModelSpec) -> None:  # noqa: B027 - optional hook
        """Learn the model before start() (engines that connect to a named model use it)."""

    def default_controls(self) -> dict[str, float]:
        return {c.name: c.default for c in self.controls}

    def check_controls(self, controls: object) -> dict[str, float]:
        known = {c.name: c for c in self.controls}
        checked = {}
        for name, value in check_mapping("controls", controls).items():
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


@dataclass
class _Job:
    """One frame on its way through prepare -> infer -> finish."""

    frame: av.VideoFrame
    prepared: object = None
    result: object = None
    inferred: bool = False  # infer() ran and returned (False for a passthrough state)
    version: int = -1
    model_ms: float = 0.0
    failed: bool = False  # a step raised (and reported): the input passes through
    seq: int = 0  # the frame's place in the stream, to tell one burst of failures from the next


class FrameEngine(Engine):
    """An engine that transforms one frame at a time in a worker thread, newest frame first.

    The input is a newest-frame-wins slot, so a model slower than the source processes the most
    recent frame and the rest are dropped (counted) instead of queueing up.

    A one-step engine overrides `process`. A `staged` engine splits a frame's work into
    `prepare` (frame only, e.g. a colour conversion), `infer` (the model) and `finish` (back to a
    frame), and each step gets its own thread: the model starts on the next frame, already
    prepared, the moment it returns one, instead of waiting for conversions.
    """

    preserve_stamp = False  # copy the input's frame stamp onto the output (measurement)
    skip_passthrough = True  # no prompt and no image: hand the input on untouched
    staged = False

    def __init__(self) -> None:
        self._state = GenerationState()
        self._executor: ThreadPoolExecutor | None = None
        self._inbox: ThreadMailbox[av.VideoFrame] | None = None
        self._own_slot: InputSlot | None = None
        self._last_error: tuple[str, float] = ("", 0.0)
        self._seq = 0  # frames taken (prepare step's thread)
        self._failed_seq = -1  # the newest frame that failed
        self._burst_over = True  # a frame after the newest failure went through: the next is news
        self._burst_lock = threading.Lock()  # the steps' threads fail and succeed in any order

    def process(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        """Transform one frame (runs in the worker thread); `run_one` is the whole frame's path."""
        raise NotImplementedError(f"{type(self).__name__} must override process(), or infer() when staged")

    # Any, on purpose: what a subclass's prepare() returns its own infer() takes (and infer's
    # result its finish()); an override names the real type, which `object` here would forbid.
    def prepare(self, frame: av.VideoFrame) -> Any:
        """Work that needs only the frame; a staged engine does it as each frame arrives."""
        return frame

    def infer(self, prepared: Any, state: GenerationState) -> Any:
        """The model's step: what `prepare` made, and the state, to a result."""
        return self.process(prepared, state)

    def finish(self, result: Any, frame: av.VideoFrame) -> av.VideoFrame:
        """The result as a frame like `frame` (the input)."""
        if not isinstance(result, av.VideoFrame):
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR,
                f"{self.name}: process() must return an av.VideoFrame, not {type(result).__name__}",
            )
        return result

    def validate(self, state: GenerationState) -> None:
        """Reject a state before it is applied (raise DecartNBError)."""

    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack:
        if not isinstance(source, InputSlot):  # any other track: put a newest-frame slot in front
            slot = InputSlot(StreamStats())
            slot.attach(source)
            self._own_slot, source = slot, slot
        loop = asyncio.get_running_loop()
        threads = 3 if self.staged else 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                threads, thread_name_prefix=f"decart_nb-{self.name}", initializer=self._mark_worker
            )
        self._inbox = inbox = source.hand_to_thread()
        output = PushTrack()  # the pipeline publishes each frame as it is handed over
        count_drop = source.count_drop

        done: ThreadMailbox[av.VideoFrame] = ThreadMailbox()  # newest output not yet on the loop

        def publish() -> None:  # loop thread
            frame = done.take()
            if frame is not None and output.put(frame):  # a reader had not taken the previous one
                count_drop()

        def deliver(frame: av.VideoFrame) -> None:  # the last step's thread
            if done.put(frame):  # the loop had not published the previous one: its call takes this
                loop.call_soon_threadsafe(count_drop)
            else:
                loop.call_soon_threadsafe(publish)

        def end_output() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(output.stop)

        slot_in: InputSlot = source

        def cpus() -> frozenset[int] | None:  # where the slot's reader should run (a comparison's arm)
            return slot_in.cpus

        steps: list[Callable[[], None]]  # each step's loop, for its own thread
        if not self.staged:
            steps = [_Stage(inbox, lambda f: self.run_one(f, self._state), deliver, end_output, cpus).run]
        else:
            prepared: ThreadMailbox[_Job] = ThreadMailbox()
            inferred: ThreadMailbox[_Job] = ThreadMailbox()
            steps = [
                _Stage(
                    inbox, self._prepare_job, _pass_to(prepared, loop, count_drop), prepared.close, cpus
                ).run,
                _Stage(
                    prepared,
                    lambda j: self._infer_job(j, self._state),
                    _pass_to(inferred, loop, count_drop),
                    inferred.close,
                    cpus,
                ).run,
                _Stage(inferred, self._finish_job, deliver, end_output, cpus).run,
            ]
        for step in steps:
            self._executor.submit(step).add_done_callback(_log_failure)
        return output

    def _mark_worker(self) -> None:
        _worker.engine = self

    def in_worker(self) -> bool:
        """True on this engine's worker threads (where stop() would wait for the caller itself)."""
        return getattr(_worker, "engine", None) is self

    async def apply(self, state: GenerationState) -> None:
        self.validate(state)
        self._state = state  # one reference swap: the worker sees the old or the new, never a mix

    async def stop(self) -> None:
        if self._own_slot is not None:
            self._own_slot.stop()
            self._own_slot = None
        if self._inbox is not None:
            self._inbox.close()  # ends the first step; each step closes the next one's mailbox
            self._inbox = None
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    def run_one(self, frame: av.VideoFrame, state: GenerationState) -> av.VideoFrame:
        """The three steps in a row, plus bookkeeping; a failing frame passes through, reported."""
        return self._finish_job(self._infer_job(self._prepare_job(frame), state))

    def _prepare_job(self, frame: av.VideoFrame) -> _Job:
        meta_of(frame)  # gives t_in to a frame that comes from outside a pipeline
        self._seq += 1
        job = _Job(frame, seq=self._seq)
        if self.staged:
            try:
                job.prepared = self.prepare(frame)
            except Exception as exc:  # noqa: BLE001 - reported as an error event, stream goes on
                self._fail(job, exc)
        return job

    def _infer_job(self, job: _Job, state: GenerationState) -> _Job:
        job.version = state.version
        if job.failed or (self.skip_passthrough and state.is_passthrough):
            return job
        t0 = time.perf_counter()
        try:
            job.result = self.infer(job.prepared if self.staged else job.frame, state)
            job.inferred = True
        except Exception as exc:  # noqa: BLE001 - reported as an error event, stream goes on
            self._fail(job, exc)
        job.model_ms = (time.perf_counter() - t0) * 1000.0
        return job

    def _finish_job(self, job: _Job) -> av.VideoFrame:
        frame, out = job.frame, job.frame
        t0 = time.perf_counter()
        if job.inferred and job.result is not frame:
            try:
                out = self.finish(job.result, frame)
            except Exception as exc:  # noqa: BLE001 - reported as an error event, stream goes on
                self._fail(job, exc)
        if not job.failed:
            with self._burst_lock:
                self._burst_over = self._burst_over or job.seq > self._failed_seq
        if self.preserve_stamp and out is not frame and out.format.name == "yuv420p":
            copy_stamp(luma_view(frame), luma_view(out))
        if out is not frame:
            carry(frame, out)
        # one-step engines: finish() is a type check and the model's time is all of process()
        model_ms = job.model_ms if self.staged else job.model_ms + (time.perf_counter() - t0) * 1000.0
        out.opaque = FrameMeta(t_in=meta_of(frame).t_in, version=job.version, model_ms=model_ms)
        return out

    def _fail(self, job: _Job, exc: Exception) -> None:
        with self._burst_lock:
            new_burst, self._burst_over = self._burst_over, False
            self._failed_seq = max(self._failed_seq, job.seq)
        self._report(exc, new_burst)
        job.failed = True

    def _report(self, exc: Exception, new_burst: bool = True) -> None:
        text = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if not new_burst and text == self._last_error[0] and now - self._last_error[1] < _ERROR_REPEAT_S:
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
        self.events.error(error)


_In = TypeVar("_In")
_Out = TypeVar("_Out")


class _Stage(Generic[_In, _Out]):
    """One worker thread's loop: take the newest item, do one step, pass the result on; on the
    CPUs `cpus()` names (checked at each item: a comparison's arm keeps a CPU of its own)."""

    def __init__(
        self,
        inbox: ThreadMailbox[_In],
        step: Callable[[_In], _Out],
        pass_on: Callable[[_Out], None],
        end: Callable[[], None],
        cpus: Callable[[], frozenset[int] | None] = lambda: None,
    ) -> None:
        self.inbox, self.step, self.pass_on, self.end, self.cpus = inbox, step, pass_on, end, cpus

    def run(self) -> None:
        placement = Placement()
        try:
            while True:
                try:
                    item = self.inbox.get()
                except EOFError:
                    return
                placement.follow(self.cpus())
                self.pass_on(self.step(item))
        finally:
            self.end()  # closing the next mailbox ends the next step in turn


def _pass_to(
    box: ThreadMailbox[_Job], loop: asyncio.AbstractEventLoop, count_drop: Callable[[], None]
) -> Callable[[_Job], None]:
    def pass_on(job: _Job) -> None:
        if box.put(job):  # the next step had not taken the previous one: that frame is dropped
            loop.call_soon_threadsafe(count_drop)

    return pass_on


def _log_failure(work: Future[None]) -> None:
    if not work.cancelled() and work.exception() is not None:
        logger.error("decart_nb: the model worker stopped", exc_info=work.exception())
