"""Lanes: one session per worker thread, replaced when it fails; `run_item` is the task a thread
pool or a Dask worker runs, one item per call, returning the row and the item's files as bytes
(the coordinator writes them, so a remote worker needs no shared folder)."""

from __future__ import annotations

import io
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image

from .. import _loop
from ..engines.base import Engine
from ..errors import DecartNBError
from ..secret_key import SecretKey
from ..session import Session
from ..session_port import port_of
from .items import Item, _slug
from .lane_figures import LaneFigures
from .measure import FRAME_TIMEOUT_S, FrameLog, dropped, looks, settle, small, timings
from .rows import COLUMNS, ITEM_FAULTS, METRICS_ERROR, Metrics, Row, error_row, new_row

__all__ = [
    "Lane",
    "Outcome",
    "RunSpec",
    "SweepStopped",
    "close_lanes",
    "metric_columns",
    "png_bytes",
    "record_clip",
    "run_item",
    "stop_run",
]

logger = logging.getLogger("decart_nb")

IDLE_CLOSE_S = 10.0  # a lane no task used for this long is closed (a pool process's leftovers)


class Outcome(TypedDict):
    """What a task returns: the item's row and its files (name: bytes), which the coordinator writes."""

    row: Row
    files: dict[str, bytes]


class SweepStopped(RuntimeError):
    """The sweep this task belongs to was interrupted: the item is not run."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to make sessions and measure items (picklable for a cluster)."""

    run_id: str
    model: str
    engine: str | Engine | Callable[..., object]
    controls: dict[str, float] | None
    enhance: bool
    seconds: float
    frames: int | None
    record_seconds: float
    metrics: Metrics | None
    single_source: bool
    engine_options: dict[str, object] | None = None
    # A SecretKey refuses to be pickled: a spec holding one runs in this process only (sweep()
    # refuses api_key= with an executor; workers take DECART_API_KEY from their environment).
    api_key: SecretKey | None = None

    def passthrough_name(self, source_label: str) -> str:
        return "passthrough.png" if self.single_source else f"passthrough_{_slug(source_label)}.png"


class Lane:
    """A connected session, its frame log and its asynchronous errors, serving one source."""

    def __init__(self, spec: RunSpec, source: object, source_id: str, session: Session | None = None) -> None:
        self.run_id = spec.run_id
        self.source_id = source_id
        self.own = session is None
        self.session = session or Session(
            model=spec.model,
            engine=spec.engine,
            source=source,
            controls=spec.controls,
            engine_options=spec.engine_options,
            api_key=spec.api_key,  # type: ignore[arg-type]  # a SecretKey is taken as it is
        )
        self.log = FrameLog()
        self.figures = LaneFigures(self.session)
        self.failures: list[DecartNBError] = []
        self.reference: np.ndarray | None = None
        self.passthrough: bytes | None = None  # sent with the lane's first row
        self.busy = False
        self.last_used = time.monotonic()
        self._closed = False
        self._close_lock = threading.Lock()

    def _watch(self, event: str, payload: object) -> None:
        self.figures.watch(event, payload)
        if event == "error" and isinstance(payload, DecartNBError):  # a watcher, not on(): on()
            self.failures.append(payload)  # events are held while a cell runs

    def open(self) -> Lane:
        port_of(self.session).listen(self._watch)
        try:
            picture: Image.Image | None = None
            if self.session.state == "disconnected":  # not a caller's connected session: measured
                self.figures.connecting()
                self.session.connect()
                self.figures.connected()
                picture = self.session.snapshot(timeout=FRAME_TIMEOUT_S)  # at the first output frame
                self.figures.first_frame()
            _loop.run(self.log.start(self.session), timeout=10)
            if self.session.generation.is_passthrough:  # the untouched input: diff_vs_passthrough's base
                picture = picture or self.session.snapshot(timeout=FRAME_TIMEOUT_S)
                self.reference, self.passthrough = small(picture), png_bytes(picture)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def healthy(self) -> bool:
        return not self._closed and self.session.state in ("connected", "generating")

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        port_of(self.session).unlisten(self._watch)
        try:
            if self.session.state != "disconnected":
                _loop.run(self.log.stop(), timeout=10)
        finally:
            if self.own:
                self.session.disconnect()

    def run(self, item: Item, spec: RunSpec) -> Outcome:
        session, log = self.session, self.log
        row, files = new_row(item, spec.enhance), dict[str, bytes]()
        if self.passthrough is not None:
            files[spec.passthrough_name(item.source_label)], self.passthrough = self.passthrough, None
        log.clear()
        first_failure, dropped0 = len(self.failures), dropped(session)
        billed0 = self.figures.billed_seconds()
        t_set = time.perf_counter()
        try:
            session.set(prompt=item.prompt, image=item.image, enhance=spec.enhance)
            version = session.generation.version
            session.snapshot(timeout=FRAME_TIMEOUT_S)  # returns once a frame of this state is out
            settle(log, 0, version, spec.seconds, spec.frames)
            picture = session.snapshot(timeout=FRAME_TIMEOUT_S)
            # A row names a file only once its bytes are in hand: the coordinator refuses a row
            # that points at a file it was not sent.
            files[f"{item.stem}.png"] = png_bytes(picture)
            row["snapshot"] = f"{item.stem}.png"
            if spec.record_seconds > 0:
                files[f"{item.stem}.mp4"] = record_clip(session, spec.record_seconds)
                row["clip"] = f"{item.stem}.mp4"
        except DecartNBError as exc:
            row |= {"error_code": exc.code, "error": exc.message}
        else:
            row["state_version"] = version
            row |= timings(list(log.frames), version, t_set)
            row |= looks(picture, self.reference)
            row |= metric_columns(spec.metrics, picture, row)
        row["frames_dropped"] = dropped(session) - dropped0
        row |= self.figures.row_figures(billed0)
        row["engine_errors"] = " ".join(sorted({e.code for e in self.failures[first_failure:]})) or None
        return {"row": row, "files": files}


def png_bytes(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def record_clip(session: Session, seconds: float) -> bytes:
    with tempfile.TemporaryDirectory(prefix="decart_nb-clip-") as tmp:
        return session.record(Path(tmp) / "clip.mp4", seconds).read_bytes()


def metric_columns(hook: Metrics | None, picture: Image.Image, row: Row) -> Row:
    """The user's extra columns; a failing hook fails its item (logged, and in the row), not the sweep."""
    if hook is None:
        return {}
    try:
        extra = dict(hook(picture, dict(row)))
        clash = sorted(set(extra) & set(COLUMNS))
        if clash:
            raise ValueError(f"the metrics hook returned built-in column names: {clash}")
    except Exception as exc:  # noqa: BLE001 - the user's hook: logged, and the item's row says why
        logger.warning("decart_nb sweep: the metrics hook failed on item %s: %r", row["index"], exc)
        return {"error_code": METRICS_ERROR, "error": f"{type(exc).__name__}: {exc}"}
    return extra


# -- the per-process lane table ------------------------------------------------------------------
_lanes: dict[int, Lane] = {}  # by worker thread
_lanes_lock = threading.Lock()
_stopped: set[str] = set()
_reaper: threading.Thread | None = None


def run_item(spec: RunSpec, item: Item) -> Outcome:
    """Run one item on this thread's lane. A session failure closes the lane; the item is retried
    once on a new one, then recorded as failed. Its own failures (bad input) are recorded at once."""
    for attempt in (1, 2):
        if spec.run_id in _stopped:
            raise SweepStopped(f"sweep {spec.run_id} was interrupted")
        try:
            lane = _lane_for(spec, item)
            outcome = lane.run(item, spec)
        except SweepStopped:
            raise
        except DecartNBError as exc:  # the session could not be made or connected
            _drop_lane()
            outcome = {"row": error_row(item, spec.enhance, exc), "files": {}}
        except Exception as exc:  # a defect: logged with its traceback, in the row, and retried
            logger.exception("decart_nb sweep: item %s failed unexpectedly", item.index)
            _drop_lane()
            outcome = {"row": error_row(item, spec.enhance, exc), "files": {}}
        else:
            lane.busy, lane.last_used = False, time.monotonic()
        code = outcome["row"]["error_code"]
        session_fault = bool(code) and code not in ITEM_FAULTS
        if session_fault:
            _drop_lane()
        if not session_fault or attempt == 2:
            outcome["row"] |= {"attempts": attempt, "worker": _worker_name()}
            return outcome
        logger.info("decart_nb sweep: item %s failed with %s; retrying on a new session", item.index, code)
    raise AssertionError("unreachable")


def _lane_for(spec: RunSpec, item: Item) -> Lane:
    me = threading.get_ident()
    with _lanes_lock:  # busy under the lock: the reaper never closes a lane a task just took
        lane = _lanes.get(me)
        if lane is not None:
            lane.busy = True
    if lane is not None and (
        lane.run_id != spec.run_id or lane.source_id != item.source_id or not lane.healthy
    ):
        _drop_lane()
        lane = None
    if lane is None:
        lane = Lane(spec, item.source, item.source_id)
        lane.busy = True
        lane.open()
        with _lanes_lock:
            _lanes[me] = lane
        _start_reaper()  # after the lane is listed: a reaper finding no lanes ends
        if spec.run_id in _stopped:  # stopped while this session was connecting: stop_run missed it
            _drop_lane()
            raise SweepStopped(f"sweep {spec.run_id} was interrupted")
    return lane


def _drop_lane() -> None:
    """Close this thread's lane. A broken session may fail to close: that is logged, and the
    sweep goes on with a new one (which is why it is being dropped)."""
    with _lanes_lock:
        lane = _lanes.pop(threading.get_ident(), None)
    if lane is None:
        return
    try:
        lane.close()
    except Exception:
        logger.exception("decart_nb sweep: closing a failed session failed")


def close_lanes(run_id: str | None = None) -> int:
    """Close this process's lanes (of one run, or all); returns how many were closed."""
    with _lanes_lock:
        mine = [(t, lane) for t, lane in _lanes.items() if run_id is None or lane.run_id == run_id]
        for t, _ in mine:
            del _lanes[t]
    for _, lane in mine:
        lane.close()
    return len(mine)


def stop_run(run_id: str) -> int:
    """Interrupt a run: no new item starts, and its sessions are closed (items in flight fail)."""
    _stopped.add(run_id)
    return close_lanes(run_id)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def _start_reaper() -> None:
    """A lane left in a pool process (a cluster or process pool with no close call) would stream
    for ever: close lanes that no task used for IDLE_CLOSE_S."""
    global _reaper
    with _lanes_lock:
        if _reaper is not None and _reaper.is_alive():
            return
        _reaper = threading.Thread(target=_reap, name="decart_nb-sweep-reaper", daemon=True)
        _reaper.start()


def _reap() -> None:
    """Runs while there are lanes; ends with the last one (a sweep leaves no thread behind)."""
    global _reaper
    tick = threading.Event()
    while not tick.wait(1.0):
        now = time.monotonic()
        with _lanes_lock:
            if not _lanes:
                _reaper = None
                return
            idle = [
                (t, lane)
                for t, lane in _lanes.items()
                if not lane.busy and now - lane.last_used > IDLE_CLOSE_S
            ]
            for t, _ in idle:
                del _lanes[t]
        for _, lane in idle:
            try:
                lane.close()
            except Exception:  # keep reaping the others; this one is logged
                logger.exception("decart_nb sweep: closing an idle session failed")
