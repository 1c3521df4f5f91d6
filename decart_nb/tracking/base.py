"""Tracker: the one logging thread of an experiment tracker, fed through a bounded queue.

Every call into the tracker's library (MLflow's fluent API is not thread-safe; W&B runs are not
meant to be shared) and every call of a user's tracker function happens on this one thread, so a
sweep with `concurrency=N`, or rows arriving from Dask, log correctly and user code needs no locks.
`log_item` only hands the row over: when the queue is full it waits (backpressure: a slow tracker
slows the sweep, nothing is dropped and memory does not grow). A failing call is recorded as a
TRACKER_ERROR, logged at ERROR on the "decart_nb" logger and returned by `close()`; it never
raises into the sweep and never stops the thread (the run folder holds everything anyway).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import DecartNBError, ErrorCode
from ..timeouts import TRACKER_CLOSE_TIMEOUT_S, TRACKER_PUT_POLL_S
from .params import ParamValue, redact_text, safe_params, safe_row

__all__ = [
    "MAX_FAILURES",
    "QUEUE_SIZE",
    "Backend",
    "Tracker",
]

logger = logging.getLogger("decart_nb")

# Items waiting for the logging thread; past this log_item waits (a row and two paths each: small).
QUEUE_SIZE = 64
# Failures kept one by one; more are counted into one last failure (a dead tracker fails every item).
MAX_FAILURES = 20


class Backend(Protocol):
    """One tracker library (or a user's function), called only from the logging thread."""

    #: The tracker's name in messages: "MLflow", "W&B", "the tracker function".
    label: str
    #: True when nothing can be logged after `start` failed (no run to log into).
    needs_start: bool

    def start(self, name: str, params: Mapping[str, ParamValue]) -> None: ...
    def item(self, row: Mapping[str, object], files: Mapping[str, Path]) -> None: ...
    def file(self, path: Path) -> None: ...
    def end(self) -> None: ...


# A queued call: what it logs (for messages) and the call; None stops the thread.
_Job = tuple[str, Callable[[], None]] | None


class Tracker:
    """An open experiment tracker for one sweep (see decart_nb.tracking). Without a backend
    (`tracker=None`) every method does nothing."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        name: str,
        params: Mapping[str, object],
        queue_size: int = QUEUE_SIZE,
        base_dir: Path | None = None,
    ) -> None:
        self._backend = backend
        self._base_dir = base_dir  # relative file paths (a row's file names) are taken from here
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()  # closed + put, so nothing is queued after the stop
        self._closed = False
        self._failures: list[DecartNBError] = []
        self._failures_lock = threading.Lock()
        self._more_failures = 0
        self._skipped = 0
        self._start_failed = False
        self._thread: threading.Thread | None = None
        if backend is None:
            return
        clean = safe_params(params)
        self._jobs.put(("the run", lambda: backend.start(name, clean)))
        self._thread = threading.Thread(target=self._work, name="decart_nb-tracker", daemon=True)
        self._thread.start()

    # -- the sweep's side: any thread ---------------------------------------------------------
    def log_item(self, row: Mapping[str, object], files: Mapping[str, Path]) -> None:
        """Hand one item (its row, its snapshot and clip) to the logging thread; a child run."""
        backend = self._backend
        if backend is None:
            return
        clean = safe_row(row)  # a copy: the caller may change its row
        paths = {kind: self._path(path) for kind, path in files.items()}
        what = f"item {row.get('index', '?')}"
        self._hand_off(what, lambda: backend.item(clean, paths))

    def log_run_file(self, path: Path) -> None:
        """Hand a file of the whole run (run.json, results.csv, contact_sheet.png) to the parent run."""
        backend = self._backend
        if backend is None:
            return
        full = self._path(path)
        self._hand_off(full.name, lambda: backend.file(full))

    def close(self, timeout: float = TRACKER_CLOSE_TIMEOUT_S) -> list[DecartNBError]:
        """Log what is queued, end the runs, stop the thread; the failures (TRACKER_ERROR), each
        already logged. Closing twice returns the same list."""
        backend, thread = self._backend, self._thread
        with self._lock:
            first = not self._closed
            self._closed = True
            if first and backend is not None and thread is not None:
                self._put(("the end of the run", backend.end))
                self._put(None)
        if thread is None:
            return list(self._failures)
        thread.join(timeout)
        if first and self._more_failures:
            self._failures.append(self._counted())
        if thread.is_alive() and first:
            waiting = self._jobs.qsize()
            self._record(
                DecartNBError(
                    ErrorCode.TRACKER_ERROR,
                    f"{self._label()} did not finish logging within {timeout:.0f} s; it goes on in the "
                    f"background ({waiting} calls still queued). The run folder has every result.",
                    data={"tracker": self._label(), "queued": waiting},
                )
            )
        return list(self._failures)

    def _path(self, path: Path | str) -> Path:
        path = Path(path)
        return self._base_dir / path if self._base_dir is not None and not path.is_absolute() else path

    def _hand_off(self, what: str, call: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                logger.warning(
                    "decart_nb: %s reached %s after it was closed; not logged", what, self._label()
                )
                return
            self._put((what, call))

    def _put(self, job: _Job) -> None:
        # Waits while the queue is full (backpressure), unless the thread is gone.
        while True:
            try:
                self._jobs.put(job, timeout=TRACKER_PUT_POLL_S)
                return
            except queue.Full:
                if self._thread is None or not self._thread.is_alive():
                    self._record(
                        DecartNBError(
                            ErrorCode.TRACKER_ERROR,
                            f"{self._label()}'s logging thread is gone; {job[0] if job else 'a call'} "
                            "was not logged",
                            data={"tracker": self._label()},
                        )
                    )
                    return

    # -- the logging thread ---------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            what, call = job
            if self._start_failed:
                self._skipped += 1
                continue
            try:
                call()
            # Any failure of a tracker's library (or a user's function) is recorded and logged,
            # never raised into the sweep; the thread goes on with the next call.
            except Exception as exc:  # noqa: BLE001
                self._fail(what, exc)
                backend = self._backend
                if what == "the run" and backend is not None and backend.needs_start:
                    self._start_failed = True
        if self._skipped:
            self._record(
                DecartNBError(
                    ErrorCode.TRACKER_ERROR,
                    f"{self._label()} logged nothing: its run could not start, so {self._skipped} "
                    "later calls were skipped. The run folder has every result.",
                    data={"tracker": self._label(), "skipped": self._skipped},
                )
            )

    def _fail(self, what: str, exc: Exception) -> None:
        text = redact_text(str(exc) or repr(exc))
        self._record(
            DecartNBError(
                ErrorCode.TRACKER_ERROR,
                f"{self._label()} could not log {what}: {type(exc).__name__}: {text}",
                data={"tracker": self._label(), "what": what, "exception": type(exc).__name__},
                cause=exc,
            )
        )

    def _record(self, error: DecartNBError) -> None:
        with self._failures_lock:
            if len(self._failures) < MAX_FAILURES:
                self._failures.append(error)
                logger.error("decart_nb: %s", error)
                return
            self._more_failures += 1
            more = self._more_failures
        if more == 1:
            logger.error(
                "decart_nb: %s keeps failing; further tracker failures are counted, not logged", self._label()
            )

    def _counted(self) -> DecartNBError:
        error = DecartNBError(
            ErrorCode.TRACKER_ERROR,
            f"{self._label()} failed {self._more_failures} more times (the first {MAX_FAILURES} "
            "failures are listed).",
            data={"tracker": self._label(), "more": self._more_failures},
        )
        logger.error("decart_nb: %s", error)
        return error

    def _label(self) -> str:
        return self._backend.label if self._backend is not None else "no tracker"
