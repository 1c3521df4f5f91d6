"""Session events, delivered on one dispatcher thread so a slow callback never stalls video.

Event names follow Decart's Python SDK (`connection_change`, `error`, `generation_tick`); the JS
names (`connectionChange`, `generationTick`) are accepted too. Events raised while connect() runs are
held and delivered once connect() has returned, to every callback registered by then or within a
short grace period (the rest of the notebook cell, at most `HOLD_SECONDS`), as Decart's SDKs do.

Where a callback's output goes. Callbacks run on the dispatcher thread, often after their cell has
ended, when Jupyter shows nothing a thread prints. The rule, which never loses output: while the
session has a display (a watcher that takes callback output, the panel's event log), what each
callback prints to stdout or stderr is routed to it (callback_output.capture: that thread only),
and a callback that raises is shown there too, with its traceback; without one, the output goes to
the ordinary streams as it always did (visible while a cell runs, and in a terminal). A callback's
output reaches the log when it returns (or every 8 KB), in one update, before its failure if any.

`recent()` (`Session.events`) keeps the last `RECENT_EVENTS` events with the time they were
emitted (not delivered, so held events keep theirs), and the callback failures (name
`callback_failure`). Generation ticks come every second and would push everything else out, so a
tick replaces the tick just before it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .callback_output import OutputBuffer, StreamName, capture
from .errors import DecartNBError, ErrorCode

__all__ = [
    "EVENT_NAMES",
    "CallbackFailure",
    "CallbackOutputWatcher",
    "EventHub",
    "EventRecord",
    "GenerationEnded",
    "GenerationTick",
    "QueuePosition",
]

logger = logging.getLogger("decart_nb")

EVENT_NAMES = ("connection_change", "error", "generation_tick", "queue_position", "generation_ended")
_ALIASES = {
    "connectionChange": "connection_change",
    "generationTick": "generation_tick",
    "queuePosition": "queue_position",
    "generationEnded": "generation_ended",
}
HOLD_SECONDS = 1.0
_QUEUE_LIMIT = 1024  # events are rare (ticks once a second); a full queue means a stuck callback
RECENT_EVENTS = 200

# A user's callback takes one payload, whose type depends on the event (a state name, a
# DecartNBError, a GenerationTick, ...); what it returns is ignored.
EventCallback = Callable[..., object]
# An internal listener (widget, panel): the event's name and its payload, on the emitting thread.
EventWatcher = Callable[[str, object], None]
Held = tuple[str, object]  # an event and its payload, waiting for delivery


@dataclass(frozen=True)
class GenerationTick:
    """The running (billed, for Decart) duration of generation, in seconds."""

    seconds: float


@dataclass(frozen=True)
class QueuePosition:
    """Decart's place in the queue while it waits for capacity (JS SDK: `queuePosition`)."""

    position: int
    queue_size: int


@dataclass(frozen=True)
class GenerationEnded:
    """Decart stopped generating: billed `seconds` and the `reason` (disconnect, timeout,
    moderation_violation, error, insufficient_credits, ...; JS SDK: `generationEnded`)."""

    seconds: int
    reason: str


@dataclass(frozen=True)
class CallbackFailure:
    """A user callback that raised: shown in the panel, logged, never swallowed."""

    event: str
    callback: str
    error: str
    traceback: str
    at: float


@dataclass(frozen=True)
class EventRecord:
    """One event as `Session.events` lists it: when it was emitted (time.time()), its name and
    its payload (a state name, a DecartNBError, a GenerationTick, a CallbackFailure, ...)."""

    at: float
    name: str
    payload: object


@runtime_checkable
class CallbackOutputWatcher(Protocol):
    """A watcher that also shows what callbacks print (the panel's event log): while one watches,
    callbacks' stdout and stderr go to it instead of the ordinary streams."""

    def __call__(self, event: str, payload: object) -> None: ...

    def write_callback_output(self, stream: StreamName, text: str) -> None: ...


def canonical_event(name: str) -> str:
    event = _ALIASES.get(name, name)
    if event not in EVENT_NAMES:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Unknown event {name!r}; events are {', '.join(EVENT_NAMES)} (or their JS names)",
        )
    return event


class EventHub:
    """Callbacks per event, a hold buffer for connect, and one dispatcher thread."""

    def __init__(self, name: str = "decart_nb-events") -> None:
        self._callbacks: dict[str, list[EventCallback]] = {e: [] for e in EVENT_NAMES}
        self._watchers: list[EventWatcher] = []
        self._lock = threading.Lock()
        self._held: list[Held] | None = None
        self._queue: queue.Queue[Held | None] = queue.Queue(_QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._name = name
        self.failures: deque[CallbackFailure] = deque(maxlen=50)
        self._recent: deque[EventRecord] = deque(maxlen=RECENT_EVENTS)

    # -- registration -------------------------------------------------------------------------
    def on(self, event: str, callback: EventCallback) -> None:
        if not callable(callback):
            raise DecartNBError(ErrorCode.INVALID_INPUT, "callback must be callable")
        with self._lock:
            self._callbacks[canonical_event(event)].append(callback)

    def off(self, event: str, callback: EventCallback | None = None) -> None:
        with self._lock:
            callbacks = self._callbacks[canonical_event(event)]
            if callback is None:
                callbacks.clear()
            elif callback in callbacks:
                callbacks.remove(callback)

    def watch(self, watcher: EventWatcher) -> None:
        """Internal listeners (widget, panel): called at once on the emitting thread, never held.
        A CallbackOutputWatcher also receives what callbacks print (see the module's docstring)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: EventWatcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def recent(self) -> list[EventRecord]:
        """The last RECENT_EVENTS events and callback failures, oldest first."""
        with self._lock:
            return list(self._recent)

    def _record(self, record: EventRecord) -> None:
        with self._lock:
            last = self._recent[-1] if self._recent else None
            if last is not None and last.name == record.name == "generation_tick":
                self._recent.pop()  # the newest tick stands for the run of ticks
            self._recent.append(record)

    # -- emitting (any thread) ----------------------------------------------------------------
    def emit(self, event: str, payload: object) -> None:
        if event in EVENT_NAMES:
            self._record(EventRecord(at=time.time(), name=event, payload=payload))
        for watcher in list(self._watchers):
            try:
                watcher(event, payload)
            except Exception:
                logger.exception("decart_nb: an internal event watcher failed")
        if event not in EVENT_NAMES:
            return  # internal events (model_change, ...) are for watchers only
        with self._lock:
            if self._held is not None:
                self._held.append((event, payload))
                return
        self._enqueue((event, payload))

    def hold(self) -> None:
        """Start holding events (connect() begins)."""
        self._ensure_thread()
        with self._lock:
            if self._held is None:
                self._held = []

    def release_later(self) -> None:
        """connect() returned: deliver the held events at the end of the notebook cell, or after
        HOLD_SECONDS, whichever comes first."""
        with self._lock:
            held = self._held
        if held is None:
            return

        def release_this_hold(*_: object) -> None:  # not a later connect's hold
            self.release(only=held)

        timer = threading.Timer(HOLD_SECONDS, release_this_hold)
        timer.daemon = True
        timer.name = f"{self._name}-release"
        timer.start()
        _on_cell_end(release_this_hold)

    def release(self, only: list[Held] | None = None) -> None:
        """Deliver the held events (with `only`: if that hold is still the current one)."""
        with self._lock:
            if only is not None and self._held is not only:
                return
            held, self._held = self._held, None
        for item in held or ():
            self._enqueue(item)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the dispatcher thread."""
        self.release()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        # A callback may close and reconnect: the next dispatcher must not share this queue, or
        # either thread could take the other's stop marker and one would wait forever.
        self._queue = queue.Queue(_QUEUE_LIMIT)
        if thread is not threading.current_thread():  # a callback may disconnect: it ends after
            thread.join(timeout)

    # -- dispatching --------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, args=(self._queue,), name=self._name, daemon=True
            )
            self._thread.start()

    def _enqueue(self, item: Held) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            logger.error("decart_nb: event queue full (a callback is stuck); dropped %s", item[0])

    def _run(self, items: queue.Queue[Held | None]) -> None:
        while True:
            item = items.get()
            if item is None:
                return
            event, payload = item
            with self._lock:
                callbacks = list(self._callbacks[event])
            for callback in callbacks:
                self._call(event, callback, payload)

    def _output_watchers(self) -> list[CallbackOutputWatcher]:
        return [w for w in list(self._watchers) if isinstance(w, CallbackOutputWatcher)]

    def _write_output(self, stream: StreamName, text: str) -> None:
        """Show a callback's output in the watchers that take it (called outside its capture, or
        by the router, which sends this thread's writes to the ordinary streams meanwhile)."""
        watchers = self._output_watchers()
        if not watchers:  # the display closed while the callback ran
            getattr(sys, stream).write(text)
        for watcher in watchers:
            try:
                watcher.write_callback_output(stream, text)
            except Exception:
                logger.exception("decart_nb: the event log failed; the callback's output goes to %s", stream)
                getattr(sys, stream).write(text)

    def _call(self, event: str, callback: EventCallback, payload: object) -> None:
        output = OutputBuffer(self._write_output)
        routed = capture(output.write) if self._output_watchers() else contextlib.nullcontext()
        try:
            try:
                with routed:
                    callback(payload)
            finally:
                output.flush()  # before the failure, which follows the output in the log
        except Exception as exc:  # noqa: BLE001 - recorded, logged and shown; never swallowed
            failure = CallbackFailure(
                event=event,
                callback=getattr(callback, "__qualname__", repr(callback)),
                error=f"{type(exc).__name__}: {exc}",
                traceback=_user_traceback(exc),
                at=time.time(),
            )
            self.failures.append(failure)
            self._record(EventRecord(at=failure.at, name="callback_failure", payload=failure))
            logger.error("decart_nb: %s callback %s raised\n%s", event, failure.callback, failure.traceback)
            for watcher in list(self._watchers):
                try:
                    watcher("callback_failure", failure)
                except Exception:
                    logger.exception("decart_nb: an internal event watcher failed")


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the user's callback down, without the dispatcher's frame."""
    tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb is not None else None))


def _on_cell_end(fn: Callable[[], None]) -> None:
    """Call fn once when the running IPython cell finishes (no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def once(*_: object) -> None:
        shell.events.unregister("post_run_cell", once)
        fn()

    shell.events.register("post_run_cell", once)
